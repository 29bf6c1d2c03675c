"""Repository locks in restic's format, so restic and mover exclude each other.

An exclusive lock conflicts with every other lock; a shared lock only with an exclusive one.
Locks older than 30 minutes, or left by a dead process on this host, are stale. Like restic
0.14, a stale lock still blocks others; unlike it, we remove stale locks that a dead process of
*this* host left behind (a killed backup), since nothing can still be using them.
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass

from mover.errors import LockedError, RepoError
from mover.golang import gojson, gotime
from mover.repo.backend import FileType, Handle
from mover.repo.identity import hostname, username

STALE_AFTER_NS = 30 * 60 * 10**9
REFRESH_EVERY_S = 5 * 60
RECHECK_WAIT_S = 0.2


@dataclass
class LockInfo:
    time: int
    exclusive: bool
    hostname: str
    username: str
    pid: int
    uid: int = 0
    gid: int = 0

    def to_bytes(self) -> bytes:
        d = {"time": gotime.format_ns(self.time, gotime.local_offset(self.time)),
             "exclusive": self.exclusive, "hostname": self.hostname, "username": self.username,
             "pid": self.pid}
        if self.uid:
            d["uid"] = self.uid
        if self.gid:
            d["gid"] = self.gid
        return gojson.dumps(d).encode()

    @classmethod
    def from_bytes(cls, raw: bytes) -> LockInfo:
        d = json.loads(raw)
        return cls(gotime.parse_ns(d["time"]), bool(d.get("exclusive")), d.get("hostname", ""),
                   d.get("username", ""), int(d.get("pid", 0)), int(d.get("uid", 0)), int(d.get("gid", 0)))

    def stale(self) -> bool:
        if time.time_ns() - self.time > STALE_AFTER_NS:
            return True
        return self.hostname == hostname() and not _pid_alive(self.pid)

    def describe(self) -> str:
        kind = "exclusive" if self.exclusive else "shared"
        return (f"{kind} lock by PID {self.pid} on {self.hostname} ({self.username}) "
                f"since {gotime.format_ns(self.time, gotime.local_offset(self.time))}")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Lock:
    """A held lock; refreshed in the background, removed by ``release`` (or ``with``)."""

    def __init__(self, repo, exclusive: bool) -> None:
        self._repo = repo
        self.exclusive = exclusive
        self._id: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._recheck: threading.Thread | None = None
        self._conflict: BaseException | None = None

    def acquire(self, confirm_before_write: bool = False) -> Lock:
        """Write the lock, wait RECHECK_WAIT_S and look again for a lock written meanwhile.

        With ``confirm_before_write`` the write, the wait and the second look run on a thread,
        and the repository's first write waits for them (``Repository.write_gate``): a backup
        walks its source meanwhile instead of waiting for the lock file's fsync and sleeping;
        a command that only reads calls :meth:`confirm` before it reports. Reading before the
        second look is safe: a holder of a conflicting lock only changes the repository after
        its own second look, and one of the two looks sees the other's lock, so one of the two
        gives up (a lock already there is seen by the first look, here, before any reading).
        """
        self._remove_own_stale()
        self._check_conflicts()
        if confirm_before_write:
            self._recheck = threading.Thread(target=self._take_later, name="lock-recheck",
                                             daemon=True)
            self._repo.write_gate = self.confirm
            self._recheck.start()
            return self
        started = time.time_ns()
        try:
            self._id = self._write()
            time.sleep(RECHECK_WAIT_S)  # a lock written at the same moment shows up by now
            self._check_conflicts()
        except BaseException:  # a conflict, or Ctrl-C while we write or wait: take our lock back
            self._stop_threads()
            if self._id:
                self._repo.backend.remove(self._handle())
                self._id = None
            else:  # Ctrl-C can land after the file is in place but before we know its name
                try:
                    self._remove_mine(since=started)
                except RepoError:
                    pass
            raise
        self._start_refresh()
        return self

    def confirm(self) -> None:
        """Wait for the second look of ``acquire(confirm_before_write=True)``; raise what it
        found, or why the lock could not be written."""
        if self._recheck is not None:
            self._recheck.join()
        if self._conflict is not None:
            raise self._conflict

    def _take_later(self) -> None:
        try:
            self._id = self._write()
        except BaseException as e:  # raised by confirm() in the writing thread
            self._conflict = e
            return
        if self._stop.wait(RECHECK_WAIT_S):
            return  # released meanwhile (release removes the lock)
        try:
            self._check_conflicts()
        except BaseException as e:
            self._conflict = e
            return
        self._start_refresh()

    def _start_refresh(self) -> None:
        self._thread = threading.Thread(target=self._refresh_loop, name="lock-refresh", daemon=True)
        self._thread.start()

    def _stop_threads(self) -> None:
        self._stop.set()
        if self._repo.write_gate == self.confirm:
            self._repo.write_gate = None
        for t in (self._recheck, self._thread):  # the re-check starts the refresh
            if t is not None:
                t.join()

    def release(self) -> None:
        self._stop_threads()
        if self._id:
            self._repo.backend.remove(self._handle())
            self._id = None

    def __enter__(self) -> Lock:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            self.release()
        except RepoError:
            if exc is None:
                raise
            # The operation's own error is the one to report (e.g. storage went away mid-backup
            # and the lock cannot be removed either); the lock stays behind, stale, for the
            # next run or `restic unlock` to remove.

    def _handle(self, name: str | None = None) -> Handle:
        return Handle(FileType.LOCK, name or self._id or "")

    def _write(self) -> str:
        info = LockInfo(time.time_ns(), self.exclusive, hostname(), username(), os.getpid(),
                        os.getuid(), os.getgid())
        return self._repo.save_unpacked(FileType.LOCK, info.to_bytes())

    def _others(self):
        for name, _size in self._repo.backend.list(FileType.LOCK):
            if name == self._id:
                continue
            try:
                yield name, LockInfo.from_bytes(self._repo.load_unpacked(FileType.LOCK, name))
            except (RepoError, ValueError, KeyError):
                continue  # restic, too, ignores locks it cannot read (a removed or damaged lock)

    def _check_conflicts(self) -> None:
        for _name, other in self._others():
            if self.exclusive or other.exclusive:
                hint = " (stale: remove it with `restic unlock`)" if other.stale() else ""
                raise LockedError(f"repository {self._repo.backend.location()} is locked: "
                                  f"{other.describe()}{hint}")

    def _remove_own_stale(self) -> None:
        host = hostname()
        for name, other in list(self._others()):
            if other.hostname == host and not _pid_alive(other.pid):
                self._repo.backend.remove(self._handle(name))

    def _remove_mine(self, since: int) -> None:
        host, pid = hostname(), os.getpid()
        for name, other in list(self._others()):
            if other.hostname == host and other.pid == pid and other.time >= since:
                self._repo.backend.remove(self._handle(name))

    def _refresh_loop(self) -> None:
        while not self._stop.wait(REFRESH_EVERY_S):
            old = self._id
            try:
                self._id = self._write()
                self._repo.backend.remove(self._handle(old))
            except RepoError:
                continue  # try again at the next refresh; the old lock is still there
