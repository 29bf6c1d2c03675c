"""Textual's footer, redrawn once however many times the bindings changed since the last frame.

Textual's Footer recomposes (a new widget, with its styles, for every key shown) on each
``refresh_bindings``; a screen switch, a focus change and a filter key each ask for one, so a
list screen's first frame rebuilt the footer several times over.
"""

from __future__ import annotations

from textual.screen import Screen
from textual.widgets import Footer as TextualFooter


class Footer(TextualFooter):
    _recompose_pending = False

    def bindings_changed(self, screen: Screen) -> None:
        if self._recompose_pending:
            return
        self._recompose_pending = True
        self.call_after_refresh(self._settle, screen)

    async def _settle(self, screen: Screen) -> None:
        self._recompose_pending = False
        super().bindings_changed(screen)
