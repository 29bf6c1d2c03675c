"""The shape every list screen shares: a filter line, one VirtualTable sorted by any column,
an optional pane below it, a status line; typing on the table starts the filter.

Subclasses say what a row is (``COLUMNS``, ``row``, ``style``, ``key``) and where the items
come from: ``fetch`` runs in a worker for sources read in one go (a repository, a bucket), or
``show_items`` is called whenever a live source (the cluster's watches) changed. With ``PANE``,
the highlighted item's ``describe`` text (read in a worker) fills the pane.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, ClassVar, Generic, TypeVar

from rich.markup import escape
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.events import Key
from textual.screen import Screen
from textual.widgets import Header, Input, Static
from textual.worker import get_current_worker

from kbrowse.tui.preview_content import TextLines, note
from kbrowse.tui.ui_thread import deliver
from kbrowse.tui.widgets.footer import Footer
from kbrowse.tui.widgets.preview import Preview
from kbrowse.tui.widgets.virtual_table import Column, VirtualTable
from mover.errors import RepoError

T = TypeVar("T")

DESCRIBE_DELAY = 0.05  # holding an arrow key should not describe every item passed


def describe_lines(text: str) -> TextLines:
    """``describe`` output for the pane: headings ("Phase:", "Resource List:") in bold."""
    lines = []
    for raw in text.rstrip("\n").split("\n"):
        line = Text(raw.expandtabs(8), no_wrap=True)
        head, sep, _ = raw.partition(":")
        if sep and head and not head[0].isspace():
            line.stylize("bold", 0, len(head) + 1)
        lines.append(line)
    return TextLines(lines, numbered=False)

LIST_BINDINGS: list[BindingType] = [
    Binding("slash", "filter", "Filter", tooltip="Filter as you type"),
    Binding("s", "sort", "Sort", tooltip="Sort by the next column"),
    Binding("S", "reverse", "Reverse", tooltip="Reverse the sort order"),
    Binding("escape", "back", "Back", tooltip="Clear the filter, leave the pane, or go back"),
    Binding("q", "app.quit", "Quit"),
    # While the filter has the focus, the arrows still move the table's cursor.
    Binding("down", "move(1)", show=False),
    Binding("up", "move(-1)", show=False),
]


class ListScreen(Screen[None], Generic[T]):
    COLUMNS: ClassVar[Sequence[Column[Any]]] = ()
    NOUN = "item"  # the status line counts them: "3 of 40 items"
    PLURAL = ""  # when not NOUN + "s"
    FILTER_HINT = "filter: type part of any column"
    TABLE_ID = "list"
    FILTER_ID = "list-filter"
    TABLE_TITLE = ""
    PANE = False  # a Preview (#describe) below the table, describing the highlighted item
    DESCRIBES = ""  # the pane's subtitle: the command whose output it shows
    LOADING = "reading…"
    EMPTY = "nothing here"
    SORT: ClassVar[tuple[str, bool] | None] = None  # the first sort: (column key, reversed)

    def __init__(self, source_label: str = "") -> None:
        super().__init__()
        self.source_label = source_label
        self.all: list[T] = []
        self.words: list[str] = []
        # Set once compose's widgets are mounted: live updates may arrive before that, and
        # querying a widget then fails (NoMatches), so they wait for on_mount to pull them.
        self.ready = False
        self.described: object | None = None  # the key of the item the pane describes

    # ---- what a row is (subclasses) --------------------------------------------------------

    def row(self, item: T) -> Sequence[str]:
        raise NotImplementedError

    def style(self, item: T) -> str:
        return ""

    def key(self, item: T) -> object:
        """What identifies an item across reloads (the cursor stays on it)."""
        return item

    def fetch(self) -> list[T]:
        """Read the items (in a worker thread); RepoError is shown as the reason."""
        raise NotImplementedError

    def describe(self, item: T) -> str:
        """The pane's text for ``item`` (in a worker thread); RepoError is shown as the reason."""
        raise NotImplementedError

    def total_text(self, total: int) -> str:
        return f"{total:,} {self._noun(total)}" + (f" in {self.source_label}" if self.source_label else "")

    # ---- layout ---------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Header()
        yield Input(placeholder=self.FILTER_HINT, id=self.FILTER_ID, select_on_focus=False)
        # Kept: the screen reaches them on every watch batch, and a query walks the DOM.
        self._table = VirtualTable(self.COLUMNS, self.row, self.style, empty_text=self.LOADING, id=self.TABLE_ID,
                                   classes="list-table" + (" with-pane" if self.PANE else ""))
        yield self._table
        if self.PANE:
            self._pane = Preview(id="describe")
            yield self._pane
        yield Static(id="status")
        yield Footer()

    def on_mount(self) -> None:
        self.title = "kbrowse"
        self.sub_title = self.source_label
        if self.TABLE_TITLE:
            self.table.border_title = self.TABLE_TITLE
        if self.SORT is not None:
            self.table.sort_column, self.table.sort_reverse = self.SORT
        self.table.focus()
        self.ready = True
        self.action_reload()

    def on_unmount(self) -> None:
        self.ready = False  # live updates still on their way find no widgets now

    @property
    def alive(self) -> bool:
        """Composed, and not being taken down (widgets go before the screen's unmount)."""
        return self.ready and self._table.is_attached

    @property
    def table(self) -> VirtualTable:
        return self._table

    @property
    def filter_input(self) -> Input:
        return self.query_one(f"#{self.FILTER_ID}", Input)

    @property
    def pane(self) -> Preview:
        return self._pane

    @property
    def current(self) -> T | None:
        return self.table.current

    def _noun(self, n: int) -> str:
        return self.NOUN if n == 1 else (self.PLURAL or self.NOUN + "s")

    # ---- items ----------------------------------------------------------------------------

    def action_reload(self) -> None:
        self.set_status(f"{self.LOADING.rstrip('…')} from {self.source_label}…")
        self._load()

    @work(thread=True, exclusive=True, group="list-load")
    def _load(self) -> None:
        try:
            items = self.fetch()
        except RepoError as e:
            deliver(self, self.failed, str(e))
            return
        deliver(self, self.show_items, items)

    def failed(self, message: str, title: str = "") -> None:
        self.table.empty_text = message
        self.table.refresh()
        self.set_status("")
        self.notify(escape(message), title=title or f"Cannot list {self._noun(2)}", severity="error", timeout=10)

    def show_items(self, items: list[T], live: bool = False) -> None:
        """All items, again; ``live``: an update of what is shown (the view does not jump)."""
        if not self.alive:
            return
        self.all = items
        self.table.empty_text = self.EMPTY
        self.refill(live)

    def matches(self, item: T) -> bool:
        return all(w in " ".join(self.row(item)).casefold() for w in self.words)

    def refill(self, live: bool = False) -> None:
        keep = self.current
        shown = [i for i in self.all if self.matches(i)] if self.words else list(self.all)
        k = None if keep is None else self.key(keep)
        self.table.set_items(shown, keep_scroll=live, select=None if keep is None else lambda i: self.key(i) == k)
        if not shown:
            self.emptied()
        self.update_status()

    def emptied(self) -> None:
        """No row is left: the pane has nothing to show."""
        if self.PANE:
            self.described = None
            self.pane.message(f"No {self.NOUN} to describe.", "Describe")

    # ---- the describe pane ------------------------------------------------------------------

    @on(VirtualTable.Highlighted)
    def _highlighted(self, event: VirtualTable.Highlighted) -> None:
        item: T | None = event.item
        if self.PANE and item is not None and self.key(item) != self.described:
            self.start_describe(item)

    def start_describe(self, item: T) -> None:
        self.described = self.key(item)
        self.pane.reading(f"Describe {self.key(item)}")
        self._describe(item)

    @work(thread=True, exclusive=True, group="describe")
    def _describe(self, item: T) -> None:
        time.sleep(DESCRIBE_DELAY)
        worker = get_current_worker()
        if worker.is_cancelled:
            return
        key = self.key(item)
        try:
            lines = describe_lines(self.describe(item))
        except RepoError as e:
            lines = note(f"Cannot describe {self.NOUN} {key}: {e}")
        if not worker.is_cancelled:
            deliver(self, self._described, key, lines)

    def _described(self, key: object, lines: TextLines) -> None:
        if self.described == key:
            self.pane.show(lines, f"Describe {key}", self.DESCRIBES)

    def set_status(self, text: str) -> None:
        self.query_one("#status", Static).update(text)

    def update_status(self) -> None:
        shown, total = len(self.table.items), len(self.all)
        self.set_status(f"{shown:,} of {total:,} {self._noun(total)}" if shown != total else self.total_text(total))

    # ---- filter, sort, focus --------------------------------------------------------------

    @on(Input.Changed)
    def _filter_changed(self, event: Input.Changed) -> None:
        if event.input.id != self.FILTER_ID:
            return
        self.words = event.value.casefold().split()
        self.refill()
        self.refresh_bindings()

    def on_key(self, event: Key) -> None:
        """Typing on the table starts a filter (keys with a binding keep their action)."""
        if (self.table.has_focus and event.is_printable and event.character
                and event.key not in self.active_bindings):
            event.stop()
            self.filter_input.focus()
            self.filter_input.insert_text_at_cursor(event.character)

    def _pane_focused(self) -> bool:
        return self.PANE and self.pane.has_focus

    def can_go_back(self) -> bool:
        return len(self.app.screen_stack) > 2

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "back":  # only offered when Escape has something to do
            return bool(self.filter_input.value or self.filter_input.has_focus or self._pane_focused()
                        or self.can_go_back())
        return True

    def action_filter(self) -> None:
        self.filter_input.focus()

    def action_move(self, delta: int) -> None:
        self.table.cursor += delta

    def action_sort(self) -> None:
        keys = [c.key for c in self.COLUMNS]
        current = self.table.sort_column
        self.table.sort_by(keys[(keys.index(current) + 1) % len(keys)] if current in keys else keys[0], False)

    def action_reverse(self) -> None:
        self.table.sort_by(self.table.sort_column or self.COLUMNS[0].key, not self.table.sort_reverse)

    def action_describe(self) -> None:
        if self.PANE:
            self.pane.focus()

    def action_back(self) -> None:
        if self.filter_input.value:
            self.filter_input.value = ""
            self.table.focus()
        elif self.filter_input.has_focus or self._pane_focused():
            self.table.focus()
        elif self.can_go_back():
            self.app.pop_screen()
