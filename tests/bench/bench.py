"""mover/kbrowse against restic 0.14, side by side on the same data (issue 3).

    python -m tests.bench.bench [--scale 1.0] [--rounds 3] [--workdir DIR] [--keep]

Builds the data set of ``tests/bench/dataset.py`` once, then runs every step for both tools in
alternating order (mover first in odd rounds, restic first in even ones), each as a separate
process, with ``sync`` and ``echo 3 > /proc/sys/vm/drop_caches`` before every timed step when
that file is writable. Per step it records wall time, CPU time (user+sys) and peak RSS of the
child from ``os.wait4``, and the repository size after backups; the table shows medians over
the rounds and the median of the per-round ratios.

Fairness: both repositories are copies of one ``restic init`` (same master key, same scrypt
parameters as restic calibrated them, same config), so opening costs the same; restic always
runs with ``--no-cache`` (mover has no cache either), and both back up ``.`` from inside the
source directory, as Velero does. Not collected by pytest (no ``test_`` prefix).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.bench import dataset  # noqa: E402

PASSWORD = "bench-password"
MiB = 1024 * 1024
TOOLS = ("mover", "restic")
STEPS = {  # key: (label, what the MB/s column counts)
    "backup1": ("first backup", "source"),
    "backup2": ("no-change backup", "source"),
    "backup3": ("backup after mutation", "source"),
    "restore": ("full restore (cp SNAP:/)", "source"),
    "restore1": ("restore one 256 MiB file", "file"),
    "cat": ("cat 256 MiB file > /dev/null", "file"),
    "ls": ("ls -l -R whole snapshot", None),
    "check": ("check --read-data", "repo"),
}
BIG_FILE = "big/random1.bin"


def drop_caches() -> bool:
    os.sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
        return True
    except OSError:
        return False


@dataclass
class Run:
    wall: float
    cpu: float
    rss: int  # bytes
    repo: int = 0  # bytes, after backups


@dataclass
class Results:
    runs: dict[tuple[str, str], list[Run]] = field(default_factory=dict)

    def add(self, step: str, tool: str, run: Run) -> None:
        self.runs.setdefault((step, tool), []).append(run)


def dataset_cmd(src: Path, scale: float, *flags: str) -> None:
    """Generate, mutate or reset the data set in a child process: this process must stay small,
    since a child's peak RSS (ru_maxrss) starts from its parent's at fork."""
    subprocess.run([sys.executable, "-m", "tests.bench.dataset", str(src), "--scale", str(scale), *flags],
                   cwd=ROOT, check=True, stdout=subprocess.DEVNULL)


def tree_bytes(path: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(dirpath, f)).st_size
            except OSError:
                pass
    return total


class Bench:
    def __init__(self, work: Path, scale: float, env: dict[str, str], drop: bool) -> None:
        self.work = work
        self.src = work / "src"
        self.scale = scale
        self.env = env
        self.drop = drop
        self.snap: dict[str, str] = {}

    def repo(self, tool: str) -> Path:
        return self.work / f"repo-{tool}"

    def execute(self, cmd: list[str], *, cwd: Path | None = None, stdout=subprocess.DEVNULL) -> Run:
        """Run one timed command: caches dropped first, rusage of exactly this child."""
        if self.drop:
            drop_caches()
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=cwd, env=self.env, stdin=subprocess.DEVNULL,
                                stdout=stdout, stderr=subprocess.PIPE)
        err = proc.stderr.read() if proc.stderr else b""
        _pid, status, ru = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(map(str, cmd))} exited with {proc.returncode}:\n"
                             f"{err.decode(errors='replace')[-3000:]}")
        return Run(wall, ru.ru_utime + ru.ru_stime, ru.ru_maxrss * 1024)

    # -- the commands ----------------------------------------------------------------------

    def mover(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "mover.cli", "-r", str(self.repo("mover")), *args]

    def kbrowse(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "kbrowse.cli", "-r", str(self.repo("mover")), *args]

    def restic(self, *args: str) -> list[str]:
        return ["restic", "-r", str(self.repo("restic")), "--no-cache", *args]

    def step(self, step: str, tool: str) -> Run:
        out = self.work / "out"
        snap = self.snap.get(tool, "")
        if step.startswith("backup"):
            with open(self.work / "backup.json", "wb") as f:
                cmd = self.mover("backup", "--json", ".") if tool == "mover" else \
                    self.restic("backup", "--json", ".")
                run = self.execute(cmd, cwd=self.src, stdout=f)
            run.repo = tree_bytes(self.repo(tool))
            if step == "backup1":
                self.snap[tool] = self.snapshot_id(tool)
            return run
        if step in ("restore", "restore1"):
            if step == "restore" and not out.exists():
                # Each timed restore must start from the same state of the file system: the one
                # right after deleting a restored tree. Deleting 20,000 just-written files leaves
                # the next restore ~40% faster than one into a long-quiet disk, which made the
                # tool that went first in a round look slower. So the first one in a round also
                # follows such a deletion: of a copy of the source, made untimed.
                subprocess.run(["cp", "-a", str(self.src), str(out)], check=True)
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir()
            if step == "restore":
                cmd = self.kbrowse("cp", f"{snap}:/", str(out)) if tool == "mover" else \
                    self.restic("restore", snap, "--target", str(out))
            else:
                cmd = self.kbrowse("cp", f"{snap}:/{BIG_FILE}", str(out)) if tool == "mover" else \
                    self.restic("restore", snap, "--target", str(out), "--include", "/" + BIG_FILE)
            return self.execute(cmd)
        if step == "cat":
            cmd = self.kbrowse("cat", f"{snap}:/{BIG_FILE}") if tool == "mover" else \
                self.restic("dump", snap, "/" + BIG_FILE)
            return self.execute(cmd)
        if step == "ls":
            cmd = self.kbrowse("ls", "-l", "-R", f"{snap}:/") if tool == "mover" else \
                self.restic("ls", "-l", snap)
            return self.execute(cmd)
        if step == "check":
            cmd = self.mover("check", "--read-data") if tool == "mover" else \
                self.restic("check", "--read-data")
            return self.execute(cmd)
        raise ValueError(step)

    def snapshot_id(self, tool: str) -> str:
        cmd = self.mover("snapshots", "--json") if tool == "mover" else self.restic("snapshots", "--json")
        snaps = json.loads(subprocess.run(cmd, env=self.env, check=True, capture_output=True).stdout)
        return max(snaps, key=lambda s: s["time"])["id"]

    def verify_restore(self, tool: str) -> None:
        """Untimed, first round only: the full restore holds exactly the source's bytes."""
        out = self.work / "out"
        res = subprocess.run(["diff", "-r", "-q", str(self.src), str(out)], capture_output=True)
        if res.returncode != 0:
            raise SystemExit(f"{tool}: the restore differs from the source:\n"
                             f"{res.stdout.decode()[-2000:]}{res.stderr.decode()[-2000:]}")


