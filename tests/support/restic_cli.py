"""A thin wrapper around the real `restic` binary, for interop tests.

Every command runs with `--no-cache` (no stale cache between tests) and an
environment stripped of the caller's RESTIC_* variables, so a developer's own
repository or password can never leak into a test.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterable, Mapping

StrPath = str | os.PathLike[str]


class Restic:
    """One restic repository, driven through the `restic` command line."""

    def __init__(
        self,
        repo: str,
        password: str,
        env_extra: Mapping[str, str] | None = None,
        binary: str = "restic",
    ) -> None:
        self.repo = repo
        self.password = password
        self.binary = binary
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("RESTIC_")}
        self.env["RESTIC_PASSWORD"] = password
        self.env.update(env_extra or {})

    def run(
        self, *args: StrPath, check: bool = True, cwd: StrPath | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run `restic -r REPO --no-cache ARGS...`; raise AssertionError on failure if `check`.

        Output is text; bytes that are not UTF-8 are kept as surrogate escapes.
        """
        cmd = [self.binary, "-r", self.repo, "--no-cache", *map(os.fspath, args)]
        proc = subprocess.run(
            cmd,
            cwd=cwd,
            env=self.env,
            capture_output=True,
            text=True,
            errors="surrogateescape",
            stdin=subprocess.DEVNULL,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"{' '.join(cmd)} exited with {proc.returncode}\n"
                f"stderr:\n{proc.stderr}\nstdout (last 2000 chars):\n{proc.stdout[-2000:]}"
            )
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
    ) -> str:
        """Back up `paths` and return the new snapshot's full 64-hex id.

        restic 0.14 exits 3 when some files could not be read; that counts as a
        failure here, since tests want complete snapshots.
        """
        args: list[StrPath] = ["backup", "--json"]
        for tag in tags:
            args += ["--tag", tag]
        if host is not None:
            args += ["--host", host]
        args += [*extra, *paths]
        proc = self.run(*args, cwd=cwd)
        summary = next(
            msg
            for msg in map(json.loads, reversed(proc.stdout.splitlines()))
            if msg.get("message_type") == "summary"
        )
        # 0.14 reports only the short id; the full one comes from `snapshots`.
        short = summary["snapshot_id"]
        matches = [s["id"] for s in self.snapshots() if s["id"].startswith(short)]
        assert len(matches) == 1, f"snapshot {short} not found exactly once: {matches}"
        return matches[0]

    def snapshots(self) -> list[dict]:
        return json.loads(self.run("snapshots", "--json").stdout)

    def check(self, read_data: bool = True) -> subprocess.CompletedProcess[str]:
        """Run `restic check`; never raises, callers inspect returncode and output."""
        return self.run("check", *(["--read-data"] if read_data else []), check=False)

    def restore(
        self, snapshot: str, target: StrPath, include: str | Iterable[str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Restore `snapshot` (id, prefix or "latest") into `target`.

        A snapshot of `/abs/dir` restores to `target/abs/dir`; one made with
        `cwd=dir` and path "." restores straight into `target`.
        """
        args: list[StrPath] = ["restore", snapshot, "--target", target]
        for pattern in [include] if isinstance(include, str) else include or ():
            args += ["--include", pattern]
        return self.run(*args)

    def ls(self, snapshot: str) -> list[dict]:
        """The nodes of `snapshot` as `restic ls --json` prints them (snapshot line dropped).

        Go's JSON encoder replaces invalid UTF-8 in names and paths with U+FFFD,
        so this is not a faithful view of non-UTF-8 names.
        """
        lines = map(json.loads, self.run("ls", "--json", snapshot).stdout.splitlines())
        return [node for node in lines if node.get("struct_type") == "node"]

