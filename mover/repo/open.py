"""Turn a repository string (restic's conventions) into a backend and an open repository.

Imported by the command lines before anything heavy: :class:`Opening` starts the key
derivation first, and the command imports what it needs while scrypt runs.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from mover.errors import RepoError
from mover.repo import (
    keyfile,
    malloc,  # noqa: F401 - glibc's settings, before the first thread starts
)
from mover.repo.backend import Backend, FileType
from mover.repo.backend.local import LocalBackend

if TYPE_CHECKING:
    from mover.repo.crypto import Key
    from mover.repo.repository import Repository


def open_backend(location: str) -> Backend:
    """``/path`` or ``local:/path`` is a directory; ``s3:...`` is S3 (restic's forms)."""
    if location.startswith("s3:"):
        from mover.repo.backend.s3 import S3Backend  # boto3 is slow to import; only when needed

        return S3Backend.from_url(location)
    if location.startswith("local:"):
        location = location[len("local:"):]
    return LocalBackend(location)


def open_repository(location: str, password: str) -> Repository:
    from mover.repo.repository import Repository  # heavy; the early command-line path avoids it

    return Repository.open(open_backend(location), password)


def _prefetch(backend: Backend) -> None:
    """Have the index and the snapshots read from disk while the key is derived: they need no
    key to be read, only to be opened, and every command loads the index first (most also
    the snapshots), which on a cold cache waited for the disk after the key derivation."""
    try:
        for t in (FileType.INDEX, FileType.SNAPSHOT):
            backend.prefetch(t)
    except RepoError:
        pass  # a hint only: the loads themselves report what is wrong


class Opening:
    """A repository being opened on a thread of its own; :meth:`result` waits for it.

    Opening is mostly scrypt (~0.5 s with the parameters restic calibrates), which releases the
    GIL, and the thread imports only light modules before it (see :mod:`mover.repo.keyfile`):
    a command starts one first and imports the rest of what it needs meanwhile, instead of
    paying ~0.2 s of imports and then the key derivation one after the other.
    """

    def __init__(self, location: str, password: str) -> None:
        self.location = location
        self.password = password
        self._backend: Backend | None = None
        self._master: Key | None = None
        self._error: BaseException | None = None
        self._repo: Repository | None = None
        self._thread = threading.Thread(target=self._run, name="open", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._backend = open_backend(self.location)
            threading.Thread(target=_prefetch, args=(self._backend,), name="prefetch",
                             daemon=True).start()
            self._master = keyfile.find_master(self._backend, self.password)
        except BaseException as e:  # raised again in the caller's thread
            self._error = e

    def result(self) -> Repository:
        if self._repo is None:
            self._thread.join()
            if self._error is not None:
                raise self._error
            assert self._backend is not None and self._master is not None  # set unless it failed
            from mover.repo.repository import Repository  # imported by the caller meanwhile

            self._repo = Repository.open_with_key(self._backend, self._master)
        return self._repo
