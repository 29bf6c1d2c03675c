"""Which index blobs make up a repository's current index (kopia's epoch manager, read side).

Index blobs are ``xn<epoch>_…`` as written, ``xs<epoch>_…`` once an epoch is compacted and
``xr<min>_<max>_…`` for range checkpoints; ``xe<n>`` markers say the write epoch, ``xw<unix>``
is the deletion watermark. Compaction outputs are written in sets (``…-s<set>-c<count>``) that
count only once complete. Repositories without epochs (format version 1) use ``n…`` blobs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

UNSETTLED_EPOCHS = 2  # the newest epochs, whose single-epoch compactions may still be changing


@dataclass
class IndexSet:
    blobs: list[str]
    deletion_watermark: int  # unix seconds; deleted entries no newer are gone


def _epoch(blob_id: str) -> int | None:
    m = re.match(r"[a-z]+(\d+)", blob_id.partition("_")[0])
    return int(m[1]) if m else None


def _range(blob_id: str) -> tuple[int, int] | None:
    parts = blob_id.split("_")
    m = re.fullmatch(r"[a-z]+(\d+)", parts[0])
    if len(parts) < 3 or not m or not parts[1].isdigit():
        return None
    return int(m[1]), int(parts[1])


def first_complete_set(blob_ids: list[str]) -> list[str] | None:
    """The first set whose every member is there; a blob not in a set is a set of its own."""
    sets: dict[str, list[str]] = {}
    for b in blob_ids:
        parts = b.split("-")
        if len(parts) < 3 or not parts[1].startswith("s") or not parts[2].startswith("c") \
                or not parts[2][1:].isdigit():
            return [b]
        members = sets.setdefault(parts[1], [])
        members.append(b)
        if len(members) == int(parts[2][1:]):
            return members
    return None


def _longest_ranges(ranges: dict[tuple[int, int], list[str]]) -> list[tuple[int, int, list[str]]]:
    """The chain of range checkpoints from epoch 0 reaching furthest (fewest on a tie)."""
    by_min: dict[int, list[tuple[int, int, list[str]]]] = {}
    for (lo, hi), blobs in ranges.items():
        by_min.setdefault(lo, []).append((lo, hi, blobs))
    memo: dict[int, list] = {}

    def best(start: int) -> list:
        if start in memo:
            return memo[start]
        longest, chain = 0, []  # type: int, list
        for cp in by_min.get(start, []):
            combined = [cp, *best(cp[1] + 1)]
            end = combined[-1][1]
            if end > longest or (end == longest and len(combined) < len(chain)):
                longest, chain = end, combined
        memo[start] = chain
        return chain

    return best(0)


def current_set(blob_ids: list[str]) -> IndexSet:
    """The complete index set among ``blob_ids`` (every ``x…`` blob, sorted by id)."""
    write_epoch, watermark = 0, 0
    singles: dict[int, list[str]] = {}
    ranges: dict[tuple[int, int], list[str]] = {}
    uncompacted: dict[int, list[str]] = {}
    for b in blob_ids:
        kind = b[1:2]
        if kind == "e":
            e = _epoch(b)
            if e is not None:
                write_epoch = max(write_epoch, e)
        elif kind == "w":
            if b[2:].isdigit():
                watermark = max(watermark, int(b[2:]))
        elif kind == "s":
            e = _epoch(b)
            if e is not None:
                singles.setdefault(e, []).append(b)
        elif kind == "r":
            r = _range(b)
            if r is not None:
                ranges.setdefault(r, []).append(b)
        elif kind == "n":
            e = _epoch(b)
            if e is not None:
                uncompacted.setdefault(e, []).append(b)
    complete_ranges = {r: s for r, s in ((r, first_complete_set(v)) for r, v in ranges.items()) if s}
    result: list[str] = []
    start = 0
    for _lo, hi, blobs in _longest_ranges(complete_ranges):
        if hi > start:  # as kopia: a checkpoint of epoch 0 alone is not used
            result += blobs
            start = hi + 1
    for e in range(start, write_epoch + 2):
        compacted = first_complete_set(singles[e]) if e in singles else None
        if e <= write_epoch - UNSETTLED_EPOCHS and compacted:
            result += compacted
        else:
            result += uncompacted.get(e, [])
    return IndexSet(result, watermark)
