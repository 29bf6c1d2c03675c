"""The cryptographic format of a kopia repository: the ``kopia.repository`` format blob, the
repository config it wraps (hash, encryption, secret, master key), content hashing, content
encryption and the compression headers of content payloads.

Keys come from the password in two steps: scrypt (or PBKDF2) over the repository's unique id
gives the format key; HKDF of it opens the AES-256-GCM sealed config, which holds the master key
(content encryption) and the HMAC secret (content ids).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import zlib
from typing import NamedTuple

from mover.errors import IntegrityError, RepoError

_SCRYPT = {"scrypt-65536-8-1": (65536, 8, 1)}
_PBKDF2 = {"pbkdf2-sha256-600000": 600_000}
NONCE = 12
TAG = 16


class FormatBlob(NamedTuple):
    """``kopia.repository``: what is needed to derive the format key, and the sealed config.
    (Named tuples, not dataclasses, here: the opener's thread imports this module before it
    starts the key derivation, and importing dataclasses would delay that.)"""

    unique_id: bytes
    key_algo: str
    encryption: str
    sealed_config: bytes

    @classmethod
    def parse(cls, raw: bytes, where: str) -> FormatBlob:
        try:
            d = json.loads(raw)
            return cls(base64.b64decode(d["uniqueID"]), d["keyAlgo"], d["encryption"],
                       base64.b64decode(d.get("encryptedBlockFormat") or ""))
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise IntegrityError(f"{where}: kopia.repository is not a kopia format blob ({e})") from None

    def derive_format_key(self, password: str) -> bytes:
        """The password-derived key (scrypt takes ~0.2 s and releases the GIL)."""
        pw = password.encode()
        if self.key_algo in _SCRYPT:
            n, r, p = _SCRYPT[self.key_algo]
            return hashlib.scrypt(pw, salt=self.unique_id, n=n, r=r, p=p, maxmem=256 << 20, dklen=32)
        if self.key_algo in _PBKDF2:
            return hashlib.pbkdf2_hmac("sha256", pw, self.unique_id, _PBKDF2[self.key_algo], 32)
        raise RepoError(f"kopia repository uses key derivation {self.key_algo!r}, which kbrowse "
                        f"does not know (known: {', '.join([*_SCRYPT, *_PBKDF2])})")

    def open_sealed(self, format_key: bytes, sealed: bytes) -> bytes | None:
        """Plaintext of a blob sealed under the format key (the config, kopia.blobcfg), or None
        when the key does not open it (a wrong password)."""
        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        if self.encryption == "NONE":
            return sealed
        if self.encryption != "AES256_GCM":
            raise RepoError(f"kopia format blob encryption {self.encryption!r} is not supported")
        if len(sealed) < NONCE + TAG:
            return None
        aes = AESGCM(hkdf(format_key, self.unique_id, b"AES"))
        try:
            return aes.decrypt(sealed[:NONCE], sealed[NONCE:], hkdf(format_key, self.unique_id, b"CHECKSUM"))
        except InvalidTag:
            return None


def hkdf(key: bytes, salt: bytes, info: bytes, length: int = 32) -> bytes:
    """HKDF-SHA256 (RFC 5869), extract and expand."""
    prk = hmac.new(salt or bytes(32), key, hashlib.sha256).digest()
    out, block, i = b"", b"", 1
    while len(out) < length:
        block = hmac.new(prk, block + info + bytes([i]), hashlib.sha256).digest()
        out += block
        i += 1
    return out[:length]


class RepoConfig(NamedTuple):
    """The decrypted repository config: how contents are hashed, encrypted and indexed."""

    hash: str
    encryption: str
    secret: bytes
    master_key: bytes
    version: int = 1
    index_version: int = 1
    epochs: bool = False
    ecc: str = ""
    features: tuple[str, ...] = ()

    @classmethod
    def parse(cls, plain: bytes, where: str) -> RepoConfig:
        try:
            f = json.loads(plain)["format"]
            return cls(f.get("hash") or "", f.get("encryption") or "",
                       base64.b64decode(f.get("secret") or ""),
                       base64.b64decode(f.get("masterKey") or ""),
                       int(f.get("version") or 1), int(f.get("indexVersion") or 1),
                       bool((f.get("epochParameters") or {}).get("Enabled")), f.get("ecc") or "",
                       tuple(str(r.get("feature")) for r in f.get("requiredFeatures") or []))
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise IntegrityError(f"{where}: the repository config is not valid ({e})") from None


# ---- content ids ----------------------------------------------------------------------------


def _keyed_blake2b(size: int):
    return lambda secret: lambda data: hashlib.blake2b(data, key=secret, digest_size=32).digest()[:size]


def _keyed_blake2s(size: int):
    return lambda secret: lambda data: hashlib.blake2s(data, key=secret, digest_size=size).digest()


def _hmac(algo: str, size: int):
    return lambda secret: lambda data: hmac.new(secret, data, algo).digest()[:size]


def _blake3(size: int):
    def make(secret: bytes):
        try:
            import blake3  # type: ignore[import-not-found]
        except ImportError:
            raise RepoError("this kopia repository hashes with BLAKE3: install the Python package "
                            "'blake3' to read it") from None
        key = secret
        if len(key) < 32:
            key = blake3.blake3(key, derive_key_context="kopia blake3 derived key v1").digest()
        return lambda data: blake3.blake3(data, key=key[:32]).digest()[:size]
    return make


# kopia's hash names -> factory(secret) -> fn(data) -> id bytes. BLAKE2B-256-128 is the
# 256-bit digest truncated, not a 128-bit BLAKE2b (which would give other bytes).
HASHES = {
    "BLAKE2B-256-128": _keyed_blake2b(16), "BLAKE2B-256": _keyed_blake2b(32),
    "BLAKE2S-128": _keyed_blake2s(16), "BLAKE2S-256": _keyed_blake2s(32),
    "HMAC-SHA256": _hmac("sha256", 32), "HMAC-SHA256-128": _hmac("sha256", 16),
    "HMAC-SHA224": _hmac("sha224", 28), "HMAC-SHA3-224": _hmac("sha3_224", 28),
    "HMAC-SHA3-256": _hmac("sha3_256", 32),
    "BLAKE3-256": _blake3(32), "BLAKE3-256-128": _blake3(16),
}


# ---- content encryption ---------------------------------------------------------------------


class ContentCipher:
    """AES256-GCM-HMAC-SHA256 or CHACHA20-POLY1305-HMAC-SHA256: each content has its own key,
    HMAC-SHA256 (keyed with HKDF(master key, "encryption")) of its 16-byte IV, the last 16 bytes
    of its hash; the sealed bytes are nonce + ciphertext + tag, the IV is the associated data."""

    OVERHEAD = NONCE + TAG

    def __init__(self, algorithm: str, master_key: bytes) -> None:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

        ciphers: dict[str, type[AESGCM] | type[ChaCha20Poly1305]] = {
            "AES256-GCM-HMAC-SHA256": AESGCM, "CHACHA20-POLY1305-HMAC-SHA256": ChaCha20Poly1305}
        if algorithm not in ciphers:
            raise RepoError(f"kopia encryption {algorithm!r} is not supported (supported: "
                            f"{', '.join(ciphers)})")
        if not master_key:
            raise IntegrityError("the repository config holds no master key")
        self._aead = ciphers[algorithm]
        self._secret = hkdf(master_key, b"encryption", b"")

    def open(self, sealed: bytes | memoryview, iv: bytes, what: str) -> bytes:
        from cryptography.exceptions import InvalidTag

        if len(sealed) < self.OVERHEAD:
            raise IntegrityError(f"{what}: {len(sealed)} bytes, too short to be sealed data")
        key = hmac.new(self._secret, iv, hashlib.sha256).digest()
        sealed = memoryview(sealed)
        try:
            return self._aead(key).decrypt(sealed[:NONCE], sealed[NONCE:], iv)
        except InvalidTag:
            raise IntegrityError(f"{what}: fails its authentication check (damaged data)") from None


# ---- compression ----------------------------------------------------------------------------

_ZSTD = range(0x1100, 0x1104)
_GZIP = (*range(0x1000, 0x1003), *range(0x1300, 0x1303))  # gzip and pgzip: gzip members
_DEFLATE = range(0x1500, 0x1503)
_NAMES = {0x1000: "gzip", 0x1001: "gzip-best-speed", 0x1002: "gzip-best-compression",
          0x1100: "zstd", 0x1101: "zstd-fastest", 0x1102: "zstd-better-compression",
          0x1103: "zstd-best-compression", 0x1200: "s2-default", 0x1201: "s2-better",
          0x1202: "s2-parallel-4", 0x1203: "s2-parallel-8", 0x1300: "pgzip",
          0x1301: "pgzip-best-speed", 0x1302: "pgzip-best-compression", 0x1400: "lz4",
          0x1500: "deflate-default", 0x1501: "deflate-best-speed", 0x1502: "deflate-best-compression"}
_local = threading.local()


def compressor_name(header: int) -> str:
    return _NAMES.get(header, f"unknown compressor {header:#x}")


def decompress(data: bytes | memoryview, expect: int | None, what: str) -> bytes:
    """A compressed payload: 4-byte big-endian compressor id, then that compressor's stream."""
    if len(data) < 4:
        raise IntegrityError(f"{what}: compressed payload too short")
    header = int.from_bytes(data[:4], "big")
    body = data[4:]
    try:
        if header in _ZSTD:
            import zstandard

            d = getattr(_local, "zstd", None)
            if d is None:
                d = _local.zstd = zstandard.ZstdDecompressor()
            out = d.decompressobj().decompress(body)
        elif header in _GZIP:
            out = _inflate_members(bytes(body), 31)
        elif header in _DEFLATE:
            z = zlib.decompressobj(-15)
            out = z.decompress(body) + z.flush()
        else:
            raise RepoError(f"{what}: compressed with {compressor_name(header)}, which kbrowse "
                            "cannot decompress (no Python library for it is installed)")
    except RepoError:
        raise
    except Exception as e:  # zlib.error, zstandard.ZstdError: damaged streams
        raise IntegrityError(f"{what}: cannot decompress ({compressor_name(header)}): {e}") from None
    if expect is not None and len(out) != expect:
        raise IntegrityError(f"{what}: decompressed to {len(out)} bytes, expected {expect}")
    return out


def _inflate_members(data: bytes, wbits: int) -> bytes:
    # pgzip writes several gzip members one after the other
    parts = []
    while data:
        z = zlib.decompressobj(wbits)
        parts.append(z.decompress(data))
        parts.append(z.flush())
        if not z.eof:
            raise zlib.error("truncated stream")
        data = z.unused_data
    return b"".join(parts)
