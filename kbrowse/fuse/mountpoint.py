"""What mounting needs before a byte is served, for `kbrowse mount` and the app's mount alike:
a usable mountpoint, FUSE itself, and fusermount to end a mount."""

from __future__ import annotations

import errno
import os
import shutil
import stat
import subprocess
from types import ModuleType

from mover.errors import RepoError


class MountError(RepoError):
    """The mountpoint or FUSE itself is unusable."""


def check_mountpoint(path: str) -> str:
    """The absolute mountpoint, or a MountError saying why it cannot be used."""
    mp = os.path.abspath(path)
    try:
        st = os.stat(mp)
    except FileNotFoundError:
        raise MountError(f"mountpoint {path} does not exist (create it with mkdir)") from None
    except OSError as e:
        if e.errno == errno.ENOTCONN:
            raise MountError(f"mountpoint {path} is a dead mount: run `kbrowse umount {path}`") from None
        raise MountError(f"cannot use mountpoint {path}: {e.strerror}") from None
    if not stat.S_ISDIR(st.st_mode):
        raise MountError(f"mountpoint {path} is not a directory")
    if os.path.ismount(mp):
        raise MountError(f"mountpoint {path} is already mounted (unmount it with `kbrowse umount {path}`)")
    if os.listdir(mp):
        raise MountError(f"mountpoint {path} is not empty")
    return mp


def load_fs(transport: str | None = None) -> ModuleType:
    """:mod:`kbrowse.fuse.fs`, once FUSE is known to work with ``transport`` (None: this
    system's default); a MountError that says what to install otherwise."""
    if not os.path.exists("/dev/fuse"):
        raise MountError("FUSE is not available: /dev/fuse is missing (load the fuse kernel module, "
                         "or give the container the device)")
    from kbrowse.fuse import fs

    if (transport or fs.default_transport()) == "kernel":
        if shutil.which("fusermount") is None:
            raise MountError("FUSE is not available: fusermount is missing (install the Debian "
                             "package fuse)")
        return fs
    try:
        from kbrowse.fuse import libfuse  # noqa: F401  (fusepy loads libfuse2 here)
    except (ImportError, OSError) as e:  # fusepy raises OSError when libfuse is missing
        raise MountError(f"FUSE is not available: {e} (install the Debian package fuse and "
                         f"the Python package fusepy)") from None
    return fs


def fusermount(flags: str, mountpoint: str) -> str:
    """Run ``fusermount FLAGS MOUNTPOINT`` (plain ``umount`` where fusermount is missing):
    '' on success, else why not, in the tool's own last words."""
    tool = shutil.which("fusermount")
    cmd = [tool, flags, mountpoint] if tool else ["umount", *(["-l"] if "z" in flags else []),
                                                  mountpoint]
    proc = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL, check=False)
    if proc.returncode == 0:
        return ""
    return (proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"])[-1]
