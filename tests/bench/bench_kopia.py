"""kbrowse vs kopia on the same kopia repository (issue 14): full restore, cat of a 256 MiB
file, ls -l -R, and reading that file through a mount.

    python -m tests.bench.bench_kopia [--scale 1.0] [--rounds 3] [--workdir DIR]

The data set is tests/bench/dataset.py's; kopia makes the repository (filesystem, defaults:
BLAKE2B-256-128, AES256-GCM-HMAC-SHA256, no compression) with one snapshot of it. Every timed
step drops the page cache first and starts kopia with an empty cache directory (kbrowse keeps
none). The table shows medians; "speed" is kopia wall / kbrowse wall (> 1: kbrowse faster).
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

from tests.bench.bench import BIG_FILE, MiB, ROOT, Bench, Results, Run, dataset_cmd, drop_caches, tree_bytes
from tests.kopia.kopia_cli import kopia_binary

PASSWORD = "bench-kopia"
STEPS = {"restore": "full restore", "cat": "cat 256 MiB file > /dev/null",
         "ls": "ls -l -R whole snapshot", "mount": "read 256 MiB file via mount"}
TOOLS = ("kbrowse", "kopia")


class KopiaBench(Bench):
    def __init__(self, work: Path, env: dict[str, str], drop: bool) -> None:
        super().__init__(work, 0, env, drop)
        self.kopia_bin = kopia_binary()
        self.snap_id = ""
        self.root_oid = ""

    def kopia(self, *args: str) -> list[str]:
        shutil.rmtree(self.work / "kopia-cache", ignore_errors=True)  # cold, as kbrowse is
        return [self.kopia_bin, *args]

    def kb(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "kbrowse.cli", "-r", str(self.work / "repo"),
                "--password-file", str(self.work / "password"), *args]

    def setup(self) -> None:
        (self.work / "password").write_text(PASSWORD + "\n")
        if not (self.work / "repo").exists():
            subprocess.run(self.kopia("repository", "create", "filesystem", "--path",
                                      str(self.work / "repo")), env=self.env, check=True,
                           capture_output=True)
            subprocess.run(self.kopia("snapshot", "create", str(self.src)), env=self.env,
                           check=True, capture_output=True)
        else:
            subprocess.run(self.kopia("repository", "connect", "filesystem", "--path",
                                      str(self.work / "repo")), env=self.env, check=True,
                           capture_output=True)
        snaps = json.loads(subprocess.run(self.kopia("snapshot", "list", "--all", "--json"),
                                          env=self.env, check=True, capture_output=True).stdout)
        self.snap_id = snaps[-1]["id"]
        self.root_oid = snaps[-1]["rootEntry"]["obj"]

    def run_step(self, step: str, tool: str) -> Run:
        snap, out = self.snap_id, self.work / "out"
        if step == "restore":
            shutil.rmtree(out, ignore_errors=True)
            return self.execute(self.kb("cp", f"{snap}:/", str(out)) if tool == "kbrowse" else
                                self.kopia("snapshot", "restore", snap, str(out)))
        if step == "cat":
            return self.execute(self.kb("cat", f"{snap}:/{BIG_FILE}") if tool == "kbrowse" else
                                self.kopia("show", f"{self.root_oid}/{BIG_FILE}"))
        if step == "ls":
            return self.execute(self.kb("ls", "-l", "-R", f"{snap}:/") if tool == "kbrowse" else
                                self.kopia("ls", "-l", "-r", snap))
        if step == "mount":
            return self.mount_read(tool)
        raise ValueError(step)

    def mount_read(self, tool: str) -> Run:
        """Wall time of reading the big file through a mount of the snapshot, once mounted and
        the file stat'ed (this measures reading, not mounting)."""
        mp = self.work / "mnt"
        mp.mkdir(exist_ok=True)
        cmd = (self.kb("mount", "--foreground", str(mp), self.snap_id) if tool == "kbrowse" else
               self.kopia("mount", self.snap_id, str(mp)))
        proc = subprocess.Popen(cmd, env=self.env, stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 60
            while not os.path.ismount(mp):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"{tool} mount at {mp} did not come up")
                time.sleep(0.05)
            os.stat(mp / BIG_FILE)
            if self.drop:
                drop_caches()
            start = time.perf_counter()
            with open(mp / BIG_FILE, "rb", buffering=0) as f:
                while f.read(1 << 20):
                    pass
            return Run(time.perf_counter() - start, 0.0, 0)
        finally:
            subprocess.run(["fusermount", "-u", "-z", str(mp)], capture_output=True, check=False)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def table(res: Results, sizes: dict[str, int], rounds: int, drop: bool) -> str:
    head = f"{'step':<30} {'tool':<8} {'wall s':>7} {'MB/s':>7} {'CPU s':>7} {'RSS MiB':>8} {'speed vs kopia':>15}"
    lines = [head, "-" * len(head)]
    for step, label in STEPS.items():
        base = res.runs.get((step, "kopia"))
        for tool in TOOLS:
            runs = res.runs.get((step, tool))
            if not runs:
                continue
            wall = statistics.median(r.wall for r in runs)
            size = {"restore": sizes["source"], "cat": sizes["file"], "mount": sizes["file"]}.get(step)
            rate = f"{size / wall / 1e6:7.0f}" if size else f"{'':>7}"
            cpu = statistics.median(r.cpu for r in runs)
            rss = statistics.median(r.rss for r in runs)
            speed = ""
            if tool == "kbrowse" and base:
                speed = f"{statistics.median(b.wall / r.wall for b, r in zip(base, runs, strict=True)):14.2f}x"
            lines.append(f"{label if tool == TOOLS[0] else '':<30} {tool:<8} {wall:7.2f} {rate} "
                         f"{cpu:7.2f} {rss / MiB:8.0f} {speed:>15}")
    lines.append(f"source {sizes['source'] / MiB:.0f} MiB, {rounds} rounds, medians; page cache "
                 + ("dropped before every step" if drop else "NOT dropped")
                 + "; mount rows time only the read (CPU and RSS not measured there)")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--workdir", type=Path)
    ap.add_argument("--steps", nargs="*", choices=list(STEPS))
    args = ap.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench-kopia-", dir=os.environ.get("TMPDIR", "/var/tmp")))
    work.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RESTIC_", "KOPIA_"))}
    env.update(KOPIA_PASSWORD=PASSWORD, KOPIA_CONFIG_PATH=str(work / "kopia.config"),
               KOPIA_CACHE_DIRECTORY=str(work / "kopia-cache"), KOPIA_LOG_DIR=str(work / "kopia-logs"),
               KOPIA_CHECK_FOR_UPDATES="false",
               PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    # kbrowse as installed runs from cached bytecode; a session's PYTHONDONTWRITEBYTECODE
    # would have every timed run compile its modules again
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "mover"), str(ROOT / "kbrowse")],
                   env=env, check=True)
    src = work / "src"
    marker = work / "src.scale"
    if not (marker.exists() and marker.read_text() == str(args.scale)):
        shutil.rmtree(src, ignore_errors=True)
        shutil.rmtree(work / "repo", ignore_errors=True)
        print(f"generating the data set in {src} (scale {args.scale}) ...", flush=True)
        dataset_cmd(src, args.scale)
        marker.write_text(str(args.scale))
    drop = drop_caches()
    b = KopiaBench(work, env, drop)
    b.setup()
    sizes = {"source": tree_bytes(src), "file": (src / BIG_FILE).stat().st_size}
    res = Results()
    for rnd in range(args.rounds):
        order = TOOLS if rnd % 2 == 0 else TOOLS[::-1]
        for step in (s for s in STEPS if not args.steps or s in args.steps):
            for tool in order:
                r = b.run_step(step, tool)
                res.add(step, tool, r)
                print(f"  round {rnd + 1} {step:<8} {tool:<8} {r.wall:7.2f}s", flush=True)
                if step == "restore" and rnd == 0:
                    diff = subprocess.run(["diff", "-r", "-q", str(src), str(work / "out")],
                                          capture_output=True)
                    if diff.returncode != 0:
                        raise SystemExit(f"{tool}: the restore differs from the source")
    shutil.rmtree(work / "out", ignore_errors=True)
    print()
    print(table(res, sizes, args.rounds, drop))


if __name__ == "__main__":
    main()
