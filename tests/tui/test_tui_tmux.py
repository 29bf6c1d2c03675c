"""The app in a real terminal: `kbrowse -r REPO` in tmux shows the snapshots, Enter opens one."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
import uuid
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


def test_app_opens_repository_and_enter_opens_newest_snapshot(tmp_path: Path) -> None:
    demo = run_demo(tmp_path / "demo")
    kbrowse = str(Path(sys.executable).with_name("kbrowse"))
    session = f"kb-{uuid.uuid4().hex[:8]}"
    # COLUMNS/LINES from the test's environment would pin the app to that size, not tmux's
    cmd = f"env -u COLUMNS -u LINES {kbrowse} -r {demo.repo_path} --password-file {demo.password_file}; echo EXITED rc=$?; sleep 60"
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "160", "-y", "40", cmd],
                   check=True)
    try:
        screen = _wait_for(session, "day=1")
        assert "day=2" in screen and "2 snapshots" in screen
        # the newest snapshot is first and selected: Enter opens it in the browser
        subprocess.run(["tmux", "send-keys", "-t", session, "Enter"], check=True)
        screen = _wait_for(session, "README.md")
        assert "config" in screen and "logs" in screen
        assert "day=2" not in screen  # the snapshots table is gone
        subprocess.run(["tmux", "send-keys", "-t", session, "q"], check=True)
        _wait_for(session, "EXITED rc=0")
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)
