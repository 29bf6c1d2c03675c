"""Progress of long work (backup, restore): thread-safe counters, and a rich bar on a terminal.

The engine only updates a :class:`Counters`; the CLI decides whether to draw it (on a terminal)
and the TUI reads the same counters for its own bars.
"""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass, field


@dataclass
class Counters:
    total_files: int = 0
    total_bytes: int = 0
    files: int = 0
    bytes: int = 0
    errors: int = 0
    scanning: bool = True  # totals still growing
    started: float = field(default_factory=time.monotonic)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add_total(self, files: int = 0, nbytes: int = 0) -> None:
        with self._lock:
            self.total_files += files
            self.total_bytes += nbytes

    def done(self, files: int = 0, nbytes: int = 0) -> None:
        with self._lock:
            self.files += files
            self.bytes += nbytes

    def error(self) -> None:
        with self._lock:
            self.errors += 1

    def elapsed(self) -> float:
        return time.monotonic() - self.started


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def human_duration(s: float) -> str:
    s = int(s)
    if s >= 3600:
        return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"
    return f"{s // 60}:{s % 60:02d}"


class ProgressBar:
    """Draws Counters on stderr with rich while a block runs, when stderr is a terminal."""

    def __init__(self, counters: Counters, verb: str, enabled: bool | None = None) -> None:
        self.c = counters
        self.verb = verb
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> ProgressBar:
        if self.enabled:
            self._thread = threading.Thread(target=self._draw, name="progress", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join()

    def _draw(self) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TaskProgressColumn,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        console = Console(stderr=True)
        with Progress(TextColumn("[bold]{task.description}"), BarColumn(), TaskProgressColumn(),
                      TextColumn("{task.fields[files]}"), DownloadColumn(binary_units=True),
                      TransferSpeedColumn(), TimeRemainingColumn(), console=console,
                      transient=True) as bar:
            task = bar.add_task(self.verb, total=None, files="")
            while not self._stop.wait(0.2):
                c = self.c
                total = None if c.scanning and c.total_bytes == 0 else max(c.total_bytes, c.bytes)
                files = f"{c.files}/{c.total_files}{'+' if c.scanning else ''} files"
                if c.errors:
                    files += f", {c.errors} errors"
                bar.update(task, completed=c.bytes, total=total, files=files)
