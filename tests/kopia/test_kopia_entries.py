"""Directory entries as kopia writes them, read the fast way: the same nanoseconds and modes
as the general parsers, and a damaged field is an error, never a wrong time."""

from __future__ import annotations

import pytest

from mover.golang import gotime
from mover.kopia import view
from mover.kopia.repository import DirEntry
from mover.view.node import GO_DIR, GO_SETGID, GO_SYMLINK

TIMES = ["2026-12-04T01:17:58.444006637Z", "2026-12-04T01:17:58.44400663Z",
         "2026-12-04T01:17:58.4Z", "2026-12-04T01:17:58Z", "2026-12-04T01:17:00.000000001Z",
         "1969-12-31T23:59:59.999999999Z", "2026-12-04T02:17:58.444006637+01:00",
         "0001-01-01T00:00:00Z", "2024-02-29T23:59:59.5Z",
         "2026-12-04T01:17:58.4440066370Z"]  # Go reads more than nine digits and drops the rest


@pytest.mark.parametrize("text", TIMES)
def test_times_equal_gotime_first_and_cached(text: str) -> None:
    view._minutes.clear()
    assert view._mtime_ns(text) == gotime.parse_ns(text)
    assert view._mtime_ns(text) == gotime.parse_ns(text)  # now from the minute's cache


@pytest.mark.parametrize("bad", ["2026-12-04T01:17:60.444006637Z", "2026-12-04T01:17:5x.444006637Z",
                                 "2026-12-04T01:17:58.44400663xZ",
                                 "2026-12-04T01:17:+8.444006637Z", "2026-12-04T01:17:58.Z",
                                 "2026-12-04T01:17:58"])
def test_damaged_times_are_errors(bad: str) -> None:
    view._mtime_ns("2026-12-04T01:17:00Z")  # the minute is cached: the fast path sees them
    with pytest.raises(ValueError):
        view._mtime_ns(bad)


def test_nodes_from_entries() -> None:
    f = view._node(DirEntry("a.txt", "f", "0644", 12, TIMES[0], 1000, 100, "0123abcd"))
    assert (f.type, f.mode, f.size, f.uid, f.gid, f.content, f.subtree) == (
        "file", 0o644, 12, 1000, 100, [b"0123abcd"], None)
    assert f.mtime == f.atime == f.ctime == gotime.parse_ns(TIMES[0])
    # kopia writes Go's FileMode bits in octal: setgid is Go's bit, not 0o2000
    d = view._node(DirEntry("d", "d", f"0{GO_SETGID | 0o755:o}", obj="kfeed"))
    assert (d.type, d.mode, d.subtree, d.mtime) == ("dir", GO_DIR | GO_SETGID | 0o755, b"kfeed",
                                                    gotime.ZERO)
    s = view._node(DirEntry("l", "s", "0777", obj="beef"))
    assert (s.type, s.mode, s.content, s.subtree) == ("symlink", GO_SYMLINK | 0o777, None, None)
    for bad in (DirEntry("x", "q", "0644"), DirEntry("x", "f", "0o9"), DirEntry("x", "f", "rw-")):
        with pytest.raises(ValueError):
            view._node(bad)
