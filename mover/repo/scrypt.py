"""scrypt for key files, over the parameters restic accepts (Go's x/crypto/scrypt), not OpenSSL's.

OpenSSL (behind both ``hashlib`` and ``cryptography``) also enforces RFC 7914's N < 2^(16 r),
which Go never checked: a key with r=1 and N=2^18 (rustic_core's test keys have such
parameters, and restic 0.14 opens a key so made) is refused by OpenSSL as "memory limit
exceeded" whatever memory it is given. Those keys are derived with libsodium's scrypt instead, through ctypes, which releases the
GIL as hashlib does (opening runs on a thread beside the command's imports: see
:mod:`mover.repo.open`). Everything here stays light to import for the same reason.

Memory is what the parameters need (128·r·(N+p+2) bytes, as Go and OpenSSL allocate) and at most
:data:`MAX_MEMORY`: a key file asking for more is refused before anything is allocated, so a
damaged or hostile key cannot take the machine's memory.
"""

from __future__ import annotations

import hashlib
import threading
from typing import TYPE_CHECKING

from mover.errors import IntegrityError, RepoError

if TYPE_CHECKING:
    import ctypes

MAX_MEMORY = 1 << 30  # 1 GiB: 16 times what restic's calibration aims at (60 MiB)
_MARGIN = 1 << 20  # OpenSSL's own bookkeeping beside the scrypt arrays


def memory_needed(n: int, r: int, p: int) -> int:
    return 128 * r * (n + p + 2)


def scrypt(password: bytes, salt: bytes, n: int, r: int, p: int, dklen: int, what: str) -> bytes:
    """The derived key; RepoError, one line naming ``what``, for parameters restic would refuse
    or that need more than MAX_MEMORY."""
    params = f"N={n} r={r} p={p}"
    if n <= 1 or n & (n - 1):
        raise IntegrityError(f"{what}: scrypt parameter N must be a power of 2 above 1 ({params})")
    if r < 1 or p < 1 or r * p >= 1 << 30:
        raise IntegrityError(f"{what}: scrypt parameters out of range ({params})")
    need = memory_needed(n, r, p)
    if need > MAX_MEMORY:
        raise RepoError(f"{what}: scrypt with {params} needs {-(-need >> 20)} MiB, more than the "
                        f"{MAX_MEMORY >> 20} MiB allowed for deriving a key")
    if n.bit_length() <= 16 * r:  # n < 2^(16 r), which OpenSSL insists on
        try:
            return hashlib.scrypt(password, salt=salt, n=n, r=r, p=p, dklen=dklen,
                                  maxmem=need + _MARGIN)
        except (ValueError, MemoryError) as e:  # the system really has no 1 GiB for us
            raise RepoError(f"{what}: cannot derive the key with scrypt {params} ({e})") from None
    return _sodium_scrypt(password, salt, n, r, p, dklen, what)


_sodium: ctypes.CDLL | None = None
_sodium_lock = threading.Lock()


def _load_sodium() -> ctypes.CDLL | None:
    # ctypes.util (subprocess, shutil: ~15 ms) only for keys OpenSSL cannot derive: every
    # command imports this module before its key derivation starts
    import ctypes
    import ctypes.util

    global _sodium
    with _sodium_lock:
        if _sodium is None:
            name = ctypes.util.find_library("sodium")
            try:
                lib = ctypes.CDLL(name or "libsodium.so.23")
                fn = lib.crypto_pwhash_scryptsalsa208sha256_ll
            except (OSError, AttributeError):
                return None
            if lib.sodium_init() < 0:
                return None
            fn.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_size_t,
                           ctypes.c_uint64, ctypes.c_uint32, ctypes.c_uint32, ctypes.c_char_p,
                           ctypes.c_size_t]
            fn.restype = ctypes.c_int
            _sodium = lib
        return _sodium


def _sodium_scrypt(password: bytes, salt: bytes, n: int, r: int, p: int, dklen: int,
                   what: str) -> bytes:
    import ctypes

    lib = _load_sodium()
    if lib is None:
        raise RepoError(f"{what}: scrypt with N={n} r={r} is beyond what OpenSSL computes (it "
                        f"needs N < 2^(16*r)); install libsodium (Debian: libsodium23) to open it")
    out = ctypes.create_string_buffer(dklen)
    if lib.crypto_pwhash_scryptsalsa208sha256_ll(password, len(password), salt, len(salt),
                                                 n, r, p, out, dklen) != 0:
        raise RepoError(f"{what}: libsodium could not derive the key with scrypt N={n} r={r} p={p} "
                        f"(out of memory?)")
    return out.raw
