"""Ctrl-C while a command is still importing its modules must not print a traceback.

The command line modules call :func:`quiet_sigint` before their heavy imports; ``main`` then
restores Python's KeyboardInterrupt so running work can stop cleanly.
"""

from __future__ import annotations

import os
import signal
import sys


def quiet_sigint(prog: str) -> None:
    """Until ``main`` takes over, Ctrl-C ends ``prog`` with the line it prints later too."""
    def exit_quietly(_sig: int, _frame: object) -> None:
        sys.stderr.write(f"{prog}: interrupted\n")
        os._exit(130)

    signal.signal(signal.SIGINT, exit_quietly)
