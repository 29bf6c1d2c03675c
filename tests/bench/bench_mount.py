"""Bench: `kbrowse mount` against `restic mount` on the same restic-written repository.

    python tests/bench/bench_mount.py [--scale 1.0] [--workdir DIR] [--keep]

Measures a sequential read of one 256 MiB random file (cold, then again in the same mount) and
`find` + `du` over 20,000 small files, each on a fresh mount, plus the same file read with no
FUSE at all (`kbrowse cat`, and the view's iter_content in-process, which is what cat runs).
The page cache is dropped before each measurement when /proc/sys/vm/drop_caches is writable;
otherwise the repository's packs stay cached for every contender alike, and the table says so.
restic runs with its usual local cache (index and trees), as an operator would have it.

Targets (issue 5): mount read >= 2x restic mount, >= 0.8x kbrowse cat; find+du >= 2x faster.
Not collected by pytest (no test_ prefix); it needs FUSE, fusermount and restic.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from mover.repo.open import open_repository
from mover.repo.view import RepositoryView
from tests.support.restic_cli import Restic

PASSWORD = "bench-password"
MiB = 1024 * 1024
KBROWSE_MOUNT = [sys.executable, "-m", "kbrowse.cli", "mount", "--foreground"]
KBROWSE_CAT = [sys.executable, "-m", "kbrowse.cli", "cat"]


def drop_caches() -> bool:
    os.sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
        return True
    except OSError:
        return False


def make_source(src: Path, big_bytes: int, small_files: int) -> None:
    src.mkdir(parents=True)
    with open(src / "big.bin", "wb") as f:
        left = big_bytes
        while left:
            n = min(left, 8 * MiB)
            f.write(os.urandom(n))
            left -= n
    per_dir = 200
    for i in range(small_files):
        d = src / "small" / f"d{i // per_dir:04d}"
        if i % per_dir == 0:
            d.mkdir(parents=True)
        (d / f"f{i:06d}.txt").write_bytes(os.urandom(512 + i % 3584))


@contextmanager
def mounted(cmd: list[str], mp: Path, env: dict[str, str]) -> Iterator[Path]:
    mp.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen([*cmd, os.fspath(mp)], env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not os.path.ismount(mp):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"{cmd[0]} mount at {mp} did not come up")
            time.sleep(0.05)
        # both load their index and the snapshot's top tree before the clock starts: this
        # measures reading, not mounting
        snap = mp / "snapshots" / "latest"
        while not snap.exists():
            time.sleep(0.05)
        os.stat(snap / "big.bin")
        yield snap
    finally:
        subprocess.run(["fusermount", "-u", "-z", os.fspath(mp)], capture_output=True, check=False)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def timed(fn) -> float:
    drop_caches()
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def read_file(path: Path) -> None:
    buf = bytearray(MiB)
    with open(path, "rb", buffering=0) as f:
        while f.readinto(buf):
            pass


def find_du(root: Path) -> None:
    subprocess.run(["find", os.fspath(root), "-type", "f"], stdout=subprocess.DEVNULL, check=True)
    subprocess.run(["du", "-s", os.fspath(root)], stdout=subprocess.DEVNULL, check=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scale", type=float, default=1.0,
                    help="fraction of the full size (256 MiB file, 20,000 small files)")
    ap.add_argument("--repeat", type=int, default=3,
                    help="runs of each measurement; the table shows medians (default 3)")
    ap.add_argument("--workdir", type=Path, help="where to build (default: a temporary dir)")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    args = ap.parse_args()
    for tool in ("restic", "fusermount", "find", "du"):
        if shutil.which(tool) is None:
            raise SystemExit(f"bench_mount needs {tool} on PATH")
    big = int(256 * MiB * args.scale)
    small = int(20000 * args.scale)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench-mount-"))
    work.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RESTIC_")}
    env |= {"RESTIC_PASSWORD": PASSWORD, "RESTIC_REPOSITORY": os.fspath(work / "repo")}
    try:
        if not (work / "repo").exists():
            print(f"building {big / MiB:.0f} MiB file and {small} small files in {work} ...",
                  flush=True)
            make_source(work / "src", big, small)
            restic = Restic(os.fspath(work / "repo"), PASSWORD)
            restic.init()
            restic.backup(["."], cwd=work / "src")
        runs = measure(work, env, args.repeat, small)
        sizes = {"read": big, "read again": big}
        report(runs, sizes, dropped=drop_caches())
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


def measure(work: Path, env: dict[str, str], repeat: int, small: int) -> dict[tuple[str, str], list[float]]:
    restic_mount = ["restic", "--cache-dir", os.fspath(work / "restic-cache"), "mount"]
    runs: dict[tuple[str, str], list[float]] = {}

    def add(what: str, who: str, secs: float) -> None:
        runs.setdefault((what, who), []).append(secs)

    repo = open_repository(os.fspath(work / "repo"), PASSWORD)
    view = RepositoryView(repo)
    node = view.lookup(view.find_snapshot("latest"), "big.bin")

    def view_read() -> None:
        for _ in view.iter_content(node):
            pass

    cat = [*KBROWSE_CAT, "-r", env["RESTIC_REPOSITORY"], "latest:/big.bin"]
    has_cat = subprocess.run(cat, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             check=False).returncode == 0
    for rep in range(repeat):
        print(f"run {rep + 1} of {repeat} ...", flush=True)
        add("read", "view iter_content (in-process)", timed(view_read))
        if has_cat:
            add("read", "kbrowse cat (process)", timed(lambda: subprocess.run(
                cat, env=env, stdout=subprocess.DEVNULL, check=True)))
        for who, cmd in (("kbrowse mount", KBROWSE_MOUNT),
                         ("kbrowse mount --fuse libfuse", [*KBROWSE_MOUNT, "--fuse", "libfuse"]),
                         ("restic mount", restic_mount)):
            with mounted(cmd, work / "mnt", env) as snap:
                add("read", who, timed(lambda: read_file(snap / "big.bin")))
                start = time.perf_counter()  # no cache drop: this is the page cache's turn
                read_file(snap / "big.bin")
                add("read again", who, time.perf_counter() - start)
            with mounted(cmd, work / "mnt", env) as snap:
                add(f"find+du {small} files", who, timed(lambda: find_du(snap / "small")))
    return runs


def report(runs: dict[tuple[str, str], list[float]], sizes: dict[str, int], dropped: bool) -> None:
    med = {k: statistics.median(v) for k, v in runs.items()}
    print()
    print(f"{'measurement':<20} {'how':<31} {'seconds':>7} {'(min-max)':>12} {'MB/s':>6} "
          f"{'vs restic mount':>15}")
    for (what, who), secs in med.items():
        nbytes = sizes.get(what)
        rate = f"{nbytes / secs / 1e6:6.0f}" if nbytes else f"{'':6}"
        spread = f"({min(runs[what, who]):.2f}-{max(runs[what, who]):.2f})"
        base = med.get((what, "restic mount"))
        ratio = f"{base / secs:14.1f}x" if base and who != "restic mount" else ""
        print(f"{what:<20} {who:<31} {secs:7.3f} {spread:>12} {rate} {ratio}")
    k = med.get(("read", "kbrowse mount"))
    for who in ("kbrowse cat (process)", "view iter_content (in-process)"):
        if k and ("read", who) in med:
            print(f"kbrowse mount read throughput / {who}: {med['read', who] / k:.2f}x")
    print("page cache dropped before each cold measurement" if dropped else
          "page cache NOT dropped (/proc/sys/vm/drop_caches not writable): packs were cached for all")


if __name__ == "__main__":
    main()
