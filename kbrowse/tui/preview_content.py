"""What the preview pane shows for a file: highlighted text, or a hex dump of binary data.

Everything here runs in a worker thread: highlighting a 256 KiB file takes a noticeable moment,
and the UI thread only ever draws the few lines on screen.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol

from rich.style import Style
from rich.syntax import Syntax
from rich.text import Span, Text

from mover.golang.gojson import go_quote
from mover.progress import human_bytes
from mover.view import SnapshotView
from mover.view.node import Node

PREVIEW_BYTES = 256 * 1024
HEX_WIDTH = 16
_SNIFF = 8192


class Lines(Protocol):
    """A block of lines the preview draws on demand."""

    def __len__(self) -> int: ...
    def line(self, i: int) -> Text: ...
    @property
    def width(self) -> int: ...
    def fit(self, width: int) -> Lines:
        """The same content laid out for a pane ``width`` cells wide."""
        ...


@dataclass
class TextLines:
    lines: list[Text]
    language: str = "text"
    numbered: bool = True

    def __post_init__(self) -> None:
        self._gutter = len(str(len(self.lines))) if self.numbered else 0
        self._width = max((t.cell_len for t in self.lines), default=0) + self._gutter + 3

    def __len__(self) -> int:
        return len(self.lines)

    @property
    def width(self) -> int:
        return self._width

    def fit(self, width: int) -> TextLines:
        return self  # long lines scroll sideways: code should not be re-wrapped

    def line(self, i: int) -> Text:
        if not self.numbered:
            return self.lines[i]
        return Text.assemble((f"{i + 1:>{self._gutter}} ", "dim"), ("│ ", "dim"), self.lines[i])


@dataclass
class HexLines:
    """``offset  hex bytes  |ascii|``, 16 bytes a line (8 in a narrow pane), formatted when drawn."""

    data: bytes
    per_line: int = HEX_WIDTH

    def __len__(self) -> int:
        return (len(self.data) + self.per_line - 1) // self.per_line

    @property
    def width(self) -> int:
        return _hex_width(self.per_line)

    def fit(self, width: int) -> HexLines:
        per_line = HEX_WIDTH if width >= _hex_width(HEX_WIDTH) else HEX_WIDTH // 2
        return self if per_line == self.per_line else HexLines(self.data, per_line)

    def line(self, i: int) -> Text:
        n = self.per_line
        chunk = self.data[i * n:(i + 1) * n]
        out = Text(f"{i * n:08x}  ", style="dim")
        for j in range(n):
            if j == 8:
                out.append(" ")
            if j < len(chunk):
                b = chunk[j]
                out.append(f"{b:02x} ", style="dim" if b == 0 else "")
            else:
                out.append("   ")
        ascii_ = "".join(chr(b) if 0x20 <= b < 0x7F else "." for b in chunk)
        out.append(" |", style="dim")
        out.append(ascii_, style="green")
        out.append("|", style="dim")
        return out


def _hex_width(per_line: int) -> int:
    # offset and 2 spaces, "xx " per byte, a space after 8 bytes, " |" ascii "|"
    return 10 + per_line * 3 + (1 if per_line > 8 else 0) + 2 + per_line + 1


def is_binary(data: bytes) -> bool:
    """A NUL in the first bytes, or bytes that are not UTF-8 (a cut-off last character is fine)."""
    head = data[:_SNIFF]
    if b"\0" in head:
        return True
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as e:
        return e.start < len(head) - 3
    return False


def decode_text(data: bytes) -> str:
    return data.decode("utf-8", errors="replace").expandtabs(4)


@lru_cache(maxsize=512)
def _foreground(style: Style | str) -> Style:
    style = Style.parse(style) if isinstance(style, str) else style
    return Style(color=style.color, bold=style.bold, dim=style.dim, italic=style.italic,
                 underline=style.underline, strike=style.strike)


def highlight(name: str, data: bytes, theme: str = "monokai") -> TextLines:
    """Syntax-highlighted lines; the lexer is guessed from the name, else from the content."""
    code = decode_text(data)
    lexer = Syntax.guess_lexer(name, code)
    text = Syntax(code, lexer, theme=theme).highlight(code)
    # the pane's own background, not the theme's: a highlighted file should not look like a box
    text.style = ""
    text.spans = [Span(sp.start, sp.end, _foreground(sp.style)) for sp in text.spans]
    text.rstrip()
    lines = list(text.split("\n", allow_blank=True))
    for line in lines:
        line.no_wrap = True
    return TextLines(lines, language="text" if lexer == "default" else lexer)


def note(text: str) -> TextLines:
    """A short message in place of content."""
    return TextLines([Text(line, style="dim") for line in text.splitlines()], numbered=False)


def describe(view: SnapshotView, node: Node, theme: str = "monokai") -> tuple[Lines, str]:
    """What the preview shows for any entry, and a subtitle; reads at most PREVIEW_BYTES."""
    if node.type == "dir":
        children = view.list_dir(node)
        dirs = sum(1 for c in children if c.type == "dir")
        return note(f"Folder: {dirs:,} folders, {len(children) - dirs:,} other entries.\n"
                    f"Enter opens it, r restores it."), ""
    if node.type == "symlink":
        return note(f"Symbolic link to {go_quote(node.linktarget)}"), ""
    if node.type != "file":
        return note(f"A {node.type}: nothing to preview."), ""
    if node.size == 0:
        return note("Empty file."), ""
    data = view.read(node, 0, PREVIEW_BYTES)
    lines, kind = render(node.name, data, theme)
    if node.size > len(data):
        kind += f" · first {human_bytes(len(data))} of {human_bytes(node.size)}"
    return lines, kind


def warm_up() -> None:
    """Load pygments' lexer tables (half a second, once) before the first file is previewed."""
    Syntax.guess_lexer("warm-up.md", "")


def render(name: str, data: bytes, theme: str = "monokai") -> tuple[Lines, str]:
    """The lines to show and what they are (``"yaml"``, ``"text"`` or ``"binary"``)."""
    if is_binary(data):
        return HexLines(data), "binary"
    lines = highlight(name, data, theme)
    return lines, lines.language
