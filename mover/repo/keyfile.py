"""Key files: the master key, encrypted under a key derived from the password with scrypt.

Opening a repository is mostly scrypt (~0.5 s with the parameters restic calibrates), and
``hashlib.scrypt`` releases the GIL: commands start :func:`find_master` on a thread before they
import the rest of what they need (see ``mover.repo.open.Opening``). So this module imports
only what it takes to reach scrypt; ``cryptography`` and :mod:`mover.repo.crypto` (which loads
and self-tests libcrypto) are imported once scrypt has run, by when the caller's own imports
have usually brought them in.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mover.golang import gojson

from mover.golang import gotime
from mover.repo.backend import Backend, FileType, Handle
from mover.errors import IntegrityError, NotARepository, WrongPassword
from mover.repo.identity import hostname, username

if TYPE_CHECKING:
    from mover.repo.crypto import Key

SALT_SIZE = 64  # restic rejects any other salt length
# restic calibrates N,r,p to ~0.5 s and 60 MiB; N=2^15, r=8 is what that yields. p=1 keeps
# opening a repository quick; readers take whatever the file says.
DEFAULT_N, DEFAULT_R, DEFAULT_P = 32768, 8, 1
MAX_KEYS_TRIED = 20


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
    raw = _scrypt(password, kf, what)
    from mover.repo.crypto import Key  # after scrypt: see the module's docstring

    return Key.from_kdf_output(raw)


def _scrypt(password: bytes, kf: KeyFile, what: str) -> bytes:
    if kf.kdf != "scrypt":
        raise IntegrityError(f"{what}: unsupported KDF {kf.kdf!r}")
    if len(kf.salt) != SALT_SIZE:
        raise IntegrityError(f"{what}: salt is {len(kf.salt)} bytes, expected {SALT_SIZE}")
    try:
        # hashlib's scrypt is OpenSSL's, as cryptography's is, but it releases the GIL for its
        # half second, so other threads (the command's imports, backup's prescan) run meanwhile
        return hashlib.scrypt(password, salt=kf.salt, n=kf.n, r=kf.r, p=kf.p, dklen=64,
                              maxmem=min(2**31 - 1, 128 * kf.r * (kf.n + kf.p + 2) + (1 << 20)))
    except (ValueError, OverflowError, MemoryError, TypeError):  # let cryptography say why
        from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

        return Scrypt(salt=kf.salt, length=64, n=kf.n, r=kf.r, p=kf.p).derive(password)


def open_master(password: bytes, kf: KeyFile, what: str) -> Key | None:
    """The master key, or None when the password does not open this key file."""
    user_key = derive(password, kf, what)
    if not user_key.mac_ok(kf.data):
        return None
    from mover.repo.crypto import Key  # imported by derive already

    return Key.from_json(json.loads(user_key.open(kf.data, what)))


def find_master(backend: Backend, password: str) -> Key:
    """The master key from the first key file (of at most MAX_KEYS_TRIED) that opens with
    ``password``, as restic looks for it."""
    where = backend.location()
    # a wrong path should say "no repository", not "no key files"
    if not backend.exists(Handle(FileType.CONFIG)):
        raise NotARepository(f"no repository at {where} (no 'config' file): check the path, "
                             f"or create one with `mover init`")
    tried = 0
    for name, _size in backend.list(FileType.KEY):
        if tried >= MAX_KEYS_TRIED:
            break
        tried += 1
        what = f"key {name[:8]} in {where}"
        kf = KeyFile.from_bytes(backend.load(Handle(FileType.KEY, name)), what)
        master = open_master(password.encode(), kf, what)
        if master is not None:
            return master
    if tried == 0:
        raise NotARepository(f"repository at {where} has no key files; it is damaged or incomplete")
    raise WrongPassword(f"wrong password for repository {where}: no key opens with it")


def new_key_file(password: bytes, master: Key) -> tuple[str, bytes]:
    """A key file for ``master`` under ``password``: (file id, file bytes)."""
    kf = KeyFile(created=gotime.format_ns(time.time_ns()), username=username(),
                 hostname=hostname(), kdf="scrypt", n=DEFAULT_N, r=DEFAULT_R,
                 p=DEFAULT_P, salt=os.urandom(SALT_SIZE), data=b"")
    user_key = derive(password, kf, "new key")
    kf.data = user_key.seal(gojson.dumps(master.to_json()).encode())
    raw = kf.to_bytes()
    return hashlib.sha256(raw).hexdigest(), raw
