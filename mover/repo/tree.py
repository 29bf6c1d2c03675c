"""Tree blobs: a directory's sorted list of nodes, in restic's JSON."""

from __future__ import annotations

import itertools
import json

from mover.errors import IntegrityError
from mover.golang import gojson
from mover.view.node import Node


def encode_tree(nodes: list[Node]) -> bytes:
    """Serialise a directory; nodes are sorted bytewise by name, as restic requires."""
    nodes = sorted(nodes, key=lambda n: n.name_bytes)
    for a, b in itertools.pairwise(nodes):
        if a.name == b.name:
            raise ValueError(f"duplicate name {a.name!r} in tree")
    return (gojson.dumps({"nodes": [n.to_json() for n in nodes]}) + "\n").encode()


def decode_tree(raw: bytes, what: str) -> list[Node]:
    try:
        obj = json.loads(raw)
        return [Node.from_json(n) for n in obj.get("nodes") or []]
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise IntegrityError(f"{what}: not a valid tree ({e})") from None
