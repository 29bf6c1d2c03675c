"""`ls -l` lines: the per-minute cache of local times gives what formatting each time does."""

from __future__ import annotations

import random
import stat
import time

import pytest

from kbrowse.browse import listing
from mover.golang import gojson, gotime
from mover.repo.tree import decode_tree, encode_tree
from mover.ui.printers import local_time
from mover.view.node import Node, posix_perm_from_go

ZONES = ["UTC", "Europe/Amsterdam", "America/St_Johns", "Asia/Kathmandu", "Australia/Lord_Howe"]


@pytest.fixture
def zone(monkeypatch: pytest.MonkeyPatch):
    def use(name: str) -> None:
        monkeypatch.setenv("TZ", name)
        time.tzset()
    yield use
    monkeypatch.undo()
    time.tzset()


def _times() -> list[int]:
    rng = random.Random(16)
    # around daylight saving changes (the zones' own and others'), old local mean times with
    # offsets of odd seconds, the zero time, and a spread of ordinary ones
    edges = [gotime.parse_ns(t) for t in ("2026-03-29T01:00:00Z", "2026-10-25T01:00:00Z",
                                          "2026-04-05T15:30:00Z", "1890-06-01T12:00:00Z",
                                          "1960-01-01T00:00:00Z", "1969-12-31T23:59:59.5Z")]
    near = [e + d * 10**9 + f for e in edges for d in range(-120, 121, 7) for f in (0, 999_999_999)]
    spread = [rng.randrange(-2 * 10**18, 4 * 10**18) for _ in range(2000)]
    return [gotime.ZERO, *near, *spread]


@pytest.mark.parametrize("name", ZONES)
def test_entry_time_is_local_time_from_numbers_and_from_tree_text(zone, name: str) -> None:
    zone(name)
    times = _times()
    for t in times:
        assert listing.entry_time(t) == local_time(t), (name, t)
    # as a tree holds them: RFC 3339 text, in UTC and in other zones, checked and unparsed
    for off in (0, 3600, -12600, 20700):
        nodes = [Node(name=f"f{i:05d}", type="file", mtime=t) for i, t in enumerate(times)]
        # restic writes the local zone of the machine that made the backup
        raw = _with_offset(nodes, off) if off else encode_tree(nodes)
        for n, t in zip(decode_tree(raw, "t"), times, strict=True):
            held = n.mtime_raw
            assert isinstance(held, str)
            assert listing.entry_time(held) == local_time(t), (name, off, held)


def _with_offset(nodes: list[Node], off: int) -> bytes:
    docs = []
    for n in nodes:
        d = n.to_json()
        d["mtime"] = gotime.format_ns(n.mtime, off)
        docs.append(d)
    return (gojson.dumps({"nodes": docs}) + "\n").encode()


def test_entry_time_follows_a_change_of_zone(zone) -> None:
    t = gotime.parse_ns("2026-07-01T12:00:30Z")
    zone("UTC")
    assert listing.entry_time(t) == "2026-07-01 12:00:30"
    zone("Asia/Kathmandu")
    assert listing.entry_time(t) == "2026-07-01 17:45:30"


def test_long_line_fields() -> None:
    link = Node(name="l", type="symlink", mode=0o777 | (1 << 27), uid=7, gid=8, user="", group="g",
                size=3, mtime=gotime.parse_ns("2026-07-01T12:00:30Z"), linktarget="to\nx")
    line = listing.long_line(link, "dir/l")
    assert line == (f"{stat.filemode(stat.S_IFLNK | posix_perm_from_go(link.mode))} 7        g        "
                    f"{3:>12} {local_time(link.mtime)} dir/l -> to\\nx")
