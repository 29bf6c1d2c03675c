"""Who and where we are, as recorded in keys, locks and snapshots."""

from __future__ import annotations

import getpass
import socket


def username() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return ""


def hostname() -> str:
    return socket.gethostname()
