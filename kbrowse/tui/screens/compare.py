"""A snapshot against its parent: what was added, removed and changed, streamed as found."""

from __future__ import annotations

import time
from typing import ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import Header, Static
from textual.worker import get_current_worker

from kbrowse.browse.diff import (
    ADDED,
    CHANGED,
    METADATA,
    REMOVED,
    Change,
    compare,
    parent_of,
)
from kbrowse.tui.fmt import display_name, node_type, snapshot_time
from kbrowse.tui.ui_thread import deliver
from kbrowse.tui.widgets.footer import Footer
from kbrowse.tui.widgets.virtual_table import Column, VirtualTable
from mover.errors import RepoError
from mover.progress import human_bytes
from mover.view import SnapshotView
from mover.view.snapshot import Snapshot

MARKS = {ADDED: "+", REMOVED: "-", CHANGED: "M", METADATA: "U"}
STYLES = {ADDED: "green", REMOVED: "red", CHANGED: "yellow", METADATA: "dim"}
FLUSH_EVERY = 0.1  # seconds between batches of changes sent to the table

CompareResult = tuple[Snapshot, str] | None  # the snapshot and path to show in the browser


def _size(c: Change) -> str:
    if c.node.type == "dir":
        return ""
    if c.kind in (CHANGED, METADATA) and c.old and c.new and c.old.size != c.new.size:
        return f"{human_bytes(c.old.size)} → {human_bytes(c.new.size)}"
    return human_bytes(c.node.size)


def _row(c: Change) -> tuple[str, ...]:
    return (MARKS[c.kind], display_name(c.path) + ("/" if c.node.type == "dir" else ""),
            node_type(c.node), _size(c))


class CompareScreen(Screen[CompareResult]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "show", "Show", tooltip="Show the entry in the browser"),
        Binding("escape", "close", "Back"),
        Binding("q", "app.quit", "Quit"),
    ]

    def __init__(self, view: SnapshotView, snapshot: Snapshot, snapshots: list[Snapshot]) -> None:
        super().__init__()
        self.view = view
        self.snapshot = snapshot
        self.parent_snapshot = parent_of(snapshot, snapshots)
        self.counts = dict.fromkeys(MARKS, 0)
        self.done = False

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="compare-summary")
        yield VirtualTable(
            [Column("kind", "", 1), Column("path", "Path"), Column("type", "Type", 9),
             Column("size", "Size", 22, "right")],
            _row, lambda c: STYLES[c.kind], empty_text="comparing…", id="changes")
        yield Footer()

    def on_mount(self) -> None:
        self.title = f"compare {self.snapshot.short_id}"
        self.sub_title = "with its parent"
        self.query_one(VirtualTable).focus()
        if self.parent_snapshot is None:
            self.query_one(VirtualTable).empty_text = "nothing to compare with"
            self.query_one("#compare-summary", Static).update(Text(
                f"Snapshot {self.snapshot.short_id} has no parent: no older snapshot of host "
                f"{self.snapshot.hostname!r} with the same paths."))
            return
        self._summary()
        self._compare()

    def _summary(self) -> None:
        p, s = self.parent_snapshot, self.snapshot
        assert p is not None
        c = self.counts
        state = "" if self.done else "  (comparing…)"
        self.query_one("#compare-summary", Static).update(
            f"{p.short_id} ({snapshot_time(p)}) → {s.short_id} ({snapshot_time(s)}):  "
            f"[green]{c[ADDED]} added[/]  [red]{c[REMOVED]} removed[/]  "
            f"[yellow]{c[CHANGED]} changed[/]  [dim]{c[METADATA]} metadata only[/]{state}")

    @work(thread=True, exclusive=True, group="compare")
    def _compare(self) -> None:
        worker = get_current_worker()
        p = self.parent_snapshot
        assert p is not None
        batch: list[Change] = []
        last = time.monotonic()
        try:
            for change in compare(self.view, self.view.root(p), self.view.root(self.snapshot),
                                  lambda: worker.is_cancelled):
                batch.append(change)
                if time.monotonic() - last > FLUSH_EVERY:
                    deliver(self, self._add, batch)
                    batch, last = [], time.monotonic()
        except RepoError as e:
            deliver(self, self.notify, str(e), title="Compare failed", severity="error")
        if not worker.is_cancelled:
            deliver(self, self._add, batch, True)

    def _add(self, changes: list[Change], last: bool = False) -> None:
        for c in changes:
            self.counts[c.kind] += 1
        table = self.query_one(VirtualTable)
        table.append_items(changes)
        if last:
            self.done = True
            table.empty_text = "no differences"
            table.refresh()
        self._summary()

    @on(VirtualTable.Selected)
    def action_show(self) -> None:
        change: Change | None = self.query_one(VirtualTable).current
        if change is None:
            return
        # a removed entry only exists in the parent: show it there
        snap = self.parent_snapshot if change.kind == REMOVED else self.snapshot
        assert snap is not None
        self.dismiss((snap, change.path))

    def action_close(self) -> None:
        self.dismiss(None)

