"""How mover's and restic's costs grow with the repository (issue 16).

    python -m tests.bench.bench_growth [--scales 1 10] [--rounds 1] [--workdir DIR] [--keep]

The data set of ``tests/bench/dataset.py`` at each scale: scale 1 is 20,000 small files and
~0.93 GiB, scale 10 is 200,000 small files and ~9.4 GiB (three 2.5 GiB big files). Per scale and
round, fresh repositories for both tools (copies of one ``restic init``), then the steps of
``tests/bench/bench.py`` that the growth target names: first backup, no-change backup, full
restore, ``ls -l -R``; the same commands, the same fairness rules (alternating order, page cache
dropped before every step, rusage of exactly the child).

The table shows, per scale, step and tool: wall and CPU seconds, peak RSS, and the growth of
the wall time against scale 1 divided by the growth of the work (files and bytes both grow by
the scale's factor): <= 1.00 is linear or better. Last, the in-memory index of the mover
repository after the first backup, loaded in a child process: blobs, and bytes per blob by
tracemalloc. The data sets stay in the work directory and are reused (generating scale 10
takes a few minutes); the repositories and restores are deleted after each scale. Needs ~40 GB
free at scale 10. Not collected by pytest (no ``test_`` prefix).
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
from tests.bench.bench import PASSWORD, TOOLS, Bench, MiB, Results, dataset_cmd, drop_caches, tree_bytes  # noqa: E402

STEPS = {"backup1": "first backup", "backup2": "no-change backup", "restore": "full restore",
         "ls": "ls -l -R"}

# Runs in a child: the index of a repository, loaded alone, and what Python allocated for it.
INDEX_PROBE = """
import json, sys, tracemalloc
from mover.repo.backend import FileType
from mover.repo.index import Index
from mover.repo.open import open_repository
repo = open_repository(sys.argv[1], sys.argv[2])
repo.index  # the prefetch done, so only the fresh Index below is traced
names = sorted(n for n, _ in repo.backend.list(FileType.INDEX))
tracemalloc.start()
idx = Index()
for name in names:
    idx.add_index_file(repo.load_unpacked(FileType.INDEX, name), name)
