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

from mover.errors import BackendError, IntegrityError, NotARepository, RepoError, WrongPassword
from mover.golang import gojson, gotime
from mover.repo.backend import Backend, FileType, Handle
from mover.repo.identity import hostname, username
from mover.repo.scrypt import scrypt

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
    def from_bytes(cls, raw: bytes, what: str) -> KeyFile:
        try:
            obj = json.loads(raw)
            return cls(obj.get("created", ""), obj.get("username", ""), obj.get("hostname", ""),
                       obj["kdf"], int(obj["N"]), int(obj["r"]), int(obj["p"]),
                       gojson.b64decode(obj["salt"]), gojson.b64decode(obj["data"]))
        except (ValueError, KeyError, TypeError, AttributeError) as e:
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
    return scrypt(password, kf.salt, kf.n, kf.r, kf.p, 64, what)


def open_master(password: bytes, kf: KeyFile, what: str) -> Key | None:
    """The master key, or None when the password does not open this key file."""
    user_key = derive(password, kf, what)
    if not user_key.mac_ok(kf.data):
        return None
    from mover.repo.crypto import Key  # imported by derive already

    return Key.from_json(json.loads(user_key.open(kf.data, what)))


def find_master(backend: Backend, password: str) -> Key:
    """The master key from the first key file (of at most MAX_KEYS_TRIED) that opens with
    ``password``, as restic looks for it. A key file that cannot be used (damaged, or asking
    scrypt for too much) is passed over while another may still open; the error names it, and
    is not "wrong password" when no key could be tried at all."""
    where = backend.location()
    # a wrong path should say "no repository", not "no key files"
    if not backend.exists(Handle(FileType.CONFIG)):
        raise NotARepository(f"no repository at {where} (no 'config' file): check the path, "
                             f"or create one with `mover init`")
    tried = 0
    unusable: list[RepoError] = []
    for name, _size in backend.list(FileType.KEY):
        if tried >= MAX_KEYS_TRIED:
            break
        tried += 1
        what = f"key {name[:8]} in {where}"
        try:
            kf = KeyFile.from_bytes(backend.load(Handle(FileType.KEY, name)), what)
            master = open_master(password.encode(), kf, what)
        except BackendError:
            raise
        except RepoError as e:
            unusable.append(e)
            continue
        if master is not None:
            return master
    if tried == 0:
        raise NotARepository(f"repository at {where} has no key files; it is damaged or incomplete")
    if unusable and len(unusable) == tried:
        raise unusable[0]  # not a matter of the password: no key could be tried with it
    also = f"; {unusable[0]}" if unusable else ""
    raise WrongPassword(f"wrong password for repository {where}: no key opens with it{also}")


def new_key_file(password: bytes, master: Key, n: int = DEFAULT_N, r: int = DEFAULT_R,
                 p: int = DEFAULT_P) -> tuple[str, bytes]:
    """A key file for ``master`` under ``password``: (file id, file bytes)."""
    kf = KeyFile(created=gotime.format_ns(time.time_ns()), username=username(),
                 hostname=hostname(), kdf="scrypt", n=n, r=r, p=p,
                 salt=os.urandom(SALT_SIZE), data=b"")
    user_key = derive(password, kf, "new key")
    kf.data = user_key.seal(gojson.dumps(master.to_json()).encode())
    raw = kf.to_bytes()
    return hashlib.sha256(raw).hexdigest(), raw