def use_bytecode(env: dict[str, str]) -> None:
    """mover and kbrowse as installed run from cached bytecode; a session's
    PYTHONDONTWRITEBYTECODE would have every timed run compile its modules again (~0.2 s)."""
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "mover"), str(ROOT / "kbrowse")],
                   env=env, check=True)


def run_bench(args: argparse.Namespace) -> tuple[Results, dict]:
    if shutil.which("restic") is None:
        raise SystemExit("the bench needs restic 0.14 on PATH (Debian package `restic`)")
    work = args.workdir
    env = {k: v for k, v in os.environ.items() if not k.startswith("RESTIC_")}
    env["RESTIC_PASSWORD"] = PASSWORD
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    use_bytecode(env)
    lay = dataset.Layout(args.scale)
    marker = work / "src.scale"
    src = work / "src"
    if not (marker.exists() and marker.read_text() == str(args.scale)):
        shutil.rmtree(src, ignore_errors=True)
        print(f"generating the data set in {src} (scale {args.scale}) ...", flush=True)
        dataset_cmd(src, args.scale)
        marker.write_text(str(args.scale))
    else:
        dataset_cmd(src, args.scale, "--reset")
    template = work / "repo-template"
    if not template.exists():
        subprocess.run(["restic", "-r", str(template), "init", "--repository-version", "2"],
                       env=env, check=True, capture_output=True)
    keyfile = json.loads(next((template / "keys").iterdir()).read_bytes())
    drop = drop_caches()
    b = Bench(work, args.scale, env, drop)
    sizes = {"source": tree_bytes(src), "file": lay.big_size}
    res = Results()
    steps = [s for s in STEPS if not args.steps or s in args.steps]
    t0 = time.monotonic()
    load = [os.getloadavg()[0]]
    for rnd in range(args.rounds):
        order = TOOLS if rnd % 2 == 0 else TOOLS[::-1]
        print(f"round {rnd + 1}/{args.rounds} ({' then '.join(order)}) ...", flush=True)
        for tool in TOOLS:
            shutil.rmtree(b.repo(tool), ignore_errors=True)
            shutil.copytree(template, b.repo(tool))
        for step in ("backup1", "backup2", "backup3"):
            if step == "backup3":
                dataset_cmd(src, args.scale, "--mutate")
            for tool in order:
                r = b.step(step, tool)
                res.add(step, tool, r)
                print(f"  {step:<9} {tool:<7} {r.wall:7.2f}s cpu {r.cpu:6.2f}s rss {r.rss / MiB:6.0f} MiB",
                      flush=True)
            if step == "backup3":
                dataset_cmd(src, args.scale, "--reset")
            sizes["repo"] = tree_bytes(b.repo("mover"))
        for step in steps:
            if step.startswith("backup"):
                continue
            for tool in order:
                r = b.step(step, tool)
                res.add(step, tool, r)
                print(f"  {step:<9} {tool:<7} {r.wall:7.2f}s cpu {r.cpu:6.2f}s rss {r.rss / MiB:6.0f} MiB",
                      flush=True)
                if step == "restore" and rnd == 0 and not args.no_verify:
                    b.verify_restore(tool)
        shutil.rmtree(work / "out", ignore_errors=True)
        load.append(os.getloadavg()[0])
    info = {"floor": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "scale": args.scale,
            "rounds": args.rounds, "dropped": drop, "sizes": sizes, "seconds": time.monotonic() - t0,
            "load": load, "work": str(work), "scrypt": {k: keyfile[k] for k in ("N", "r", "p")},
            "steps": steps}
    return res, info


