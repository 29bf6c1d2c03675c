"""Tree blobs: a directory's sorted list of nodes, in restic's JSON."""

from __future__ import annotations

import gc
import itertools
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from typing import Annotated

import msgspec

from mover.errors import IntegrityError
from mover.golang import gojson
from mover.view.node import Node, StoredNode


def encode_tree(nodes: list[Node], as_stored: Mapping[int, bytes] | None = None) -> bytes:
    """Serialise a directory; nodes are sorted bytewise by name, as restic requires.

    ``as_stored`` maps ``id(node)`` to the node's JSON as a tree read earlier holds it (see
    :func:`stored_nodes`), for nodes taken over unchanged from that tree: those are written
    as they were, with no formatting. A directory that changed in one file keeps all its other
    nodes, and encoding them all again (three times each, formatted back from the numbers
    they were parsed to) was most of a backup after a mutation's GIL-held time.
    """
    nodes = sorted(nodes, key=lambda n: n.name_bytes)
    for a, b in itertools.pairwise(nodes):
        if a.name == b.name:
            raise ValueError(f"duplicate name {a.name!r} in tree")
    if not as_stored:
        return gojson.dumps_bytes({"nodes": [n.to_json() for n in nodes]}) + b"\n"
    parts = []
    for n in nodes:
        raw = as_stored.get(id(n))
        parts.append(raw if raw is not None else gojson.dumps_bytes(n.to_json()))
    return b'{"nodes":[' + b",".join(parts) + b"]}\n"


class _RawTree(msgspec.Struct):
    nodes: list[msgspec.Raw] | None = None


_RAW_DECODER = msgspec.json.Decoder(_RawTree)


def stored_nodes(raw: bytes) -> list[bytes]:
    """Each node's JSON as tree ``raw`` holds it, in its order (that of
    :func:`decode_tree`'s nodes): what :func:`encode_tree` writes for a node kept as it is.
    ``raw`` is a tree :func:`decode_tree` accepted."""
    return [bytes(r) for r in _RAW_DECODER.decode(raw).nodes or ()]


class _StoredTree(msgspec.Struct):
    nodes: list[StoredNode] | None = None


_DECODER = msgspec.json.Decoder(_StoredTree)

_Time = Annotated[datetime, msgspec.Meta(tz=True)]


class _TimesOnly(msgspec.Struct, gc=False):
    mtime: _Time | None = None
    atime: _Time | None = None
    ctime: _Time | None = None


class _TreeTimes(msgspec.Struct):
    nodes: list[_TimesOnly] | None = None


# A node keeps its times as text until they are read (see mover.view.node): msgspec's RFC 3339
# parser, in C, checks them all in a second pass that skips every other key, at a tenth of
# what parsing them in Python took.
_CHECK_TIMES = msgspec.json.Decoder(_TreeTimes)


def decode_tree(raw: bytes, what: str) -> list[Node]:
    try:
        with _collector_paused():
            tree = _DECODER.decode(raw)
            nodes = list(map(Node.from_stored, tree.nodes or ()))
            try:
                _CHECK_TIMES.decode(raw)
            except msgspec.ValidationError:
                # msgspec refuses the year 0 Go can write; parse_ns says what else is wrong
                for n in nodes:
                    _ = (n.mtime, n.atime, n.ctime)  # parsed now, or a ValueError naming it
            return nodes
    except (ValueError, TypeError) as e:  # msgspec's errors are ValueErrors; so are bad times
        raise IntegrityError(f"{what}: not a valid tree ({e})") from None


_paused_lock = threading.Lock()
_pausing = 0  # decoders running now; the collector is re-enabled when the last one ends
_was_enabled = False


@contextmanager
def _collector_paused() -> Iterator[None]:
    """No cyclic garbage collection while a tree is decoded: a big directory allocates a few
    objects per node, none of them in a cycle, and the collections those allocations set off
    took half of the decoding time (100,000 nodes: 1.2 -> 0.7 CPU-s)."""
    global _pausing, _was_enabled
    with _paused_lock:
        if _pausing == 0:
            _was_enabled = gc.isenabled()
            gc.disable()
        _pausing += 1
    try:
        yield
    finally:
        with _paused_lock:
            _pausing -= 1
            if _pausing == 0 and _was_enabled:
                gc.enable()
