"""Bytes per blob of the in-memory index (issue 3 asks for at most 100).

    python -m tests.bench.index_memory [--blobs 1000000] [--per-pack 16]

Fills a :class:`mover.repo.index.Index` with synthetic blobs (SHA-256 ids, ``--per-pack`` blobs
per pack: 16 is a pack of 1 MiB chunks, the worst realistic case for the per-pack overhead) and
reports the memory it holds, measured twice: Python's own allocations (tracemalloc, which sees
the ``bytearray``/``array`` buffers) and the growth of the process's resident set. Lookup and
insert speed are printed too.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import os
import sys
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from mover.repo.blob import BlobType, PackedBlob  # noqa: E402
from mover.repo.index import Index  # noqa: E402


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def blob_id(i: int) -> bytes:
    return hashlib.sha256(i.to_bytes(8, "little")).digest()


def fill(idx: Index, n: int, per_pack: int) -> None:
    for start in range(0, n, per_pack):
        pack = hashlib.sha256(b"pack" + start.to_bytes(8, "little")).digest()
        off = 0
        batch = []
        for i in range(start, min(n, start + per_pack)):
            t = BlobType.TREE if i % 50 == 0 else BlobType.DATA
            batch.append(PackedBlob(t, blob_id(i), pack, off, 1_000_000 + i % 1000, 2_000_000))
            off += 1_000_000
        idx.add(batch)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--blobs", type=int, default=1_000_000)
    ap.add_argument("--per-pack", type=int, default=16)
    args = ap.parse_args()
    n = args.blobs
    gc.collect()
    rss0 = rss()
    t0 = time.perf_counter()
    idx = Index()
    fill(idx, n, args.per_pack)
    t_fill = time.perf_counter() - t0
    gc.collect()
    rss1 = rss()
    assert len(idx) == n
    probe = [blob_id(i) for i in range(0, n, max(1, n // 100_000))]
    missing = [hashlib.sha256(b"x" + p).digest() for p in probe]
    t0 = time.perf_counter()
    assert all(idx.has(BlobType.TREE if (i * max(1, n // 100_000)) % 50 == 0 else BlobType.DATA, p)
               for i, p in enumerate(probe))
    assert not any(idx.has(BlobType.DATA, m) for m in missing)
    t_look = (time.perf_counter() - t0) / (2 * len(probe))
    pb = idx.get(BlobType.DATA, blob_id(1))
    assert pb is not None and pb.id == blob_id(1) and pb.length == 1_000_001
    del probe, missing
    tracemalloc.start()  # a second index, built under tracemalloc (which slows allocation)
    idx2 = Index()
    fill(idx2, n, args.per_pack)
    gc.collect()
    traced, _peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"{n:,} blobs in {len(idx.packs()):,} packs ({args.per_pack} per pack)")
    print(f"  tracemalloc: {traced / n:6.1f} bytes per blob ({traced / 2**20:.1f} MiB)")
    print(f"  RSS growth:  {(rss1 - rss0) / n:6.1f} bytes per blob ({(rss1 - rss0) / 2**20:.1f} MiB)")
    print(f"  insert {t_fill / n * 1e6:.2f} us per blob (including building the PackedBlob), "
          f"lookup {t_look * 1e6:.2f} us")


if __name__ == "__main__":
    main()
