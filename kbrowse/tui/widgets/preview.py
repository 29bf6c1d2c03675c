"""The preview pane: draws a file's lines (highlighted text or hex) only as they scroll by."""

from __future__ import annotations

from rich.segment import Segment
from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.strip import Strip

from kbrowse.tui.preview_content import Lines, TextLines, note


class Preview(ScrollView, can_focus=True):
    """Scrollable lines from a :class:`Lines` source, or a one-line message."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.lines: Lines = TextLines([], numbered=False)
        self.pending = False  # waiting for the content of the entry named in the title

    def reading(self, title: str) -> None:
        """Name the entry now, its content follows: the pane never shows the last entry's
        content under the new entry's facts."""
        self.message("reading…", title)
        self.pending = True

    def show(self, lines: Lines, title: str = "", subtitle: str = "") -> None:
        self.pending = False
        self.lines = lines
        self.border_title = title
        self.border_subtitle = subtitle
        self._layout()
        self.scroll_to(0, 0, animate=False)

    def _layout(self) -> None:
        self.lines = self.lines.fit(self.scrollable_content_region.width)
        self.virtual_size = Size(self.lines.width, len(self.lines))
        self.refresh()

    def on_resize(self) -> None:
        self._layout()

    def message(self, text: str, title: str = "") -> None:
        """A short note instead of content: a directory, an empty file, an error."""
        self.show(note(text), title)

    @property
    def plain(self) -> str:
        """Everything shown, as text (for tests and copy)."""
        return "\n".join(self.lines.line(i).plain for i in range(len(self.lines)))

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        base = self.rich_style
        index = round(self.scroll_y) + y
        if index >= len(self.lines):
            return Strip.blank(width, base)
        segments = list(self.lines.line(index).render(self.app.console))
        styled = Segment.apply_style(segments, base)
        x = round(self.scroll_x)
        return Strip(styled).crop_extend(x, x + width, base)
