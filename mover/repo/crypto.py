"""restic's authenticated encryption: AES-256-CTR with a Poly1305-AES MAC over the ciphertext.

Layout of every sealed message: ``IV(16) || ciphertext || MAC(16)``. The IV is both the CTR
initial counter block and the Poly1305-AES nonce (``s = AES-128(mac.k, IV)``).
"""

from __future__ import annotations

import base64
import hmac
import os
import threading
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.poly1305 import Poly1305

from mover.errors import IntegrityError
from mover.repo import libcrypto

IV_SIZE = 16
MAC_SIZE = 16
OVERHEAD = IV_SIZE + MAC_SIZE

_R_MASK = bytes.fromhex("ffffff0ffcffff0ffcffff0ffcffff0f")


@dataclass(frozen=True)
class Key:
    """A master (or password-derived) key: AES-256 key plus the Poly1305-AES key pair."""

    encrypt: bytes  # 32 bytes
    mac_k: bytes  # 16 bytes, AES-128 key for the nonce encryption
    mac_r: bytes  # 16 bytes, Poly1305 r (masked)
    # per-thread ECB encryptor for the Poly1305 nonces: building a Cipher costs ~10 us, as much
    # as sealing a small blob
    _local: threading.local = field(default_factory=threading.local, init=False, repr=False,
                                    compare=False, hash=False)

    @classmethod
    def random(cls) -> Key:
        return cls(os.urandom(32), os.urandom(16), _mask_r(os.urandom(16)))

    @classmethod
    def from_kdf_output(cls, raw: bytes) -> Key:
        """Split 64 bytes of scrypt output the way restic does: enc | mac.k | mac.r."""
        return cls(raw[:32], raw[32:48], _mask_r(raw[48:64]))

    def to_json(self) -> dict:
        def b64(b: bytes) -> str:
            return base64.b64encode(b).decode()

        return {"mac": {"k": b64(self.mac_k), "r": b64(self.mac_r)}, "encrypt": b64(self.encrypt)}

    @classmethod
    def from_json(cls, obj: dict) -> Key:
        try:
            enc = base64.b64decode(obj["encrypt"])
            k = base64.b64decode(obj["mac"]["k"])
            r = base64.b64decode(obj["mac"]["r"])
        except (KeyError, TypeError, ValueError) as e:
            raise IntegrityError(f"master key is malformed: {e}") from None
        if len(enc) != 32 or len(k) != 16 or len(r) != 16:
            raise IntegrityError("master key has wrong field lengths")
        return cls(enc, k, _mask_r(r))

    def _poly_key(self, iv: bytes) -> bytes:
        local = self._local
        ecb = getattr(local, "ecb", None)
        if ecb is None:
            ecb = local.ecb = Cipher(algorithms.AES(self.mac_k), modes.ECB()).encryptor()
        return self.mac_r + ecb.update(iv)  # ECB: one block in, one block out, no state kept

    def _ctr(self, iv: bytes):
        local = self._local
        aes = getattr(local, "aes", None)
        if aes is None:
            aes = local.aes = algorithms.AES(self.encrypt)
        return Cipher(aes, modes.CTR(iv))

    def seal(self, plaintext: bytes | memoryview) -> bytes:
        """Encrypt and authenticate; returns IV || ciphertext || MAC."""
        return bytes(self.seal_buffer(plaintext))

    def seal_buffer(self, plaintext: bytes | memoryview) -> bytearray:
        """:meth:`seal` into one new buffer, with no intermediate copies (the hot path)."""
        iv = os.urandom(IV_SIZE)
        while iv == bytes(IV_SIZE):  # restic refuses an all-zero IV
            iv = os.urandom(IV_SIZE)
        n = len(plaintext) if isinstance(plaintext, bytes) else memoryview(plaintext).nbytes
        out = bytearray(IV_SIZE + n + MAC_SIZE)  # update_into wants n + 15 bytes of room
        out[:IV_SIZE] = iv
        view = memoryview(out)
        body = view[IV_SIZE:IV_SIZE + n]
        if libcrypto.AVAILABLE:  # the same OpenSSL code, without holding the GIL
            libcrypto.ctr_into(self.encrypt, iv, plaintext, out, IV_SIZE)
            view[IV_SIZE + n:] = libcrypto.poly1305(self._poly_key(iv), body)
        else:
            if n:
                self._ctr(iv).encryptor().update_into(plaintext, view[IV_SIZE:])
            view[IV_SIZE + n:] = Poly1305.generate_tag(self._poly_key(iv), body)
        body.release()
        view.release()
        return out

    def open(self, sealed: bytes | memoryview, what: str = "data") -> bytes:
        """Verify and decrypt ``IV || ciphertext || MAC``.

        Raises IntegrityError naming ``what`` when the MAC does not match (wrong key,
        a flipped byte, a truncated message).
        """
        return bytes(self.open_buffer(sealed, what))

    def open_buffer(self, sealed: bytes | memoryview, what: str = "data") -> bytes | bytearray:
        """:meth:`open` without the final copy: a bytearray when decrypted through libcrypto."""
        sealed = memoryview(sealed)
        if len(sealed) < OVERHEAD:
            raise IntegrityError(f"{what}: ciphertext too short ({len(sealed)} bytes), file truncated?")
        iv = bytes(sealed[:IV_SIZE])
        if iv == bytes(IV_SIZE):
            raise IntegrityError(f"{what}: invalid all-zero IV")
        if not self.mac_ok(sealed):
            raise IntegrityError(f"{what}: MAC check failed (damaged data or wrong key)")
        ct = sealed[IV_SIZE:-MAC_SIZE]
        if libcrypto.AVAILABLE:
            out = bytearray(len(ct))
            libcrypto.ctr_into(self.encrypt, iv, ct, out)
            return out
        dec = self._ctr(iv).decryptor()
        return dec.update(ct) + dec.finalize()

    def mac_ok(self, sealed: bytes | memoryview) -> bool:
        """True when the MAC of a sealed message verifies (used by check without decrypting)."""
        sealed = memoryview(sealed)
        if len(sealed) < OVERHEAD:
            return False
        poly_key = self._poly_key(bytes(sealed[:IV_SIZE]))
        if libcrypto.AVAILABLE:
            return hmac.compare_digest(libcrypto.poly1305(poly_key, sealed[IV_SIZE:-MAC_SIZE]),
                                       bytes(sealed[-MAC_SIZE:]))
        try:
            Poly1305.verify_tag(poly_key, sealed[IV_SIZE:-MAC_SIZE], bytes(sealed[-MAC_SIZE:]))
        except InvalidSignature:
            return False
        return True


def _mask_r(r: bytes) -> bytes:
    return bytes(a & b for a, b in zip(r, _R_MASK, strict=True))
