"""Key files: the master key, encrypted under a key derived from the password with scrypt."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
from dataclasses import dataclass

from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from mover.repo import gojson, gotime
from mover.repo.crypto import Key
from mover.repo.errors import IntegrityError
from mover.repo.identity import hostname, username

SALT_SIZE = 64  # restic rejects any other salt length
# restic calibrates N,r,p to ~0.5 s and 60 MiB; N=2^15, r=8 is what that yields. p=1 keeps
# opening a repository quick; readers take whatever the file says.
DEFAULT_N, DEFAULT_R, DEFAULT_P = 32768, 8, 1


@dataclass
class KeyFile:
    created: str
    username: str
    hostname: str
    kdf: str
    n: int
    r: int
    p: int
    salt: bytes
    data: bytes

    def to_bytes(self) -> bytes:
        obj = {"created": self.created, "username": self.username, "hostname": self.hostname,
               "kdf": self.kdf, "N": self.n, "r": self.r, "p": self.p,
               "salt": base64.b64encode(self.salt).decode(), "data": base64.b64encode(self.data).decode()}
        return gojson.dumps(obj).encode()

    @classmethod
    def from_bytes(cls, raw: bytes, what: str) -> "KeyFile":
        try:
            obj = json.loads(raw)
            return cls(obj.get("created", ""), obj.get("username", ""), obj.get("hostname", ""),
                       obj["kdf"], int(obj["N"]), int(obj["r"]), int(obj["p"]),
                       base64.b64decode(obj["salt"]), base64.b64decode(obj["data"]))
        except (ValueError, KeyError, TypeError) as e:
            raise IntegrityError(f"{what}: not a valid key file ({e})") from None


def derive(password: bytes, kf: KeyFile, what: str) -> Key:
    if kf.kdf != "scrypt":
        raise IntegrityError(f"{what}: unsupported KDF {kf.kdf!r}")
    if len(kf.salt) != SALT_SIZE:
        raise IntegrityError(f"{what}: salt is {len(kf.salt)} bytes, expected {SALT_SIZE}")
    try:
        # hashlib's scrypt is OpenSSL's, as cryptography's is, but it releases the GIL for its
        # half second, so other threads (mover backup's prescan) run meanwhile
        raw = hashlib.scrypt(password, salt=kf.salt, n=kf.n, r=kf.r, p=kf.p, dklen=64,
                             maxmem=min(2**31 - 1, 128 * kf.r * (kf.n + kf.p + 2) + (1 << 20)))
    except (ValueError, OverflowError, MemoryError, TypeError):  # let cryptography say why
        raw = Scrypt(salt=kf.salt, length=64, n=kf.n, r=kf.r, p=kf.p).derive(password)
    return Key.from_kdf_output(raw)


def open_master(password: bytes, kf: KeyFile, what: str) -> Key | None:
    """The master key, or None when the password does not open this key file."""
    user_key = derive(password, kf, what)
    if not user_key.mac_ok(kf.data):
        return None
    return Key.from_json(json.loads(user_key.open(kf.data, what)))


def new_key_file(password: bytes, master: Key) -> tuple[str, bytes]:
    """A key file for ``master`` under ``password``: (file id, file bytes)."""
    kf = KeyFile(created=gotime.format_ns(time.time_ns()), username=username(),
                 hostname=hostname(), kdf="scrypt", n=DEFAULT_N, r=DEFAULT_R,
                 p=DEFAULT_P, salt=os.urandom(SALT_SIZE), data=b"")
    user_key = derive(password, kf, "new key")
    kf.data = user_key.seal(gojson.dumps(master.to_json()).encode())
    raw = kf.to_bytes()
    return hashlib.sha256(raw).hexdigest(), raw
