"""The repository's snapshots: a sortable table with filter-as-you-type; Enter browses one."""

from __future__ import annotations

from typing import ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.events import DescendantBlur, DescendantFocus, Key
from textual.screen import Screen
from textual.widgets import Footer, Header, Input, Static

from kbrowse.tui.screens.browser import BrowserScreen, show_compare_result
from kbrowse.tui.screens.compare import CompareScreen
from kbrowse.tui.widgets.snapshot_table import SnapshotTable
from mover.errors import RepoError
from mover.view.snapshot import Snapshot
from mover.view import SnapshotView


class SnapshotsScreen(Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "open", "Browse", tooltip="Browse the highlighted snapshot"),
        Binding("slash", "filter", "Filter", tooltip="Filter snapshots as you type"),
        Binding("s", "sort", "Sort", tooltip="Sort by the next column"),
        Binding("S", "reverse", "Reverse", tooltip="Reverse the sort order"),
        Binding("c", "compare", "Compare", tooltip="Compare the snapshot with its parent"),
        Binding("ctrl+r", "reload", "Reload", tooltip="Read the snapshot list again"),
        Binding("escape", "back", "Back", tooltip="Clear the filter, or go back"),
        Binding("q", "app.quit", "Quit"),
        Binding("down", "move(1)", show=False),
        Binding("up", "move(-1)", show=False),
    ]

    def __init__(self, view: SnapshotView, source_label: str) -> None:
        super().__init__()
        self.view = view
        self.source_label = source_label

    def compose(self) -> ComposeResult:
        yield Header()
        yield Input(placeholder="filter: type part of an id, time, host, path or tag", id="filter",
                    select_on_focus=False)
        yield SnapshotTable(id="snapshots")
        yield Static(id="status")
        yield Footer()

    def on_mount(self) -> None:
        self.title = "kbrowse"
        self.sub_title = self.source_label
        self.table.focus()
        self.action_reload()

    @property
    def table(self) -> SnapshotTable:
        return self.query_one(SnapshotTable)

    @property
    def filter_input(self) -> Input:
        return self.query_one("#filter", Input)

    @property
    def snapshots(self) -> list[Snapshot]:
        return self.table.snapshots

    @property
    def current(self) -> Snapshot | None:
        return self.table.current

    # ---- loading -------------------------------------------------------------------------

    def action_reload(self) -> None:
        # a status line, not `loading`: that would move the focus off the table meanwhile
        self.query_one("#status", Static).update(f"reading snapshots from {self.view.location()}…")
        self._load()

    @work(thread=True, exclusive=True, group="snapshots")
    def _load(self) -> None:
        try:
            snaps = self.view.snapshots()
        except RepoError as e:
            self.app.call_from_thread(self._failed, str(e))
            return
        self.app.call_from_thread(self._loaded, snaps)

    def _failed(self, message: str) -> None:
        self.query_one("#status", Static).update("")
        self.notify(message, title="Cannot list snapshots", severity="error", timeout=10)

    def _loaded(self, snaps: list[Snapshot]) -> None:
        self.table.set_snapshots(snaps)
        self._status()

    def _status(self) -> None:
        shown, total = self.table.row_count, len(self.snapshots)
        self.query_one("#status", Static).update(
            f"{shown} of {total} snapshots" if shown != total else
            f"{total} snapshot{'s' if total != 1 else ''} in {self.view.location()}")

    # ---- filter, sort, cursor ------------------------------------------------------------

    @on(Input.Changed, "#filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.table.filter(event.value)
        self._status()
        self.refresh_bindings()

    def on_key(self, event: Key) -> None:
        """Typing on the table starts a filter (keys with a binding keep their action)."""
        if (self.table.has_focus and event.is_printable and event.character
                and event.key not in self._bound_keys):
            event.stop()
            self.filter_input.focus()
            self.filter_input.insert_text_at_cursor(event.character)

    @property
    def _bound_keys(self) -> set[str]:
        return {b.key for b in self.BINDINGS if isinstance(b, Binding)}

    def on_descendant_focus(self, _event: DescendantFocus) -> None:
        self.refresh_bindings()

    def on_descendant_blur(self, _event: DescendantBlur) -> None:
        self.refresh_bindings()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "back":  # only offered when Escape has something to do
            return bool(self.filter_input.value or self.filter_input.has_focus or self._picker_below)
        return True

    @property
    def _picker_below(self) -> bool:
        return len(self.app.screen_stack) > 2

    def action_sort(self) -> None:
        self.table.sort_next()

    def action_reverse(self) -> None:
        self.table.sort_by(self.table.sort_key, not self.table.sort_reverse)

    def action_move(self, delta: int) -> None:
        self.table.move_cursor(row=self.table.cursor_row + delta)

    def action_filter(self) -> None:
        self.filter_input.focus()

    def action_back(self) -> None:
        if self.filter_input.value:
            self.filter_input.value = ""
            self.table.focus()
        elif self.filter_input.has_focus:
            self.table.focus()
        elif self._picker_below:
            self.app.pop_screen()

    # ---- actions -------------------------------------------------------------------------

    @on(SnapshotTable.RowSelected)
    @on(Input.Submitted, "#filter")
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
