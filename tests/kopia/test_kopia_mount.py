"""A mounted kopia snapshot equals `kopia snapshot restore` of it, and the repository mount
lays kopia's snapshots out as restic's (snapshots/<time>/, ids/<id>/), taking in new ones."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from tests.kopia.kopia_cli import KOPIA_PASSWORD, Kopia, restore_differences
from tests.fuse.test_mount import _MISSING, mounted
from tests.support.treekit import make_full_tree

pytestmark = pytest.mark.skipif(_MISSING is not None, reason=f"cannot mount: {_MISSING}")


def _mount(repo: Path, pw: Path, mp: Path, *extra: str):
    return mounted([sys.executable, "-m", "kbrowse.cli", "mount", "--foreground", "-r", str(repo),
                    "--password-file", str(pw), str(mp), *extra], mp)


def test_mounted_snapshot_equals_kopia_restore(tmp_path: Path) -> None:
    src = tmp_path / "src"
    make_full_tree(src)
    (src / "big.bin").write_bytes(os.urandom(20 << 20))  # several pieces: read-ahead runs
    k = Kopia(tmp_path / "kopia")
    k.create_filesystem(tmp_path / "repo")
    first = k.snapshot(src)
    (src / "later.txt").write_text("later\n")
    second = k.snapshot(src)
    theirs = tmp_path / "kopia-restore"
    k.restore(second, theirs)
    pw = tmp_path / "password"
    pw.write_text(KOPIA_PASSWORD + "\n")

    with _mount(tmp_path / "repo", pw, tmp_path / "one", second[:8]) as m:
        assert restore_differences(m.path, theirs) == []
    with _mount(tmp_path / "repo", pw, tmp_path / "all") as m:
        assert sorted(os.listdir(m.path / "ids")) == sorted([first, second])
        assert restore_differences(m.path / "ids" / second, theirs) == []
        assert (m.path / "snapshots" / "latest" / "later.txt").read_text() == "later\n"
        (src / "while-mounted.txt").write_text("new\n")  # a backup lands: no remount needed
        third = k.snapshot(src)
        deadline = time.monotonic() + 30
        while third not in os.listdir(m.path / "ids") and time.monotonic() < deadline:
            time.sleep(0.2)
        assert (m.path / "ids" / third / "while-mounted.txt").read_text() == "new\n"
