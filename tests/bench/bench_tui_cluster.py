"""Bench: first paint of the cluster screens with 1,000 backups and 1,000 DataUploads.

    python tests/bench/bench_tui_cluster.py [--backups 1000] [--uploads 1000] [--rounds 3]

The cluster is the Kubernetes API double over HTTP with Velero's CRDs (no server: the objects
are written with their status, as a cluster running Velero would hold them). Measured, in the
app driven by Textual's pilot at 140x40:

- start: from the app's start until the Backups screen has drawn every backup (the store's
  first list over HTTP, parsing, filtering, sorting, the first frame);
- each screen: from the digit key until that screen has drawn all its rows;
- a live update: from a DataUpload's status patch until the Data movement row shows it.

And as a user starts it, in a real terminal (tmux, 160x40; wall from the command's start, CPU
of the whole process, as in bench_tui_start.py):

- `kbrowse --kubeconfig FILE` until its first frame (the tab line) and until the 1,000 backups
  are drawn (the status line counts them): interpreter, imports, kubeconfig, LIST, paint;
- the floor under it: `python -c` with an App of one Static, until it shows: interpreter,
  Textual's import and its first frame, what no change to kbrowse can take away.

Target (issue 15): first paint of any screen under 0.5 s. Not collected by pytest.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from kbrowse.cluster.session import ClusterSession, KubeTarget
from kbrowse.cluster.store import DATA_UPLOADS
from kbrowse.tui.app import KbrowseApp
from kbrowse.tui.screens.cluster import TABS
from mover.kube.framework.client import Kube, load_api_client
from mover.kube.resources import BACKUPS
from tests.bench.bench_tui_start import KBROWSE, first_paint
from tests.support.kubeapi.fixtures import write_kubeconfig
from tests.support.velero_env import NS, install

SIZE = (140, 40)
SERVE = """
import sys
from tests.support.kubeapi import KubeApiServer
server = KubeApiServer(history_limit=int(sys.argv[1])).start()
print(server.url, flush=True)
sys.stdin.read()
server.stop()
"""
FLOOR = """
from textual.app import App
from textual.widgets import Static
class Floor(App):
    def compose(self):
        yield Static("the floor")
    def on_key(self):
        self.exit()
Floor().run()
"""


def populate(kube: Kube, backups: int, uploads: int) -> None:
    for i in range(backups):
        kube.create(BACKUPS, NS, {
            "apiVersion": "velero.io/v1", "kind": "Backup",
            "metadata": {"name": f"nightly-{i:05d}", "labels": {"velero.io/schedule-name": "nightly"}},
            "spec": {"includedNamespaces": [f"team-{i % 40}"], "storageLocation": "default", "ttl": "720h0m0s"},
            "status": {"phase": "Completed" if i % 17 else "PartiallyFailed", "warnings": i % 3,
                       "startTimestamp": f"2026-11-{1 + i % 28:02d}T02:00:00Z",
                       "completionTimestamp": f"2026-11-{1 + i % 28:02d}T02:05:00Z",
                       "expiration": "2026-12-30T02:00:00Z", "progress": {"totalItems": 40, "itemsBackedUp": 40}}})
    for i in range(uploads):
        name = f"nightly-{i:05d}-{i:05x}"
        kube.create(DATA_UPLOADS, NS, {
            "apiVersion": "velero.io/v2alpha1", "kind": "DataUpload",
            "metadata": {"name": name, "labels": {"velero.io/backup-name": f"nightly-{i:05d}"}},
            "spec": {"snapshotType": "CSI", "sourcePVC": f"data-{i}", "sourceNamespace": f"team-{i % 40}",
                     "backupStorageLocation": "default", "operationTimeout": "10m0s",
                     "csiSnapshot": {"volumeSnapshot": f"snap-{i}", "storageClass": "standard"}}})
        kube.patch(DATA_UPLOADS, NS, name, {"status": {
            "phase": "InProgress" if i % 10 == 0 else "Completed", "node": f"worker-{i % 5}",
            "startTimestamp": "2026-11-28T02:00:00Z", "completionTimestamp": "2026-11-28T02:03:00Z",
            "progress": {"bytesDone": (i % 10 + 1) * 10 * 2**20, "totalBytes": 100 * 2**20}}}, subresource="status")


async def until(pilot, cond: Callable[[], bool], timeout: float = 30.0) -> None:
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise SystemExit("bench: timed out")
        await asyncio.sleep(0.002)
    await pilot.pause()  # one more frame: what was filled is on screen


class Clock:
    """Wall time and this process's CPU time (all threads) since ``start``."""

    def start(self) -> None:
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def read(self) -> tuple[float, float]:
        return time.perf_counter() - self.wall, time.process_time() - self.cpu


