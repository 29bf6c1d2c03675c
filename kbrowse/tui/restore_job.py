"""Restoring one entry of a snapshot, with a choice for files that already exist.

The restorer always replaces what is in its way. To keep existing files instead ("skip"), a
folder is restored into a fresh directory beside the target and only the entries the target
lacks are moved in; a single file is simply not restored when its target exists. Skipped data
is therefore still read from the repository: honest and simple, not the fastest.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from dataclasses import dataclass, field

from mover.progress import Counters
from mover.view import RestoreResult, SnapshotView
from mover.view.node import Node

OVERWRITE, SKIP = "overwrite", "skip"


@dataclass
class RestoreOutcome:
    target: str  # where the entry now is: the folder, or the file's path
    result: RestoreResult = field(default_factory=RestoreResult)
    skipped: int = 0  # entries kept because they existed

    @property
    def ok(self) -> bool:
        return self.result.ok


def file_target(node: Node, dest: str) -> str:
    """Where the restorer puts ``node``: a folder's contents go into ``dest``, a file goes into
    ``dest`` when that is a folder, else to the path ``dest``."""
    if node.type != "dir" and os.path.isdir(dest):
        return os.path.join(dest, node.name)
    return dest


def restore_entry(view: SnapshotView, node: Node, dest: str, *, existing: str = OVERWRITE,
                  counters: Counters | None = None, cancel: threading.Event | None = None,
                  workers: int = 4) -> RestoreOutcome:
    dest = os.path.abspath(dest)
    target = file_target(node, dest)
    counters = counters or Counters()
    if existing == OVERWRITE or not os.path.lexists(target):
        res = view.restore(node, dest, counters, workers=workers, cancel=cancel)
        return RestoreOutcome(target, res)
    if node.type != "dir":
        counters.scanning = False
        return RestoreOutcome(target, skipped=1)
    if os.path.islink(target) or not os.path.isdir(target):
        # a file where the folder should go: skipping it means restoring nothing
        counters.scanning = False
        return RestoreOutcome(target, skipped=1)
    staging = tempfile.mkdtemp(prefix=".kbrowse-restore-", dir=os.path.dirname(target))
    try:
        res = view.restore(node, staging, counters, workers=workers, cancel=cancel)
        out = RestoreOutcome(target, res)
        if not res.cancelled:
            out.skipped = _merge_missing(staging, target)
        return out
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _merge_missing(src: str, dst: str) -> int:
    """Move what ``dst`` lacks from ``src``; returns how many existing entries were kept.

    Never descends into a symlink of ``dst``, so nothing lands outside the target.
    """
    kept = 0
    with os.scandir(src) as it:
        entries = list(it)
    for entry in entries:
        there = os.path.join(dst, entry.name)
        if not os.path.lexists(there):
            os.rename(entry.path, there)
        elif (entry.is_dir(follow_symlinks=False) and os.path.isdir(there)
              and not os.path.islink(there)):
            kept += _merge_missing(entry.path, there)
        else:
            kept += 1
    return kept
