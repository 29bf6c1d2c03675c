"""The keys of the screen in one line at the bottom, drawn by one widget.

Textual's Footer is a container with a widget for every key: each screen's first frame mounted
and styled a dozen of them (about half of what a list screen's first paint cost), and it built
them anew whenever the bindings were refreshed (a screen switch, a focus change, a filter key).
This one draws the same line (the same colours, the command palette's key on the right) as
text, redrawn only when the keys it shows change; a click on a key presses it, as there.
"""

from __future__ import annotations

from typing import ClassVar, NamedTuple

from rich.cells import cell_len
from rich.style import Style
from rich.text import Text
from textual import events
from textual.screen import Screen
from textual.widget import Widget


class Key(NamedTuple):
    key: str  # what a click presses
    display: str
    description: str
    enabled: bool
    tooltip: str


def shown_keys(screen: Screen) -> tuple[list[Key], Key | None]:
    """The keys Textual's Footer shows for ``screen``: one per action, in binding order, and the
    command palette's (drawn on the right)."""
    app = screen.app
    seen: set[str] = set()
    keys = []
    for _node, binding, enabled, tooltip in screen.active_bindings.values():
        if binding.show and binding.action not in seen:
            seen.add(binding.action)
            keys.append(Key(binding.key, app.get_key_display(binding), binding.description, enabled, tooltip))
    palette = None
    if app.ENABLE_COMMAND_PALETTE and app.COMMAND_PALETTE_BINDING in screen.active_bindings:
        _node, binding, enabled, tooltip = screen.active_bindings[app.COMMAND_PALETTE_BINDING]
        palette = Key(binding.key, app.get_key_display(binding), binding.description, enabled,
                      binding.tooltip or binding.description)
    return keys, palette


class Footer(Widget, can_focus=False):
    ALLOW_SELECT = False
    COMPONENT_CLASSES: ClassVar[set[str]] = {"footer--key", "footer--description", "footer--hover",
                                             "footer--separator"}
    # Textual's Footer and FooterKey styles, on the parts of one line.
    DEFAULT_CSS = """
    Footer {
        dock: bottom;
        height: 1;
        color: $footer-foreground;
        background: $footer-background;
        & > .footer--key {
            color: $footer-key-foreground;
            background: $footer-key-background;
            text-style: bold;
        }
        & > .footer--description {
            color: $footer-description-foreground;
            background: $footer-description-background;
        }
        & > .footer--hover {
            color: $footer-key-foreground;
            background: $block-hover-background;
        }
        & > .footer--separator {
            color: $foreground 20%;
        }
    }
    """

    def __init__(self, *, name: str | None = None, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self._keys: list[Key] = []
        self._palette: Key | None = None
        self._spans: list[tuple[int, int, Key]] = []  # (first cell, end cell, key) as last drawn
        self._hover: Key | None = None

    def on_mount(self) -> None:
        self.screen.bindings_updated_signal.subscribe(self, self._bindings_changed)

    def on_unmount(self) -> None:
        self.screen.bindings_updated_signal.unsubscribe(self)

    def _bindings_changed(self, screen: Screen) -> None:
        if not (self.is_attached and screen is self.screen):
            return  # a screen being taken down has lost what its bindings' checks look at
        keys, palette = shown_keys(screen)
        if (keys, palette) != (self._keys, self._palette):
            self._keys, self._palette = keys, palette
            self.refresh()

    # ---- drawing -------------------------------------------------------------------------

    def render(self) -> Text:
        key_style = self.get_component_rich_style("footer--key")
        description_style = self.get_component_rich_style("footer--description")
        hover_style = self.get_component_rich_style("footer--hover")
        width = self.size.width
        line = Text(no_wrap=True, overflow="crop", end="")
        self._spans = []

        def add(k: Key, key_text: str, description_text: str) -> None:
            start = line.cell_len
            dim = Style(dim=True) if not k.enabled else Style()
            # FooterKey:hover colours the widget: its parts keep their own text colours
            hover = Style(bgcolor=hover_style.bgcolor) if k is self._hover else Style()
            line.append(key_text, key_style + hover + dim)
            if description_text:
                line.append(description_text, description_style + hover + dim)
            self._spans.append((start, line.cell_len, k))

        for k in self._keys:
            # a key with a description: " k " then "description " (FooterKey's paddings)
            add(k, f" {k.display} " if k.description else k.display, f"{k.description} " if k.description else "")
        if self._palette is not None:
            k = self._palette
            # docked right, compact: "▏^p palette " (a border on the left, no padding in the key)
            tail = cell_len(f"▏{k.display} {k.description} ")
            start = max(width - tail, 0)
            line.truncate(start)
            line.append(" " * (start - line.cell_len))  # the gap, in the footer's colours
            self._spans = [(first, min(end, start), key) for first, end, key in self._spans if first < start]
            line.append("▏", self.get_component_rich_style("footer--separator"))
            add(k, k.display, f" {k.description}")
            line.append(" ")  # the key's right padding, in the footer's colours
        return line

    # ---- the mouse -----------------------------------------------------------------------

    def _key_at(self, x: int) -> Key | None:
        return next((k for start, end, k in self._spans if start <= x < end), None)

    def on_mouse_move(self, event: events.MouseMove) -> None:
        k = self._key_at(event.x)
        if k is not self._hover:
            self._hover = k
            self.tooltip = k.tooltip if k is not None else None
            self.refresh()

    def on_leave(self) -> None:
        if self._hover is not None:
            self._hover = None
            self.refresh()

    def on_mouse_down(self, event: events.MouseDown) -> None:
        k = self._key_at(event.x)
        if k is None:
            return
        if k.enabled:
            self.app.simulate_key(k.key)
        else:
            self.app.bell()