async def one_round(kubeconfig: str, backups: int, uploads: int) -> dict[str, tuple[float, float]]:
    times: dict[str, tuple[float, float]] = {}
    clock = Clock()
    counts = {"backups": backups, "movement": uploads}
    session = ClusterSession.connect(KubeTarget(kubeconfig, None, NS))
    app = KbrowseApp(cluster=session)
    gc.freeze()  # as run_tui does before the app runs
    clock.start()
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: getattr(app.screen, "TAB", "") == "backups"
                    and len(app.screen.table.items) == backups)
        times["start → Backups"] = clock.read()
        await until(pilot, lambda: session.store.wait_synced(0))
        for i, (key, label) in enumerate(TABS, 1):
            if key == "backups":
                continue
            clock.start()
            await pilot.press(str(i))
            await until(pilot, lambda key=key: getattr(app.screen, "TAB", "") == key
                        and len(app.screen.table.items) == counts.get(key, 0))
            times[label] = clock.read()
        await pilot.press("1")
        await until(pilot, lambda: getattr(app.screen, "TAB", "") == "backups")
        clock.start()
        await pilot.press("6")
        await until(pilot, lambda: getattr(app.screen, "TAB", "") == "movement" and len(app.screen.table.items))
        times["Data movement (again)"] = clock.read()
        screen = app.screen
        clock.start()
        session.kube.patch(DATA_UPLOADS, NS, "nightly-00000-00000", {"status": {"progress": {"bytesDone": 77 * 2**20}}},
                           subresource="status")
        await until(pilot, lambda: any(t.name == "nightly-00000-00000" and t.bytes_done == 77 * 2**20
                                       for t in screen.table.items))
        times["live update → row"] = clock.read()
    session.close()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backups", type=int, default=1000)
    parser.add_argument("--uploads", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tmux-rounds", type=int, default=3, help="rounds of the process start in tmux (0: none)")
    args = parser.parse_args()
    # The double serves from its own process, as an apiserver would: in this one its threads
    # would take the interpreter's lock from the app being measured.
    server = subprocess.Popen([sys.executable, "-c", SERVE, str(10 * (args.backups + args.uploads))],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        url = server.stdout.readline().strip()
        kubeconfig = str(write_kubeconfig(Path(tempfile.mkdtemp()) / "kubeconfig", url))
        kube = Kube(load_api_client(kubeconfig))
        install(kube)
        t0 = time.perf_counter()
        populate(kube, args.backups, args.uploads)
        print(f"cluster: {args.backups} backups, {args.uploads} DataUploads ({time.perf_counter() - t0:.1f} s to write)")
        rounds = [asyncio.run(one_round(kubeconfig, args.backups, args.uploads)) for _ in range(args.rounds)]
        starts = process_starts(kubeconfig, args.backups, args.tmux_rounds)
    finally:
        server.stdin.close()
        server.wait(timeout=30)
    print(f"\n{'first paint':<24}{'wall':>9}{'max':>9}{'CPU':>9}   (seconds, median of {args.rounds} rounds, "
          f"140x40; load average {os.getloadavg()[0]:.1f})")
    for step in rounds[0]:
        wall, cpu = [r[step][0] for r in rounds], [r[step][1] for r in rounds]
        print(f"{step:<24}{statistics.median(wall):>9.3f}{max(wall):>9.3f}{statistics.median(cpu):>9.3f}")
    if args.tmux_rounds:
        print(f"\n{'process start':<36}{'wall':>9}{'max':>9}{'CPU':>9}   (seconds, median of {args.tmux_rounds} "
              f"rounds, 160x40 tmux; load average {os.getloadavg()[0]:.1f})")
        for step, values in starts.items():
            wall = [w for w, _ in values]
            cpu = statistics.median(c for _, c in values) if values[0][1] is not None else float("nan")
            print(f"{step:<36}{statistics.median(wall):>9.3f}{max(wall):>9.3f}{cpu:>9.3f}")


def process_starts(kubeconfig: str, backups: int, rounds: int) -> dict[str, list[tuple[float, float | None]]]:
    """The whole process, as a user starts it: (wall, CPU) of each round; the CPU of the process
    is known once it has quit, so the first frame has none of its own."""
    work = Path(tempfile.mkdtemp())
    floor = work / "floor.py"
    floor.write_text(FLOOR)
    times: dict[str, list[tuple[float, float | None]]] = {
        "floor: python + Textual, 1st frame": [], "kbrowse: 1st frame (tab line)": [],
        f"kbrowse: {backups:,} backups drawn": []}
    for _ in range(rounds):
        (wall,), cpu = first_paint(f"{sys.executable} {floor}", ["the floor"], work)
        times["floor: python + Textual, 1st frame"].append((wall, cpu))
        (tabs, rows), cpu = first_paint(f"{KBROWSE} --kubeconfig {kubeconfig} -n {NS}",
                                        ["1 Backups", f"{backups:,} backups in"], work)
        times["kbrowse: 1st frame (tab line)"].append((tabs, None))
        times[f"kbrowse: {backups:,} backups drawn"].append((rows, cpu))
    return times


if __name__ == "__main__":
    main()
