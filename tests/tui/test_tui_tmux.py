"""The app in a real terminal: `kbrowse -r REPO` in tmux shows the snapshots, Enter opens one;
`kbrowse demo`, the README's first command, opens on the demo bucket's backups."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from kbrowse.demo import run_demo

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")


def _capture(session: str) -> str:
    return subprocess.run(["tmux", "capture-pane", "-p", "-t", session], capture_output=True,
                          text=True, check=True).stdout


def _wait_for(session: str, text: str, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    screen = ""
    while time.monotonic() < deadline:
        screen = _capture(session)
        if text in screen:
            return screen
        time.sleep(0.2)
    raise AssertionError(f"{text!r} did not appear; the screen shows:\n{screen}")


@contextmanager
def kbrowse_in_tmux(args: str) -> Iterator[str]:
    """`kbrowse ARGS` in a 160x40 tmux session (its name yielded), killed afterwards."""
    kbrowse = str(Path(sys.executable).with_name("kbrowse"))
    session = f"kb-{uuid.uuid4().hex[:8]}"
    # COLUMNS/LINES from the test's environment would pin the app to that size, not tmux's
    cmd = f"env -u COLUMNS -u LINES {kbrowse} {args}; echo EXITED rc=$?; sleep 60"
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "160", "-y", "40", cmd],
                   check=True)
    try:
        yield session
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)


def _keys(session: str, *keys: str) -> None:
    subprocess.run(["tmux", "send-keys", "-t", session, *keys], check=True)


def test_app_opens_repository_and_enter_opens_newest_snapshot(tmp_path: Path) -> None:
    demo = run_demo(tmp_path / "demo")
    with kbrowse_in_tmux(f"-r {demo.repo_path} --password-file {demo.password_file}") as session:
        screen = _wait_for(session, "backup=shop-daily-1")
        assert "backup=shop-daily-2" in screen and "4 snapshots" in screen
        # the newest snapshot is first and selected: Enter opens it in the browser
        _keys(session, "Enter")
        screen = _wait_for(session, "README.md")
        assert "config" in screen and "logs" in screen
        assert "shop-daily-2" not in screen  # the snapshots table is gone
        _keys(session, "q")
        _wait_for(session, "EXITED rc=0")


def test_demo_builds_the_bucket_and_opens_on_its_backups(tmp_path: Path) -> None:
    with kbrowse_in_tmux(f"demo --dir {tmp_path / 'demo'}") as session:
        screen = _wait_for(session, "2 backups in", timeout=60)
        assert "shop-daily-1" in screen and "shop-daily-2" in screen and "Completed" in screen
        _keys(session, "Enter")
        screen = _wait_for(session, "2 volumes")
        assert "shop/db-data" in screen and "CSISnapshot" in screen
        assert "shop/web-0/data" in screen and "PodVolumeBackup" in screen
        _keys(session, "q")
        _wait_for(session, "EXITED rc=0")
