"""Bench: Enter on a folder of 100,000 entries in the TUI's browser, until its rows are drawn.

    python -m tests.bench.bench_tui_folder [--entries 100000] [--rounds 5]

The snapshot (one folder ``big`` of empty files, the TUI test's) is written once, outside the
timing. Each round opens the repository afresh, starts the app under Textual's pilot (headless,
140x40) and opens the snapshot, whose cursor lands on ``big/``; once the preview has read that
folder, the repository's tree cache is emptied and Enter pressed. Timed from the key press
until the listing formats its first row of the new folder, which it does only while drawing
it: the worker reads and decodes the tree, the UI thread fills the folder tree and the listing,
and the compositor draws. CPU is the whole process's (all threads), next to wall. Not
collected by pytest.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from kbrowse.tui.app import KbrowseApp  # noqa: E402
from kbrowse.tui.screens.browser import BrowserScreen  # noqa: E402
from kbrowse.tui.widgets.virtual_table import VirtualTable  # noqa: E402
from mover.repo.open import open_repository  # noqa: E402
from mover.repo.view import RepositoryView  # noqa: E402
from mover.view.node import Node  # noqa: E402
from tests.support.tuikit import big_folder_repo  # noqa: E402

PASSWORD = "pw"


async def until(pilot, cond: Callable[[], object], what: str, step: float = 0.002) -> None:
    end = time.monotonic() + 120
    while not cond():
        if time.monotonic() > end:
            raise SystemExit(f"bench: timed out waiting for {what}")
        await pilot.pause(step)


async def one_round(where: Path, entries: int) -> tuple[float, float]:
    view = RepositoryView(open_repository(str(where), PASSWORD))
    app = KbrowseApp(view, "bench")
    drawn: list[tuple[float, float]] = []
    try:
        async with app.run_test(size=(140, 40)) as pilot:
            await until(pilot, lambda: getattr(app.screen, "table", None) is not None
                        and app.screen.table.items, "the snapshots")
            await pilot.press("enter")
            await until(pilot, lambda: isinstance(app.screen, BrowserScreen)
                        and app.screen.query_one("#listing", VirtualTable).items, "the root listing")
            table = app.screen.query_one("#listing", VirtualTable)
            assert table.current is not None and table.current.name == "big"
            cache = view._repo._tree_cache
            await until(pilot, lambda: table.current.subtree in cache, "the preview of big/")
            await pilot.pause(0.1)
            cache.clear()  # so that Enter reads and decodes the tree again
            plain = table.formatter

            def formatter(node: Node) -> Sequence[str]:
                if not drawn and node.name.startswith("file-"):
                    drawn.append((time.perf_counter(), time.process_time()))
                return plain(node)

            table.formatter = formatter
            wall, cpu = time.perf_counter(), time.process_time()
            await pilot.press("enter")
            await until(pilot, lambda: drawn, "the big folder's rows")
            assert len(table.items) == entries
    finally:
        view.close()
    return drawn[0][0] - wall, drawn[0][1] - cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--entries", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        where = Path(tmp) / "repo"
        big_folder_repo(str(where), PASSWORD, args.entries)
        runs = [asyncio.run(one_round(where, args.entries)) for _ in range(args.rounds)]
    walls, cpus = [w for w, _ in runs], [c for _, c in runs]
    print(f"Enter on a folder of {args.entries:,} entries until its rows are drawn "
          f"({args.rounds} rounds, load average {os.getloadavg()[0]:.1f})")
    print(f"{'':10}{'median':>9}{'min':>9}{'max':>9}")
    for what, xs in (("wall s", walls), ("CPU s", cpus)):
        print(f"{what:10}{statistics.median(xs):9.3f}{min(xs):9.3f}{max(xs):9.3f}")


if __name__ == "__main__":
    main()
