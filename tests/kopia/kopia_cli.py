"""A thin wrapper around the real `kopia` binary, for interop tests.

Each instance has its own config file, cache and log directories under the test's tmp dir and
an environment stripped of the caller's KOPIA_* variables, so a developer's own repository or
password never leaks into a test.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.treekit import compare_trees, snapshot_tree

KOPIA_PASSWORD = "kbrowse-kopia-password"


def kopia_binary() -> str:
    gobin = Path(os.environ.get("GOPATH") or Path.home() / "go") / "bin" / "kopia"
    found = shutil.which("kopia") or (str(gobin) if gobin.exists() else None)
    if found is None:
        pytest.skip("the kopia binary is missing: `scripts/install --test` builds it into "
                    "$(go env GOPATH)/bin")
    return found


class Kopia:
    """One kopia repository, connected through its own config file."""

    def __init__(self, home: Path, password: str = KOPIA_PASSWORD, env_extra: dict | None = None) -> None:
        self.home = home
        self.password = password
        self.binary = kopia_binary()
        home.mkdir(parents=True, exist_ok=True)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("KOPIA_")}
        self.env.update(KOPIA_CONFIG_PATH=str(home / "repo.config"),
                        KOPIA_CACHE_DIRECTORY=str(home / "cache"), KOPIA_LOG_DIR=str(home / "logs"),
                        KOPIA_CHECK_FOR_UPDATES="false", KOPIA_PASSWORD=password)
        self.env.update(env_extra or {})

    def run(self, *args: str | os.PathLike, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([self.binary, *map(str, args)], env=self.env, capture_output=True,
                              text=True, errors="surrogateescape", stdin=subprocess.DEVNULL,
                              timeout=300)
        if check and proc.returncode != 0:
            raise AssertionError(f"kopia {' '.join(map(str, args))} failed ({proc.returncode}):\n"
                                 f"{proc.stderr[-3000:]}")
        return proc

    def create_filesystem(self, path: Path, *options: str) -> None:
        self.run("repository", "create", "filesystem", "--path", path, *options)

    def snapshot(self, source: Path, *options: str) -> str:
        """Snapshot ``source``; returns the new manifest id."""
        self.run("snapshot", "create", source, "--json", *options)
        return self.snapshots()[-1]["id"]

    def snapshots(self) -> list[dict]:
        snaps = json.loads(self.run("snapshot", "list", "--all", "--json").stdout)
        return sorted(snaps, key=lambda s: (s["startTime"], s["id"]))

    def restore(self, snap_id: str, dest: Path) -> None:
        self.run("snapshot", "restore", snap_id, dest, "--no-progress")


def kb(repo: str, *args: str | os.PathLike, password: str = KOPIA_PASSWORD,
       env_extra: dict | None = None) -> subprocess.CompletedProcess:
    """Run ``kbrowse -r REPO ARGS...`` in a subprocess, as an operator would."""
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith(("RESTIC_", "KOPIA_"))}
    env["RESTIC_PASSWORD"] = password
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-m", "kbrowse.cli", "-r", repo, *map(os.fsdecode, args)],
                          env=env, capture_output=True, stdin=subprocess.DEVNULL, timeout=300)


def parse_ls(text: str) -> dict[str, tuple[str, int]]:
    """``kopia ls -l -r`` -> {path: (mode string, size)}; a line that does not start an entry
    continues the previous name (a name with a newline)."""
    import re

    line_re = re.compile(r"^(\S{10,11}) +(\d+) \d{4}-\d\d-\d\d \d\d:\d\d:\d\d \S+ (\S+) +(.*)$")
    out: dict[str, tuple[str, int]] = {}
    last = None
    for line in text.split("\n"):
        m = line_re.match(line)
        if m:
            last = m[4]
            out[last] = (m[1], int(m[2]))
        elif last is not None and line:
            mode_size = out.pop(last)
            last = last + "\n" + line
            out[last] = mode_size
    return {k.rstrip("/"): v for k, v in out.items()}


def restore_differences(ours: Path, theirs: Path) -> list[str]:
    """Differences between restores, less those of kopia's restore itself: directory times
    (it sets them before it is done with the directory) and symlink times (it rounds them to
    microseconds)."""
    types = {rel: e.type for rel, e in snapshot_tree(theirs).items()}
    diffs = []
    for d in compare_trees(ours, theirs, check_dir_mtime=False):
        m = re.fullmatch(r"'(.*)': mtime_ns (\d+) != (\d+)", d, re.S)
        if m and types.get(os.fsencode(m[1])) == "symlink" and abs(int(m[2]) - int(m[3])) < 1000:
            continue
        diffs.append(d)
    return diffs
