"""The snapshots of a repository as a table: sortable by any column, filtered by words."""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from rich.text import Text
from textual.binding import Binding, BindingType
from textual.widgets import DataTable

from kbrowse.tui.fmt import snapshot_time
from mover.view.snapshot import Snapshot

# (key, label, text of a snapshot, sort key)
COLUMNS: list[tuple[str, str, Callable[[Snapshot], str], Callable[[Snapshot], object]]] = [
    ("id", "ID", lambda s: s.short_id, lambda s: s.id),
    ("time", "Time", snapshot_time, lambda s: (s.time, s.id)),
    ("host", "Host", lambda s: s.hostname, lambda s: s.hostname),
    ("paths", "Paths", lambda s: ", ".join(s.paths), lambda s: s.paths),
    ("tags", "Tags", lambda s: ", ".join(s.tags), lambda s: s.tags),
]
KEYS = [key for key, _, _, _ in COLUMNS]


def _searchable(s: Snapshot) -> str:
    return (" ".join(text(s) for _, _, text, _ in COLUMNS) + " " + s.id.hex()).casefold()


class SnapshotTable(DataTable):
    # DataTable's own Enter binding is hidden; this one says what Enter does here
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "select_cursor", "Browse", tooltip="Browse the highlighted snapshot"),
    ]

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, id=id)
        self.snapshots: list[Snapshot] = []
        self.words: list[str] = []
        self.sort_key, self.sort_reverse = "time", True  # newest first

    def on_mount(self) -> None:
        for key, label, _, _ in COLUMNS:
            self.add_column(label, key=key)

    @property
    def current(self) -> Snapshot | None:
        if not self.row_count:
            return None
        key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value
        return next((s for s in self.snapshots if s.id.hex() == key), None)

    def set_snapshots(self, snapshots: list[Snapshot]) -> None:
        self.snapshots = snapshots
        self._refill()

    def filter(self, text: str) -> None:
        """Show the snapshots whose columns (or full id) hold every word of ``text``."""
        self.words = text.casefold().split()
        self._refill()

    def sort_by(self, key: str, reverse: bool | None = None) -> None:
        """Sort by a column; the same column again flips the order."""
        if reverse is None:
            reverse = not self.sort_reverse if key == self.sort_key else key == "time"
        self.sort_key, self.sort_reverse = key, reverse
        self._refill()

    def sort_next(self) -> None:
        self.sort_by(KEYS[(KEYS.index(self.sort_key) + 1) % len(KEYS)])

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        event.stop()
        self.sort_by(str(event.column_key.value))

    def _refill(self) -> None:
        keep = self.current
        self.clear()
        for key, label, _, _ in COLUMNS:
            mark = (" ▼" if self.sort_reverse else " ▲") if key == self.sort_key else ""
            self.columns[key].label = Text(label + mark)  # type: ignore[index]
        shown = [s for s in self.snapshots if all(w in _searchable(s) for w in self.words)]
        sort = next(key for k, _, _, key in COLUMNS if k == self.sort_key)
        shown.sort(key=sort, reverse=self.sort_reverse)
        for s in shown:
            self.add_row(*[Text(text(s)) for _, _, text, _ in COLUMNS], key=s.id.hex())
        if keep is not None and keep in shown:
            self.move_cursor(row=shown.index(keep))
