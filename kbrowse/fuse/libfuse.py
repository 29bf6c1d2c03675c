"""Serving :class:`kbrowse.fuse.fs.SnapshotFS` on libfuse2 through fusepy: the transport where the
kernel protocol of :mod:`kbrowse.fuse.kernel` cannot be spoken (macFUSE, FreeBSD), and
`kbrowse mount --fuse libfuse` anywhere. Slower on `ls -l`/`find`/`du`: libfuse2 has no
READDIRPLUS, so each file costs a LOOKUP round trip through ctypes."""

from __future__ import annotations

import ctypes
import os
import threading
from collections.abc import Callable, Iterable
from typing import Any

import fuse

from mover.errors import RepoError

_ENC = "latin-1"  # one character per byte: any name passes through as the path text
_pinned = threading.local()


class _FUSE(fuse.FUSE):
    """fusepy's FUSE with three changes: readdir offsets are passed through (fusepy drops them,
    which makes libfuse collect a whole directory before answering), open keeps the page
    cache, and each libfuse worker thread keeps its Python thread state between requests."""

    @staticmethod
    def _wrapper(func: Callable, *args: object, **kwargs: object) -> int:
        # ctypes creates and destroys a Python thread state around every callback from a thread
        # Python did not start; one extra, never released PyGILState_Ensure keeps it alive. That
        # is a third of the cost of a lookup, which `du` or `ls -l` pays once per file.
        if not getattr(_pinned, "done", False):
            ctypes.pythonapi.PyGILState_Ensure()
            _pinned.done = True
        return fuse.FUSE._wrapper(func, *args, **kwargs)

    # fip (a fuse_file_info pointer) and filler come untyped from fusepy's ctypes callbacks
    def open(self, path: bytes, fip: Any) -> int:
        fi = fip.contents
        fi.fh = self.operations("open", self._decode_optional_path(path), fi.flags)
        fi.keep_cache = 1  # content never changes: pages read by an earlier open stay valid
        return 0

    def readdir(self, path: bytes, buf: ctypes.c_void_p, filler: Any, offset: int,
                fip: Any) -> int:
        for name, attrs, next_offset, _ in self.operations(
                "readdir", self._decode_optional_path(path), fip.contents.fh, offset):
            st = fuse.c_stat()
            fuse.set_st_attrs(st, attrs, use_ns=True)
            if filler(buf, name.encode(self.encoding), st, next_offset) != 0:
                break
        return 0


class _Operations:
    """What fusepy asks of an operations object: an attribute per implemented operation (it
    registers only those with libfuse) and ``operations(name, *args)`` to call one."""

    use_ns = True

    def __init__(self, fs: object) -> None:
        self._fs = fs

    def __getattr__(self, name: str) -> object:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._fs, "readdir_plus" if name == "readdir" else name)

    def __call__(self, op: str, *args: object) -> object:
        return getattr(self, op)(*args)


def serve(ops: object, mountpoint: str, options: Iterable[str], *, cache_seconds: int) -> None:
    """Mount and serve until unmounted; libfuse's own handlers unmount on SIGINT/SIGTERM/SIGHUP."""
    kwargs: dict[str, object] = {o: True for o in options if "=" not in o}
    kwargs |= dict(o.split("=", 1) for o in options if "=" in o)
    kwargs |= {
        "use_ino": True,  # our inode numbers, so hard links share one
        "entry_timeout": cache_seconds, "attr_timeout": cache_seconds,
        "negative_timeout": 1,  # a snapshot may appear under a name that was missing
    }
    try:
        _FUSE(_Operations(ops), os.fsencode(mountpoint).decode(_ENC), encoding=_ENC,
              foreground=True, nothreads=False, **kwargs)
    except RuntimeError as e:  # libfuse has printed why on stderr
        raise RepoError(f"cannot mount at {mountpoint} (libfuse status {e})") from None
