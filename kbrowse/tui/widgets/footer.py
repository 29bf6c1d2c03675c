"""Textual's footer, rebuilt only when the keys it shows changed, and at most once a frame.

Textual's Footer recomposes (a new widget, with its styles, for every key shown) on each
``refresh_bindings``; a screen switch, a focus change and a filter key each ask for one, so a
list screen's first frame rebuilt the footer several times over, and switching back to a
screen rebuilt a footer that already showed the right keys.
"""

from __future__ import annotations

from textual.screen import Screen
from textual.widgets import Footer as TextualFooter

Shown = tuple[tuple[str, str, str, bool, str], ...]


def shown_keys(screen: Screen) -> Shown:
    """What the footer draws of ``screen``'s bindings (Textual's Footer shows these)."""
    return tuple((binding.key, binding.description, binding.action, enabled, tooltip)
                 for _node, binding, enabled, tooltip in screen.active_bindings.values() if binding.show)


class Footer(TextualFooter):
    _recompose_pending = False
    _shown: Shown | None = None

    def bindings_changed(self, screen: Screen) -> None:
        if self._recompose_pending:
            return
        self._recompose_pending = True
        self.call_after_refresh(self._settle, screen)

    async def _settle(self, screen: Screen) -> None:
        self._recompose_pending = False
        # Textual's own conditions for a rebuild; a screen being taken down has lost the widgets
        # its bindings' checks look at, so its keys are not asked for.
        if self.is_attached and screen is self.screen and screen.app.app_focus:
            shown = shown_keys(screen)
            if shown == self._shown and self.children:
                return
            self._shown = shown
        super().bindings_changed(screen)
