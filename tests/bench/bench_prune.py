"""`mover prune` against `restic prune` (0.14) on copies of one repository (issue 12).

    python -m tests.bench.bench_prune [--scale 1.0] [--rounds 3] [--workdir DIR] [--keep]

The repository is written once by restic (neutral ground: both tools read restic's format):
four generations of one source, each rewriting a third of its small files and all of its big
file, then `restic forget --keep-last 1`. So the prune has every kind of work: packs to delete
whole, partly used packs to repack, an index to rewrite. At scale 1: 12,000 files of 1-16 KiB
and a 96 MiB file, ~400 MiB of packs before the prune.

Every round copies the repository twice and prunes one copy with each tool, then prunes both
again (nothing left to do: what remains is the fixed cost of opening, locking, reading the
index and the trees); mover goes first in odd rounds, restic in even ones. Each run is a
child process with caches dropped first
(when /proc/sys/vm/drop_caches is writable); wall time, CPU time and peak RSS come from
``os.wait4``. Round 1 also checks the mover-pruned copy with `restic check --read-data`
(untimed). The table shows medians; "speed vs restic" is the median of restic wall / mover
wall (> 1: mover faster), "RSS vs restic" of mover RSS / restic RSS.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.bench.bench import PASSWORD, Bench, Run, drop_caches, tree_bytes  # noqa: E402

KiB = 1024
MiB = 1024 * KiB
GENERATIONS = 4
SEED = 1212
STEPS = {"prune": "prune", "again": "prune, nothing to do"}


def write_generation(src: Path, gen: int, scale: float) -> None:
    """Generation 0 writes everything; each later one rewrites every third small file (its
    share of them) and the big file."""
    rng = random.Random(SEED + gen)
    files = int(12000 * scale)
    for i in range(files):
        if gen == 0 or i % 3 == gen % 3:
            path = src / f"d{i % 100:02d}" / f"f{i:05d}"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(rng.randbytes(rng.randrange(KiB, 16 * KiB)))
    with open(src / "big.bin", "wb") as f:
        for _ in range(int(96 * scale)):
            f.write(rng.randbytes(MiB))


def build(work: Path, scale: float, env: dict[str, str]) -> Path:
    """The forgotten history, made once per work directory."""
    template = work / "template"
    if (template / "config").exists():
        return template
    shutil.rmtree(template, ignore_errors=True)
    src = work / "src"
    shutil.rmtree(src, ignore_errors=True)
    src.mkdir(parents=True)
    restic = ["restic", "-r", str(template), "--no-cache"]
    subprocess.run([*restic, "init", "--repository-version", "2"], env=env, check=True,
                   stdout=subprocess.DEVNULL)
    for gen in range(GENERATIONS):
        # in a child: this process must stay small (a child's ru_maxrss starts from its parent's)
        subprocess.run([sys.executable, "-c", "import sys; from pathlib import Path; "
                        "from tests.bench.bench_prune import write_generation; "
                        "write_generation(Path(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]))",
                        str(src), str(gen), str(scale)], cwd=ROOT, check=True)
        subprocess.run([*restic, "backup", "-q", "."], cwd=src, env=env, check=True)
    subprocess.run([*restic, "forget", "-q", "--keep-last", "1"], env=env, check=True)
    shutil.rmtree(src)
    return template


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--workdir", type=Path)
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    args = ap.parse_args()
    if shutil.which("restic") is None:
        raise SystemExit("the bench needs restic 0.14 on PATH (Debian package `restic`)")
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench-prune-"))
    work.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RESTIC_")}
    env["RESTIC_PASSWORD"] = PASSWORD
    drop = drop_caches()
    try:
        template = build(work, args.scale, env)
        before = tree_bytes(template / "data")
        bench = Bench(work, args.scale, env, drop)
        runs: dict[tuple[str, str], list[Run]] = {}
        after: dict[str, int] = {}
        for rnd in range(1, args.rounds + 1):
            order = ("mover", "restic") if rnd % 2 else ("restic", "mover")
            for tool in order:
                copy = bench.repo(tool)
                shutil.rmtree(copy, ignore_errors=True)
                shutil.copytree(template, copy)
            for step in STEPS:  # the second prune finds nothing to do: the fixed costs
                for tool in order:
                    cmd = bench.mover("prune") if tool == "mover" else bench.restic("prune")
                    runs.setdefault((step, tool), []).append(bench.execute(cmd))
                    after[tool] = tree_bytes(bench.repo(tool) / "data")
            if rnd == 1:
                check = subprocess.run(["restic", "-r", str(bench.repo("mover")), "--no-cache",
                                        "check", "--read-data"], env=env, capture_output=True,
                                       text=True)
                if check.returncode != 0:
                    raise SystemExit(f"restic rejects the mover-pruned copy:\n{check.stdout}{check.stderr}")
        print(f"repository: {before / MiB:.0f} MiB of packs before; after prune: mover "
              f"{after['mover'] / MiB:.0f} MiB, restic {after['restic'] / MiB:.0f} MiB; "
              f"caches dropped: {drop}; rounds: {args.rounds}")
        print(f"{'step':24s} {'tool':8s} {'wall s':>8s} {'CPU s':>8s} {'RSS MiB':>8s} "
              f"{'speed vs restic':>16s} {'RSS vs restic':>14s}")
        for step, label in STEPS.items():
            ours, theirs = runs[(step, "mover")], runs[(step, "restic")]
            speed = statistics.median(r.wall / m.wall for m, r in zip(ours, theirs))
            rss = statistics.median(m.rss / r.rss for m, r in zip(ours, theirs))
            for tool, rs in (("mover", ours), ("restic", theirs)):
                extra = f"{speed:15.2f}x {rss:13.2f}x" if tool == "mover" else ""
                print(f"{label if tool == 'mover' else '':24s} {tool:8s} "
                      f"{statistics.median(r.wall for r in rs):8.2f} "
                      f"{statistics.median(r.cpu for r in rs):8.2f} "
                      f"{statistics.median(r.rss for r in rs) / MiB:8.0f} {extra}")
    finally:
        if not args.keep and not args.workdir:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
