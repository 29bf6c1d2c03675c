"""AES-256-CTR and Poly1305 straight from OpenSSL's libcrypto, without holding the GIL.

``cryptography`` holds the GIL while it encrypts and computes MACs, so the backup and restore
threads queue behind each other for it (and, on a loaded machine, behind a GIL holder that the
kernel has preempted). ctypes releases the GIL for the length of every foreign call, so the
same OpenSSL code called through ctypes runs on all cores. Only used when the libcrypto that
Python's own ``hashlib`` links (OpenSSL 3) can be loaded and passes a self-test against
``cryptography``; otherwise :data:`AVAILABLE` is False and callers keep using ``cryptography``.
"""

from __future__ import annotations

import ctypes
import os
import threading

AVAILABLE = False

_c_void_p = ctypes.c_void_p
_c_int = ctypes.c_int
_c_size_t = ctypes.c_size_t


class _PyBuffer(ctypes.Structure):
    _fields_ = [("buf", _c_void_p), ("obj", _c_void_p), ("len", ctypes.c_ssize_t),
                ("itemsize", ctypes.c_ssize_t), ("readonly", _c_int), ("ndim", _c_int),
                ("format", _c_void_p), ("shape", _c_void_p), ("strides", _c_void_p),
                ("suboffsets", _c_void_p), ("internal", _c_void_p)]


_get_buffer = ctypes.pythonapi.PyObject_GetBuffer
_get_buffer.argtypes = [ctypes.py_object, ctypes.POINTER(_PyBuffer), _c_int]
_get_buffer.restype = _c_int
_release_buffer = ctypes.pythonapi.PyBuffer_Release
_release_buffer.argtypes = [ctypes.POINTER(_PyBuffer)]
_release_buffer.restype = None
_PyBUF_WRITABLE = 0x0001


def _load() -> ctypes.CDLL | None:
    if os.environ.get("MOVER_NO_LIBCRYPTO"):
        return None
    names = []
    try:  # the very library hashlib uses: it is there wherever Python's ssl works
        import _hashlib

        with open("/proc/self/maps") as f:
            for line in f:
                path = line.rsplit(None, 1)[-1]
                if "libcrypto.so" in path and path not in names:
                    names.append(path)
        del _hashlib
    except (ImportError, OSError):
        pass
    if not names:
        # ctypes.util imports shutil, subprocess and tempfile and runs ldconfig (~20 ms of
        # CPU and ~60 ms wall warm, before every command's key derivation can end): only when
        # hashlib's own library is not in the maps
        from ctypes.util import find_library

        found = find_library("crypto")
        if found:
            names.append(found)
    for name in names:
        try:
            lib = ctypes.CDLL(name)
        except OSError:
            continue
        if hasattr(lib, "EVP_MAC_fetch"):  # OpenSSL 3 only
            return lib
    return None


def _declare(_lib) -> None:
    _lib.EVP_aes_256_ctr.restype = _c_void_p
    _lib.EVP_aes_256_ctr.argtypes = []
    _lib.EVP_CIPHER_CTX_new.restype = _c_void_p
    _lib.EVP_CIPHER_CTX_new.argtypes = []
    _lib.EVP_CIPHER_CTX_free.restype = None
    _lib.EVP_CIPHER_CTX_free.argtypes = [_c_void_p]
    _lib.EVP_EncryptInit_ex.restype = _c_int
    _lib.EVP_EncryptInit_ex.argtypes = [_c_void_p, _c_void_p, _c_void_p, ctypes.c_char_p, ctypes.c_char_p]
    _lib.EVP_EncryptUpdate.restype = _c_int
    _lib.EVP_EncryptUpdate.argtypes = [_c_void_p, _c_void_p, ctypes.POINTER(_c_int), _c_void_p, _c_int]
    _lib.EVP_MAC_fetch.restype = _c_void_p
    _lib.EVP_MAC_fetch.argtypes = [_c_void_p, ctypes.c_char_p, ctypes.c_char_p]
    _lib.EVP_MAC_CTX_new.restype = _c_void_p
    _lib.EVP_MAC_CTX_new.argtypes = [_c_void_p]
    _lib.EVP_MAC_CTX_free.restype = None
    _lib.EVP_MAC_CTX_free.argtypes = [_c_void_p]
    _lib.EVP_MAC_init.restype = _c_int
    _lib.EVP_MAC_init.argtypes = [_c_void_p, ctypes.c_char_p, _c_size_t, _c_void_p]
    _lib.EVP_MAC_update.restype = _c_int
    _lib.EVP_MAC_update.argtypes = [_c_void_p, _c_void_p, _c_size_t]
    _lib.EVP_MAC_final.restype = _c_int
    _lib.EVP_MAC_final.argtypes = [_c_void_p, _c_void_p, ctypes.POINTER(_c_size_t), _c_size_t]


