"""Decoding one 100,000-entry tree, as opening that folder in the TUI or `ls` does, and where its
time goes (node times stay text until read, see mover.view.node). In-process; CPU seconds (the steadier number on a shared machine) next to wall.

    python -m tests.bench.bench_tree [--entries 100000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import gc
import time
from collections.abc import Callable

from mover.golang import gotime
from mover.repo.tree import _CHECK_TIMES, _DECODER, decode_tree, encode_tree
from mover.view.node import Node

T0 = 1_780_000_000 * 10**9


def _best(rounds: int, work: Callable[[], object]) -> tuple[float, float]:
    """Fastest (CPU, wall) of the rounds; the collector off, as decode_tree runs."""
    cpu = wall = float("inf")
    for _ in range(rounds):
        gc.disable()
        c, w = time.process_time(), time.perf_counter()
        work()
        cpu, wall = min(cpu, time.process_time() - c), min(wall, time.perf_counter() - w)
        gc.enable()
    return cpu, wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--entries", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    # the TUI test's folder: empty files, three times each (mtime, atime and ctime all differ)
    nodes = [Node(name=f"file-{i:06d}.txt", type="file", mode=0o644, mtime=T0 + i * 10**9,
                  atime=T0, ctime=T0, content=[]) for i in range(args.entries)]
    raw = encode_tree(nodes)
    assert decode_tree(raw, "bench") == nodes
    stored = _DECODER.decode(raw).nodes or []
    times = [t for n in stored for t in (n.mtime, n.atime, n.ctime)]
    rows = [
        ("decode_tree (all of it)", _best(args.rounds, lambda: decode_tree(raw, "bench"))),
        ("  msgspec: JSON -> structs", _best(args.rounds, lambda: _DECODER.decode(raw))),
        ("  msgspec: the times checked", _best(args.rounds, lambda: _CHECK_TIMES.decode(raw))),
        (f"  Node.from_stored x {len(stored):,}", _best(args.rounds, lambda: [Node.from_stored(n) for n in stored])),
        # not in decode_tree any more: what reading every time (sorting by all three) would add
        (f"gotime.parse_ns x {len(times):,}", _best(args.rounds, lambda: [gotime.parse_ns(t) for t in times])),
    ]
    print(f"{args.entries:,} entries, tree {len(raw) / 1e6:.1f} MB, best of {args.rounds}")
    print(f"{'what':34} {'CPU s':>7} {'wall s':>7}")
    for what, (cpu, wall) in rows:
        print(f"{what:34} {cpu:7.3f} {wall:7.3f}")


if __name__ == "__main__":
    main()
