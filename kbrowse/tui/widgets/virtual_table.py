"""A table that renders only the rows on screen, for listings of any length.

Textual's DataTable measures every cell of every row it is given, which takes seconds for a
directory of 100,000 entries. This table keeps the caller's items as they are and formats a
row only when it is drawn, so handing it a list of any size costs nothing on the UI thread.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, ClassVar, Generic, TypeVar

from rich.cells import cell_len, set_cell_size
from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding, BindingType
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

T = TypeVar("T")


@dataclass(frozen=True)
class Column(Generic[T]):
    key: str
    label: str
    width: int | None = None  # None: takes the width the fixed columns leave
    justify: str = "left"
    sort_key: Callable[[T], Any] | None = None  # None: the column's text, case-folded


@lru_cache(maxsize=256)
def _style(spec: str) -> Style:
    return Style.parse(spec) if spec else Style.null()


def _fit(text: str, width: int, justify: str) -> str:
    if cell_len(text) > width:
        return set_cell_size(text, max(width - 1, 0)) + "…" if width else ""
    pad = " " * (width - cell_len(text))
    return pad + text if justify == "right" else text + pad


class VirtualTable(ScrollView, Generic[T], can_focus=True):
    """Rows are items of any type; ``formatter`` turns the visible ones into cell texts."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {"virtual-table--header", "virtual-table--cursor",
                         "virtual-table--cursor-blurred"}
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up", "cursor(-1)", "Up", show=False),
        Binding("down", "cursor(1)", "Down", show=False),
        Binding("pageup", "page(-1)", "Page up", show=False),
        Binding("pagedown", "page(1)", "Page down", show=False),
        Binding("home", "jump(0)", "First", show=False),
        Binding("end", "jump(-1)", "Last", show=False),
        Binding("enter", "select", "Open"),
    ]

    cursor: reactive[int] = reactive(0, always_update=True)

    class Highlighted(Message):
        """The cursor moved to another row (``item`` is None when the table is empty)."""

        def __init__(self, table: VirtualTable, item: Any) -> None:
            super().__init__()
            self.table = table
            self.item = item

        @property
        def control(self) -> VirtualTable:
            return self.table

    class Selected(Message):
        """Enter or a double click on a row."""

        def __init__(self, table: VirtualTable, item: Any) -> None:
            super().__init__()
            self.table = table
            self.item = item

        @property
        def control(self) -> VirtualTable:
            return self.table

    def __init__(self, columns: Sequence[Column[T]], formatter: Callable[[T], Sequence[str]],
                 styler: Callable[[T], str] | None = None, *, empty_text: str = "",
                 name: str | None = None, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.columns = list(columns)
        self.formatter = formatter
        self.styler = styler or (lambda _item: "")
        self.empty_text = empty_text
        self.items: list[T] = []
        self.sort_column: str | None = None
        self.sort_reverse = False
        self._formatted: dict[int, Sequence[str]] = {}  # id(item) -> cells, for rows drawn lately

    # ---- content -------------------------------------------------------------------------

    @property
    def current(self) -> T | None:
        return self.items[self.cursor] if 0 <= self.cursor < len(self.items) else None

    def set_items(self, items: list[T], cursor: int = 0, *, keep_scroll: bool = False,
                  select: Callable[[T], bool] | None = None) -> None:
        """Replace all rows (the list is kept, not copied) and keep the current sort.
        ``keep_scroll``: rows updated in place (a live list), so the view stays where it was;
        ``select``: the cursor goes to the first row it matches (else to ``cursor``)."""
        self.items = items
        self._formatted.clear()
        if self.sort_column is not None:
            self._sort_in_place()
        self._resize()
        if not keep_scroll:
            self.scroll_to(y=0, animate=False)
        if select is not None:
            cursor = next((i for i, item in enumerate(items) if select(item)), cursor)
        self.cursor = min(cursor, max(len(items) - 1, 0))

    def redraw(self) -> None:
        """Format the visible rows again (their text depends on the time, e.g. an age)."""
        self._formatted.clear()
        self.refresh()

    def append_items(self, items: Sequence[T]) -> None:
        """Add rows at the end (streaming results); the cursor stays where it is."""
        was_empty = not self.items
        self.items.extend(items)
        self._resize()
        if was_empty and self.items:
            self.cursor = 0

    def clear(self) -> None:
        self.set_items([])

    def select_where(self, predicate: Callable[[T], bool]) -> bool:
        """Move the cursor to the first row matching ``predicate``."""
        for i, item in enumerate(self.items):
            if predicate(item):
                self.cursor = i
                return True
        return False

    def sort_by(self, key: str, reverse: bool | None = None) -> None:
        """Sort by a column; the same column again flips the order. The cursor row stays."""
        if reverse is None:
            reverse = not self.sort_reverse if key == self.sort_column else False
        keep = self.current
        self.sort_column, self.sort_reverse = key, reverse
        self._sort_in_place()
        self._formatted.clear()
        if keep is not None:
            self.select_where(lambda item: item is keep)
        self.refresh()

    def _sort_in_place(self) -> None:
        i, col = next((i, c) for i, c in enumerate(self.columns) if c.key == self.sort_column)

        def by_text(item: T) -> str:
            return str(self.formatter(item)[i]).casefold()

        key = col.sort_key or by_text
        self.items.sort(key=key, reverse=self.sort_reverse)

    def _resize(self) -> None:
        self.virtual_size = Size(self.scrollable_content_region.width, len(self.items) + 1)
        self.refresh()

    # ---- cursor --------------------------------------------------------------------------

    @property
    def _page(self) -> int:
        return max(self.scrollable_content_region.height - 1, 1)  # minus the header line

    def validate_cursor(self, value: int) -> int:
        return max(0, min(value, len(self.items) - 1)) if self.items else 0

    def watch_cursor(self, _old: int, new: int) -> None:
        top = round(self.scroll_y)
        if new < top:
            self.scroll_to(y=new, animate=False)
        elif new >= top + self._page:
            self.scroll_to(y=new - self._page + 1, animate=False)
        self.refresh()
        self.post_message(self.Highlighted(self, self.current))

    def action_cursor(self, delta: int) -> None:
        self.cursor += delta

    def action_page(self, direction: int) -> None:
        self.cursor += direction * self._page

    def action_jump(self, where: int) -> None:
        self.cursor = where if where >= 0 else len(self.items) - 1

    def action_select(self) -> None:
        if self.current is not None:
            self.post_message(self.Selected(self, self.current))

    def on_focus(self) -> None:
        self.refresh()

    def on_blur(self) -> None:
        self.refresh()

    def on_resize(self) -> None:
        self._resize()

    def on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None:
            return
        if offset.y == 0:
            col = self._column_at(offset.x)
            if col is not None:
                self.sort_by(col.key)
            return
        index = round(self.scroll_y) + offset.y - 1
        if 0 <= index < len(self.items):
            self.cursor = index
            if event.chain == 2:
                self.action_select()

    # ---- drawing -------------------------------------------------------------------------

    def _widths(self) -> list[int]:
        total = self.scrollable_content_region.width
        fixed = sum(c.width or 0 for c in self.columns) + len(self.columns) - 1
        flex = [c for c in self.columns if c.width is None]
        share = max((total - fixed) // max(len(flex), 1), 8)
        return [c.width if c.width is not None else share for c in self.columns]

    def _column_at(self, x: int) -> Column[T] | None:
        pos = 0
        for col, width in zip(self.columns, self._widths(), strict=True):
            if pos <= x < pos + width + 1:
                return col
            pos += width + 1
        return None

    def _line(self, cells: Sequence[str], style: Style, width: int) -> Strip:
        parts = [_fit(str(text), w, col.justify)
                 for text, w, col in zip(cells, self._widths(), self.columns, strict=False)]
        return Strip([Segment(" ".join(parts), style)]).crop_extend(0, width, style)

    def _header(self, width: int) -> Strip:
        labels = []
        for col in self.columns:
            mark = ""
            if col.key == self.sort_column:
                mark = " ▼" if self.sort_reverse else " ▲"
            labels.append(col.label + mark)
        return self._line(labels, self.get_component_rich_style("virtual-table--header"), width)

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        base = self.rich_style
        if y == 0:
            return self._header(width)
        index = round(self.scroll_y) + y - 1
        if not self.items:
            if y == 1 and self.empty_text:
                return Strip([Segment(_fit(self.empty_text, width, "left"), base + Style(dim=True))])
            return Strip.blank(width, base)
        if index >= len(self.items):
            return Strip.blank(width, base)
        item = self.items[index]
        cells = self._formatted.get(id(item))
        if cells is None:
            if len(self._formatted) > 2048:  # only what was drawn lately is worth keeping
                self._formatted.clear()
            cells = self._formatted[id(item)] = self.formatter(item)
        style = base + _style(self.styler(item))
        if index == self.cursor:
            name = "virtual-table--cursor" if self.has_focus else "virtual-table--cursor-blurred"
            style += self.get_component_rich_style(name)
        return self._line(cells, style, width)
