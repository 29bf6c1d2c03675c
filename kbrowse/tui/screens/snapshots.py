"""The repository's snapshots: a sortable table with filter-as-you-type; Enter browses one."""

from __future__ import annotations

from typing import ClassVar

from textual import on
from textual.binding import Binding, BindingType
from textual.widgets import Input

from kbrowse.tui.fmt import snapshot_time
from kbrowse.tui.screens.browser import BrowserScreen, show_compare_result
from kbrowse.tui.screens.compare import CompareScreen
from kbrowse.tui.screens.listscreen import LIST_BINDINGS, ListScreen
from kbrowse.tui.widgets.virtual_table import Column, VirtualTable
from mover.view import SnapshotView
from mover.view.snapshot import Snapshot

COLUMNS: list[Column[Snapshot]] = [
    Column("id", "ID", 10, sort_key=lambda s: s.id),
    Column("time", "Time", 19, sort_key=lambda s: (s.time, s.id)),
    Column("host", "Host", 20, sort_key=lambda s: s.hostname),
    Column("paths", "Paths", sort_key=lambda s: s.paths),
    Column("tags", "Tags", 30, sort_key=lambda s: s.tags),
]


def snapshot_row(s: Snapshot) -> tuple[str, ...]:
    return (s.short_id, snapshot_time(s), s.hostname, ", ".join(s.paths), ", ".join(s.tags))


class SnapshotsScreen(ListScreen[Snapshot]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "open", "Browse", tooltip="Browse the highlighted snapshot"),
        Binding("c", "compare", "Compare", tooltip="Compare the snapshot with its parent"),
        Binding("ctrl+r", "reload", "Reload", tooltip="Read the snapshot list again"),
        *LIST_BINDINGS,
    ]
    COLUMNS = COLUMNS
    NOUN = "snapshot"
    FILTER_HINT = "filter: type part of an id, time, host, path or tag"
    TABLE_ID = "snapshots"
    FILTER_ID = "filter"
    LOADING = "reading snapshots…"
    EMPTY = "no snapshots in this repository"
    SORT = ("time", True)  # newest first

    def __init__(self, view: SnapshotView, source_label: str) -> None:
        super().__init__(source_label)
        self.view = view

    @property
    def snapshots(self) -> list[Snapshot]:
        return self.all

    def row(self, s: Snapshot) -> tuple[str, ...]:
        return snapshot_row(s)

    def key(self, s: Snapshot) -> object:
        return s.id

    def matches(self, s: Snapshot) -> bool:
        text = (" ".join(self.row(s)) + " " + s.id.hex()).casefold()  # the full id matches too
        return all(w in text for w in self.words)

    def fetch(self) -> list[Snapshot]:
        return self.view.snapshots()

    def total_text(self, total: int) -> str:
        return f"{total:,} {self._noun(total)} in {self.view.location()}"

    @on(VirtualTable.Selected)
    @on(Input.Submitted)
    def action_open(self) -> None:
        snap = self.current
        if snap is not None:
            self.app.push_screen(BrowserScreen(self.view, snap, self.snapshots))

    def action_compare(self) -> None:
        snap = self.current
        if snap is not None:
            self.app.push_screen(
                CompareScreen(self.view, snap, self.snapshots),
                lambda result: show_compare_result(self.app, self.view, self.snapshots, result))
