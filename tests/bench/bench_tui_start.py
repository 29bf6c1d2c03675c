"""Bench: the app's own first paint, in a real terminal (tmux), as a user starts it.

    python tests/bench/bench_tui_start.py [--rounds 5]

Two sources, both from `kbrowse demo`'s directory (built once, outside the timing):
- ``-r``: `kbrowse -r REPO --password-file F` until the snapshots table is drawn;
- ``--bsl``: `kbrowse --bsl BUCKET` until the backups table is drawn.

Wall: from the command's start until its screen shows in tmux's pane (polled every 10 ms, so
imports, the key derivation and Textual's start are all in). CPU: user+sys of the whole
process, which quits (q) as soon as the screen shows. Not collected by pytest.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from kbrowse.demo import run_demo  # noqa: E402

KBROWSE = str(Path(sys.executable).with_name("kbrowse"))


def first_paint(command: str, marks: Sequence[str], work: Path) -> tuple[list[float], float]:
    """Seconds from ``command``'s start until each text of ``marks`` shows in tmux's pane (in
    turn), and the CPU seconds of the whole process, which quits (q) once the last one shows."""
    session = f"kb-bench-{uuid.uuid4().hex[:8]}"
    cpu_file = work / f"{session}.cpu"
    cmd = f"env -u COLUMNS -u LINES /usr/bin/time -f '%U %S' -o {cpu_file} {command}; sleep 30"
    start = time.perf_counter()
    # the tmux server of the last round may still be exiting: ask again
    while subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "160", "-y", "40", cmd]).returncode:
        time.sleep(0.05)
        start = time.perf_counter()
    try:
        walls = []
        for shown in marks:
            while shown not in subprocess.run(["tmux", "capture-pane", "-p", "-t", session], capture_output=True,
                                              text=True, check=True).stdout:
                if time.perf_counter() - start > 60:
                    raise SystemExit(f"bench: {shown!r} did not show")
                time.sleep(0.01)
            walls.append(time.perf_counter() - start)
        subprocess.run(["tmux", "send-keys", "-t", session, "q"], check=True)
        while not cpu_file.exists() or not cpu_file.read_text().strip():
            time.sleep(0.01)
        user, system = map(float, cpu_file.read_text().split()[-2:])
        return walls, user + system
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp())
    demo = run_demo(work / "kbrowse-demo")
    cases = {
        "-r REPO → snapshots": (f"-r {demo.repo_path} --password-file {demo.password_file}", "4 snapshots"),
        "--bsl BUCKET → backups": (f"--bsl {demo.bucket}", "2 backups in"),
    }
    results = {name: [(walls[0], cpu) for walls, cpu in (first_paint(f"{KBROWSE} {a}", [shown], work)
                                                         for _ in range(args.rounds))]
               for name, (a, shown) in cases.items()}
    print(f"\n{'first screen':<26}{'wall':>9}{'max':>9}{'CPU':>9}   (seconds, median of {args.rounds} rounds, "
          f"160x40 tmux; load average {os.getloadavg()[0]:.1f})")
    for name, rounds in results.items():
        wall, cpu = [r[0] for r in rounds], [r[1] for r in rounds]
        print(f"{name:<26}{statistics.median(wall):>9.3f}{max(wall):>9.3f}{statistics.median(cpu):>9.3f}")


if __name__ == "__main__":
    main()
