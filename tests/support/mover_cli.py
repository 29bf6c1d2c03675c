"""Drive the `mover` command line in a subprocess, the way an operator (or Velero) would.

Every run uses `python -m mover.cli` from this interpreter, an environment stripped of the
caller's RESTIC_* variables (plus the test password), stdin from /dev/null, and asserts that no
Python traceback reached the output: a traceback is a bug whatever the exit code.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

StrPath = str | os.PathLike[str]

TEST_PASSWORD = "kbrowse-test-password"

# Runs mover's main() and then writes this process's /proc/self/io to $MOVER_TEST_IO_FILE, so a
# test can see how many bytes the whole command read (rchar counts every read(2), cached or not).
_IO_WRAPPER = """
import os, sys
import mover.cli
try:
    mover.cli.main(sys.argv[1:])
finally:
    with open("/proc/self/io") as src, open(os.environ["MOVER_TEST_IO_FILE"], "w") as dst:
        dst.write(src.read())
"""


def read_proc_io(path: StrPath) -> dict[str, int]:
    out = {}
    for line in Path(path).read_text().splitlines():
        k, v = line.split(":")
        out[k.strip()] = int(v)
    return out


class Mover:
    """One repository location, driven through `mover`."""

    def __init__(
        self,
        repo: StrPath | None,
        password: str | None = TEST_PASSWORD,
        env_extra: Mapping[str, str] | None = None,
    ) -> None:
        self.repo = None if repo is None else os.fspath(repo)
        self.password = password
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("RESTIC_")}
        if password is not None:
            self.env["RESTIC_PASSWORD"] = password
        self.env.update(env_extra or {})

    def run(
        self,
        *args: StrPath,
        check: bool = True,
        cwd: StrPath | None = None,
        env: Mapping[str, str] | None = None,
        prefix: Sequence[str] = (),
        io_file: StrPath | None = None,
        with_repo: bool = True,
    ) -> subprocess.CompletedProcess[str]:
        """Run `mover [-r REPO] ARGS...`; raise AssertionError on a non-zero exit if `check`.

        `prefix` goes before the interpreter (e.g. a setpriv command line); `io_file` makes the
        process record its /proc/self/io there on exit.
        """
        py = [sys.executable, "-c", _IO_WRAPPER] if io_file else [sys.executable, "-m", "mover.cli"]
        repo_args = ["-r", self.repo] if with_repo and self.repo is not None else []
        cmd = [*prefix, *py, *repo_args, *map(os.fspath, args)]
        run_env = dict(self.env)
        if io_file:
            run_env["MOVER_TEST_IO_FILE"] = os.fspath(io_file)
        run_env.update(env or {})
        proc = subprocess.run(
            cmd,
            cwd=cwd,
            env=run_env,
            capture_output=True,
            text=True,
            errors="surrogateescape",
            stdin=subprocess.DEVNULL,
        )
        shown = (f"{' '.join(cmd)} exited with {proc.returncode}\n"
                 f"stderr:\n{proc.stderr}\nstdout:\n{proc.stdout[-3000:]}")
        assert "Traceback" not in proc.stderr + proc.stdout, "a traceback escaped:\n" + shown
        if check and proc.returncode != 0:
            raise AssertionError(shown)
        return proc

    def init(self, version: int = 2) -> None:
        self.run("init", "--repository-version", str(version))

    def backup(
        self,
        paths: Iterable[StrPath],
        cwd: StrPath | None = None,
        tags: Iterable[str] = (),
        host: str | None = None,
        extra: Iterable[str] = (),
        check: bool = True,
        io_file: StrPath | None = None,
    ) -> dict:
        """Back up with `--json`; returns the summary (snapshot_id is the full id)."""
        args: list[StrPath] = ["backup", "--json"]
        for tag in tags:
            args += ["--tag", tag]
        if host is not None:
            args += ["--host", host]
        args += [*extra, *paths]
        proc = self.run(*args, cwd=cwd, check=check, io_file=io_file)
        summary = json.loads(proc.stdout.splitlines()[-1])
        assert summary["message_type"] == "summary", proc.stdout
        summary["_returncode"] = proc.returncode
        summary["_stderr"] = proc.stderr
        return summary

    def snapshots(self) -> list[dict]:
        return json.loads(self.run("snapshots", "--json").stdout)

    def check(self, read_data: bool = True) -> subprocess.CompletedProcess[str]:
        """`mover check`; never raises on a failed check, callers look at returncode/output."""
        return self.run("check", *(["--read-data"] if read_data else []), check=False)


def listing(repo: StrPath) -> dict[str, int]:
    """Every file under a repository directory (relative path -> size), for before/after diffs."""
    out = {}
    root = os.fspath(repo)
    for dirpath, _dirs, files in os.walk(root):
        for f in files:
            p = os.path.join(dirpath, f)
            try:
                out[os.path.relpath(p, root)] = os.lstat(p).st_size
            except FileNotFoundError:  # a live writer's temporary file, renamed meanwhile
                continue
    return out
