"""Who and where we are, as recorded in keys, locks and snapshots."""

from __future__ import annotations

import getpass
import os


def username() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return ""


def hostname() -> str:
    # what socket.gethostname() and Go's os.Hostname() return, without importing socket
    # (~6 ms, before the key derivation starts)
    return os.uname().nodename