size, _peak = tracemalloc.get_traced_memory()
print(json.dumps({"blobs": len(idx), "bytes": size}))
"""


def index_probe(repo: Path, env: dict[str, str]) -> dict:
    out = subprocess.run([sys.executable, "-c", INDEX_PROBE, str(repo), PASSWORD], env=env, cwd=ROOT,
                         check=True, capture_output=True).stdout
    return json.loads(out)


def prepare(work: Path, scale: float) -> Path:
    src = work / "src"
    marker = work / "src.scale"
    if marker.exists() and marker.read_text() == str(scale):
        dataset_cmd(src, scale, "--reset")
        return src
    shutil.rmtree(src, ignore_errors=True)
    print(f"generating the data set in {src} (scale {scale}) ...", flush=True)
    t0 = time.monotonic()
    dataset_cmd(src, scale)
    marker.write_text(str(scale))
    print(f"  generated in {time.monotonic() - t0:.0f} s", flush=True)
    return src


def run_scale(top: Path, scale: float, rounds: int, env: dict[str, str], template: Path,
              verify: bool, steps: list[str]) -> tuple[Results, dict]:
    work = top / f"scale-{scale:g}"
    work.mkdir(parents=True, exist_ok=True)
    src = prepare(work, scale)
    b = Bench(work, scale, env, drop_caches())
    res = Results()
    probe: dict = {}
    for rnd in range(rounds):
        order = TOOLS if rnd % 2 == 0 else TOOLS[::-1]
        print(f"scale {scale:g}, round {rnd + 1}/{rounds} ({' then '.join(order)}) ...", flush=True)
        for tool in TOOLS:
            shutil.rmtree(b.repo(tool), ignore_errors=True)
            shutil.copytree(template, b.repo(tool))
        for step in steps:
            for tool in order:
                r = b.step(step, tool)
                res.add(step, tool, r)
                print(f"  {step:<9} {tool:<7} {r.wall:7.2f}s cpu {r.cpu:6.2f}s rss {r.rss / MiB:6.0f} MiB",
                      flush=True)
                if step == "restore" and rnd == 0 and verify:
                    b.verify_restore(tool)
            if step == "backup1" and not probe:
                probe = index_probe(b.repo("mover"), env)
        shutil.rmtree(work / "out", ignore_errors=True)
    for tool in TOOLS:
        shutil.rmtree(b.repo(tool), ignore_errors=True)
    lay = dataset.Layout(scale)
    return res, {"source": tree_bytes(src), "files": lay.n_small + 3, "index": probe}


def table(results: dict[float, tuple[Results, dict]], load: list[float], seconds: float) -> str:
    base_scale = min(results)
    head = (f"{'scale':>5} {'files':>8} {'GiB':>5} {'step':<17} {'tool':<7} {'wall s':>7} {'CPU s':>7} "
            f"{'RSS MiB':>8} {'growth':>7} {'speed vs restic':>15}")
    lines = [head, "-" * len(head)]
    for scale, (res, info) in sorted(results.items()):
        for step, label in STEPS.items():
            for tool in TOOLS:
                runs = res.runs.get((step, tool))
                if not runs:
                    continue
                wall = statistics.median(r.wall for r in runs)
                cpu = statistics.median(r.cpu for r in runs)
                rss = statistics.median(r.rss for r in runs)
                growth = ""
                base = results[base_scale][0].runs.get((step, tool))
                if scale != base_scale and base:
                    growth = f"{wall / statistics.median(r.wall for r in base) / (scale / base_scale):7.2f}"
                speed = ""
                other = res.runs.get((step, "restic"))
                if tool != "restic" and other and len(other) == len(runs):
                    speed = f"{statistics.median(o.wall / r.wall for o, r in zip(other, runs, strict=True)):14.2f}x"
                first = step == "backup1" and tool == TOOLS[0]
                lines.append(
                    f"{(f'{scale:g}' if first else ''):>5} {(info['files'] if first else ''):>8} "
                    f"{(format(info['source'] / 2**30, '.1f') if first else ''):>5} "
                    f"{label if tool == TOOLS[0] else '':<17} {tool:<7} {wall:7.2f} {cpu:7.2f} "
                    f"{rss / MiB:8.0f} {growth:>7} {speed:>15}")
    lines.append("growth = (wall at this scale / wall at scale "
                 f"{base_scale:g}) / (scale / {base_scale:g}): <= 1.00 is linear or better")
    for scale, (_res, info) in sorted(results.items()):
        ix = info["index"]
        if ix.get("blobs"):
            lines.append(f"scale {scale:g}: mover's in-memory index after the first backup: {ix['blobs']} blobs, "
                         f"{ix['bytes'] / ix['blobs']:.0f} B/blob (tracemalloc)")
    lines.append(f"medians; page cache dropped before every step; load average "
                 f"{', '.join(f'{x:.1f}' for x in load)}; bench took {seconds / 60:.1f} min")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scales", type=float, nargs="+", default=[1.0, 10.0],
                    help="data set scales; the smallest is the growth baseline (default 1 10)")
    ap.add_argument("--rounds", type=int, default=1, help="rounds per scale (default 1)")
    ap.add_argument("--workdir", type=Path, help="work directory (default: a new temporary one); "
                                                 "data sets already there are reused")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    ap.add_argument("--steps", nargs="+", choices=list(STEPS), default=list(STEPS),
                    help="only these steps (the first backup always runs)")
    ap.add_argument("--verify", action="store_true", help="diff -r the first round's restores "
                                                           "against the source")
    ap.add_argument("--json-out", type=Path, help="also write every run as JSON here")
    args = ap.parse_args()
    if shutil.which("restic") is None:
        raise SystemExit("the bench needs restic 0.14 on PATH (Debian package `restic`)")
    keep = args.keep or args.workdir is not None
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench-growth-", dir=os.environ.get("TMPDIR", "/var/tmp")))
    work.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RESTIC_")}
    env["RESTIC_PASSWORD"] = PASSWORD
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    template = work / "repo-template"
    if not template.exists():
        subprocess.run(["restic", "-r", str(template), "init", "--repository-version", "2"],
                       env=env, check=True, capture_output=True)
    t0 = time.monotonic()
    load = [os.getloadavg()[0]]
    results: dict[float, tuple[Results, dict]] = {}
    try:
        for scale in sorted(args.scales):
            steps = ["backup1", *(s for s in STEPS if s in args.steps and s != "backup1")]
            results[scale] = run_scale(work, scale, args.rounds, env, template, args.verify, steps)
            load.append(os.getloadavg()[0])
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)
    print()
    print(table(results, load, time.monotonic() - t0))
    if args.json_out:
        args.json_out.write_text(json.dumps(
            {str(s): {"info": info, "runs": {f"{st}/{t}": [r.__dict__ for r in v] for (st, t), v in res.runs.items()}}
             for s, (res, info) in results.items()}, indent=1))


if __name__ == "__main__":
    main()
