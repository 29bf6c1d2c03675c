"""Backup and restore through S3 (SeaweedFS on loopback): mover/kbrowse against restic 0.14.

    python -m tests.bench.bench_s3 [--scale 0.215] [--rounds 2]

The data set is ``tests/bench/dataset.py`` (scale 0.215 is about 200 MiB: ~4,300 small files,
two random and one log file of ~55 MiB). Both repositories live in one bucket of one server and
start as copies of a single ``restic init`` (same master key, same scrypt parameters), so opening
costs the same. Per round and tool: a first backup of ``.`` from inside the source (as Velero
runs it), then a full restore into an empty directory (``kbrowse cp SNAP:/`` for the mover side,
``restic restore`` for restic), checked against the source with ``diff -r`` in the first round.
Tools alternate who goes first. Not collected by pytest (no ``test_`` prefix).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.bench import dataset  # noqa: E402
from tests.bench.bench import drop_caches, tree_bytes  # noqa: E402
from tests.support.s3server import S3Server  # noqa: E402

PASSWORD = "bench-password"
TOOLS = ("mover", "restic")
MiB = 1024 * 1024


class S3Bench:
    def __init__(self, work: Path, server: S3Server, bucket: str, env: dict[str, str]) -> None:
        self.work, self.server, self.bucket, self.env = work, server, bucket, env
        self.src = work / "src"
        self.out = work / "out"

    def url(self, name: str) -> str:
        return f"s3:{self.server.endpoint_url}/{self.bucket}/bench/{name}"

    def run(self, cmd: list[str], cwd: Path | None = None) -> tuple[float, str]:
        start = time.perf_counter()
        proc = subprocess.run(cmd, cwd=cwd, env=self.env, capture_output=True, text=True,
                              stdin=subprocess.DEVNULL, check=False)
        wall = time.perf_counter() - start
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} exited with {proc.returncode}:\n{proc.stderr[-3000:]}")
        return wall, proc.stdout

    def fresh_repos(self, round_no: int) -> dict[str, str]:
        """Both tools' repositories for this round, copies of one restic init."""
        template = f"template-{round_no}"
        self.run(["restic", "-r", self.url(template), "--no-cache", "init", "--repository-version", "2"])
        s3 = self.server.client()
        objs = s3.list_objects_v2(Bucket=self.bucket, Prefix=f"bench/{template}/")["Contents"]
        repos = {}
        for tool in TOOLS:
            name = f"{tool}-{round_no}"
            for o in objs:
                key = o["Key"].replace(f"bench/{template}/", f"bench/{name}/", 1)
                s3.copy_object(Bucket=self.bucket, Key=key,
                               CopySource={"Bucket": self.bucket, "Key": o["Key"]})
            repos[tool] = self.url(name)
        return repos

    def backup(self, tool: str, repo: str) -> tuple[float, str]:
        if tool == "mover":
            wall, out = self.run([sys.executable, "-m", "mover.cli", "-r", repo, "backup", "--json", "."],
                                 cwd=self.src)
            return wall, json.loads(out.splitlines()[-1])["snapshot_id"]
        wall, out = self.run(["restic", "-r", repo, "--no-cache", "backup", "--json", "."], cwd=self.src)
        short = json.loads(out.splitlines()[-1])["snapshot_id"]
        return wall, short

    def restore(self, tool: str, repo: str, snap: str) -> float:
        shutil.rmtree(self.out, ignore_errors=True)
        self.out.mkdir()
        if tool == "mover":
            cmd = [sys.executable, "-m", "kbrowse.cli", "-r", repo, "cp", f"{snap}:/", str(self.out)]
        else:
            cmd = ["restic", "-r", repo, "--no-cache", "restore", snap, "--target", str(self.out)]
        return self.run(cmd)[0]

    def verify(self, tool: str) -> None:
        res = subprocess.run(["diff", "-r", "-q", str(self.src), str(self.out)], capture_output=True,
                             check=False)
        if res.returncode != 0:
            raise SystemExit(f"{tool}: the restore differs from the source:\n{res.stdout.decode()[-2000:]}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scale", type=float, default=0.215, help="data set size (0.215: ~200 MiB)")
    ap.add_argument("--rounds", type=int, default=2, help="rounds; the table shows medians")
    args = ap.parse_args()
    if shutil.which("restic") is None:
        raise SystemExit("the bench needs restic 0.14 on PATH (Debian package `restic`)")
    work = Path(tempfile.mkdtemp(prefix="bench-s3-", dir=os.environ.get("TMPDIR", "/var/tmp")))
    server = S3Server(work / "seaweedfs")
    try:
        (work / "seaweedfs").mkdir(exist_ok=True)
        print(f"generating ~{dataset.Layout(args.scale).total_bytes / MiB:.0f} MiB in {work / 'src'} ...",
              flush=True)
        dataset.generate(work / "src", args.scale)
        server.start()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RESTIC_", "AWS_"))}
        env.update(server.env(), RESTIC_PASSWORD=PASSWORD, AWS_EC2_METADATA_DISABLED="true",
                   PYTHONPATH=str(ROOT) + os.pathsep + env.get("PYTHONPATH", ""))
        b = S3Bench(work, server, server.make_bucket(), env)
        source = tree_bytes(b.src)
        walls: dict[tuple[str, str], list[float]] = {}
        for rnd in range(args.rounds):
            repos = b.fresh_repos(rnd)
            order = TOOLS if rnd % 2 == 0 else TOOLS[::-1]
            print(f"round {rnd + 1}/{args.rounds} ({' then '.join(order)})", flush=True)
            for tool in order:
                drop_caches()
                wall, snap = b.backup(tool, repos[tool])
                walls.setdefault(("backup", tool), []).append(wall)
                drop_caches()
                rwall = b.restore(tool, repos[tool], snap)
                walls.setdefault(("restore", tool), []).append(rwall)
                print(f"  {tool:<7} backup {wall:6.2f}s  restore {rwall:6.2f}s", flush=True)
                if rnd == 0:
                    b.verify(tool)
        print(f"\nS3 (SeaweedFS, loopback), {source / MiB:.0f} MiB source, {args.rounds} rounds, medians")
        print(f"{'step':<8} {'tool':<7} {'seconds':>8} {'MB/s':>7} {'restic/mover':>13}")
        for step in ("backup", "restore"):
            for tool in TOOLS:
                wall = statistics.median(walls[(step, tool)])
                ratio = ""
                if tool == "mover":
                    ratio = f"{statistics.median(r / m for r, m in zip(walls[(step, 'restic')], walls[(step, 'mover')])):12.2f}x"
                print(f"{step:<8} {tool:<7} {wall:8.2f} {source / wall / 1e6:7.1f} {ratio:>13}")
        print("ratio > 1: mover faster; page cache "
              + ("dropped before each step" if drop_caches() else "not dropped (drop_caches not writable)"))
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
