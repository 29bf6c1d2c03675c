"""Mounting a snapshot from the app: ``kbrowse.fuse.fs`` served by a thread of this process.

A thread, not the `kbrowse mount` child process: the app holds an open repository but not the
password a child would need. The filesystem runs its own request threads; unmounting
(``fusermount -u``) ends the serving thread. Signals stay the app's: it unmounts everything
when it ends.
"""

from __future__ import annotations

import os
import tempfile
import threading
from dataclasses import dataclass, field

from kbrowse.fuse.mountpoint import MountError, check_mountpoint, fusermount, load_fs
from kbrowse.fuse.tree import SnapEntry
from mover.view import Snapshot, SnapshotView

READY_TIMEOUT = 15.0


@dataclass
class SnapshotMount:
    snapshot: Snapshot
    mountpoint: str
    thread: threading.Thread
    made_dir: bool  # the mountpoint is ours to remove
    errors: list[BaseException] = field(default_factory=list)


def mount(view: SnapshotView, snap: Snapshot, mountpoint: str | None = None) -> SnapshotMount:
    """Serve ``snap`` read-only at ``mountpoint`` (default: a new directory in the temp dir);
    returns once the kernel has the mount. Holds a shared lock on the repository meanwhile, as
    `kbrowse mount` does, so a prune cannot remove packs under it."""
    fs = load_fs()
    made_dir = mountpoint is None
    mp = check_mountpoint(mountpoint or tempfile.mkdtemp(prefix=f"kbrowse-{snap.short_id}-"))
    ready = threading.Event()
    ops = fs.SnapshotFS(view, SnapEntry(snap, view.root(snap), b""), on_ready=ready.set)
    m = SnapshotMount(snap, mp, threading.Thread(), made_dir)

    def serve() -> None:
        try:
            with view.read_lock():
                fs.serve(ops, mp)
        except BaseException as e:  # reported to whoever waits for the mount
            m.errors.append(e)
        finally:
            ready.set()

    m.thread = threading.Thread(target=serve, name=f"mount-{snap.short_id}", daemon=True)
    m.thread.start()
    ready.wait(READY_TIMEOUT)
    if m.errors or not os.path.ismount(mp):
        _stop(m)
        why = m.errors[0] if m.errors else "FUSE did not come up"
        raise MountError(f"cannot mount snapshot {snap.short_id} at {mp}: {why}")
    return m


def unmount(m: SnapshotMount, *, lazy: bool = False) -> None:
    """Unmount and wait for the serving thread. When the kernel refuses (a shell still sits in
    the mount) this raises MountError, or with ``lazy`` detaches the mount instead: it is gone
    from the tree now and its last users see errors once this process exits."""
    if os.path.ismount(m.mountpoint):
        why = fusermount("-u", m.mountpoint)
        if why and lazy:
            why = fusermount("-uz", m.mountpoint)
        if why:
            raise MountError(f"cannot unmount {m.mountpoint}: {why}")
    _stop(m)


class Mounts:
    """The app's mounts, one per snapshot at most; all are unmounted when the app ends."""

    def __init__(self) -> None:
        self._mounts: dict[bytes, SnapshotMount] = {}

    def get(self, snap: Snapshot) -> SnapshotMount | None:
        return self._mounts.get(snap.id)

    def add(self, m: SnapshotMount) -> None:
        self._mounts[m.snapshot.id] = m

    def remove(self, m: SnapshotMount) -> None:
        self._mounts.pop(m.snapshot.id, None)

    def unmount_all(self) -> list[str]:
        """Unmount everything (lazily where busy); returns the problems."""
        problems = []
        for m in list(self._mounts.values()):
            try:
                unmount(m, lazy=True)
            except MountError as e:
                problems.append(str(e))
            self.remove(m)
        return problems


def _stop(m: SnapshotMount) -> None:
    if m.thread.is_alive():
        m.thread.join(READY_TIMEOUT)
    if m.made_dir:
        try:
            os.rmdir(m.mountpoint)
        except OSError:
            pass  # still mounted or not empty: leave it for the operator to see