def table(res: Results, info: dict) -> str:
    sizes = info["sizes"]
    head = (f"{'step':<30} {'tool':<7} {'wall s':>7} {'MB/s':>7} {'CPU s':>7} {'RSS MiB':>8} "
            f"{'repo MiB':>9} {'speed vs restic':>15} {'RSS vs restic':>13}")
    lines = [head, "-" * len(head)]
    for step in info["steps"]:
        label, what = STEPS[step]
        for tool in TOOLS:
            runs = res.runs.get((step, tool))
            if not runs:
                continue
            wall = statistics.median(r.wall for r in runs)
            cpu = statistics.median(r.cpu for r in runs)
            rss = statistics.median(r.rss for r in runs)
            repo = statistics.median(r.repo for r in runs) if step.startswith("backup") else 0
            rate = f"{sizes[what] / wall / 1e6:7.0f}" if what else f"{'':>7}"
            speed = rss_ratio = ""
            base = res.runs.get((step, "restic"))
            if tool != "restic" and base and len(base) == len(runs):
                speed = f"{statistics.median(b.wall / r.wall for b, r in zip(base, runs)):14.2f}x"
                rss_ratio = f"{statistics.median(r.rss / b.rss for b, r in zip(base, runs)):12.2f}x"
            lines.append(f"{label if tool == TOOLS[0] else '':<30} {tool:<7} {wall:7.2f} {rate} "
                         f"{cpu:7.2f} {rss / MiB:8.0f} {(f'{repo / MiB:9.0f}' if repo else ''):>9} "
                         f"{speed:>15} {rss_ratio:>13}")
    m = res.runs.get(("backup1", "mover"))
    r = res.runs.get(("backup1", "restic"))
    if m and r:
        lines.append(f"repository size after the first backup, mover/restic: "
                     f"{statistics.median(a.repo / b.repo for a, b in zip(m, r)):.3f}")
    lines.append(
        f"source {sizes['source'] / MiB:.0f} MiB, {info['rounds']} rounds, medians; speed = restic wall / "
        f"mover wall (>1: mover faster); scrypt N={info['scrypt']['N']} r={info['scrypt']['r']} "
        f"p={info['scrypt']['p']} for both; page cache "
        + ("dropped before every step" if info["dropped"] else "NOT dropped (drop_caches not writable)")
        + f"; RSS floor (bench process) {info['floor'] / MiB:.0f} MiB; load average {', '.join(f'{x:.1f}' for x in info['load'])}; "
        f"bench took {info['seconds'] / 60:.1f} min")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scale", type=float, default=1.0, help="data set size, 1.0 is ~1 GiB (default)")
    ap.add_argument("--rounds", type=int, default=3, help="rounds; the table shows medians (default 3)")
    ap.add_argument("--workdir", type=Path, help="work directory (default: a new temporary one); "
                                                 "a data set already there is reused")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    ap.add_argument("--steps", nargs="*", choices=list(STEPS),
                    help="only these read steps (the three backups always run)")
    ap.add_argument("--no-verify", action="store_true", help="skip the check that restores are exact")
    ap.add_argument("--json-out", type=Path, help="also write every run as JSON here")
    args = ap.parse_args()
    keep = args.keep or args.workdir is not None
    if args.workdir is None:
        args.workdir = Path(tempfile.mkdtemp(prefix="bench-mover-", dir=os.environ.get("TMPDIR", "/var/tmp")))
    args.workdir.mkdir(parents=True, exist_ok=True)
    try:
        res, info = run_bench(args)
    finally:
        if not keep:
            shutil.rmtree(args.workdir, ignore_errors=True)
    print()
    print(table(res, info))
    if args.json_out:
        args.json_out.write_text(json.dumps(
            {"info": info, "runs": {f"{s}/{t}": [r.__dict__ for r in v] for (s, t), v in res.runs.items()}},
            indent=1))


if __name__ == "__main__":
    main()