# Two views of one library: calls through CDLL release the GIL, calls through PyDLL keep it.
# Releasing pays off for the bulk of a big buffer; for set-up calls and small buffers, handing
# the GIL to another thread and waiting to get it back costs more than the call itself.
_GIL_FREE_FROM = 64 * 1024
_lib = _load()
_plib = None
if _lib is not None:
    _plib = ctypes.PyDLL(_lib._name)
    _declare(_lib)
    _declare(_plib)
    _AES_CTR = _plib.EVP_aes_256_ctr()
    _POLY = _plib.EVP_MAC_fetch(None, b"POLY1305", None)


class _Contexts:
    """One cipher and one MAC context per thread, freed when the thread ends."""

    def __init__(self) -> None:
        assert _lib is not None and _plib is not None  # callers check AVAILABLE first
        self.lib, self.plib = _lib, _plib
        self.cipher = _plib.EVP_CIPHER_CTX_new()
        self.mac = _plib.EVP_MAC_CTX_new(_POLY)
        self.outl = _c_int()
        self.macl = _c_size_t()
        self.tag = ctypes.create_string_buffer(16)
        if not self.cipher or not self.mac:
            raise MemoryError("OpenSSL could not allocate a context")

    def __del__(self) -> None:
        if _plib is not None:
            _plib.EVP_CIPHER_CTX_free(self.cipher)
            _plib.EVP_MAC_CTX_free(self.mac)


_local = threading.local()


def _ctx() -> _Contexts:
    c = getattr(_local, "c", None)
    if c is None:
        c = _local.c = _Contexts()
    return c


def _check(ok: int, what: str) -> None:
    if ok != 1:
        raise RuntimeError(f"OpenSSL {what} failed")


def ctr_into(key: bytes, iv: bytes, src, dst, dst_offset: int = 0) -> int:
    """AES-256-CTR of buffer ``src`` into writable buffer ``dst`` at ``dst_offset``."""
    sb, db = _PyBuffer(), _PyBuffer()
    _get_buffer(src, ctypes.byref(sb), 0)
    try:
        _get_buffer(dst, ctypes.byref(db), _PyBUF_WRITABLE)
        try:
            n = sb.len
            if n > 0x7FFFFFFF or db.len - dst_offset < n or dst_offset < 0:
                raise ValueError("buffer sizes do not fit")
            c = _ctx()
            _check(c.plib.EVP_EncryptInit_ex(c.cipher, _AES_CTR, None, key, iv), "EncryptInit")
            if n:
                update = (c.lib if n >= _GIL_FREE_FROM else c.plib).EVP_EncryptUpdate
                _check(update(c.cipher, db.buf + dst_offset, ctypes.byref(c.outl), sb.buf, n),
                       "EncryptUpdate")
            return n
        finally:
            _release_buffer(ctypes.byref(db))
    finally:
        _release_buffer(ctypes.byref(sb))


def poly1305(key: bytes, data) -> bytes:
    """The Poly1305 tag of buffer ``data`` under the 32-byte one-time ``key``."""
    b = _PyBuffer()
    _get_buffer(data, ctypes.byref(b), 0)
    try:
        c = _ctx()
        tag = c.tag
        _check(c.plib.EVP_MAC_init(c.mac, key, 32, None), "MAC_init")
        if b.len:
            update = (c.lib if b.len >= _GIL_FREE_FROM else c.plib).EVP_MAC_update
            _check(update(c.mac, b.buf, b.len), "MAC_update")
        _check(c.plib.EVP_MAC_final(c.mac, tag, ctypes.byref(c.macl), 16), "MAC_final")
        return tag.raw
    finally:
        _release_buffer(ctypes.byref(b))


def _self_test() -> bool:
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
    from cryptography.hazmat.primitives.poly1305 import Poly1305

    key, iv, mkey = os.urandom(32), os.urandom(16), os.urandom(32)
    for n in (0, 1, 15, 16, 17, 1000, 70000, 200000):
        data = os.urandom(n)
        out = bytearray(n + 3)
        ctr_into(key, iv, memoryview(data), out, 3)
        want = Cipher(algorithms.AES(key), modes.CTR(iv)).encryptor().update(data)
        if bytes(out[3:]) != want or poly1305(mkey, data) != Poly1305.generate_tag(mkey, data):
            return False
    return True


if _lib is not None and _AES_CTR and _POLY:
    try:
        AVAILABLE = _self_test()
    except (OSError, RuntimeError, ValueError, AttributeError):
        AVAILABLE = False
