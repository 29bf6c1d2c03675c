"""Waiting on the kbrowse TUI under the pilot."""

from __future__ import annotations

from textual.app import App
from textual.screen import Screen


def shows(app: App, screen_type: type[Screen]) -> bool:
    """The app shows a ``screen_type`` screen, composed and mounted.

    ``push_screen`` makes a screen ``app.screen`` at once, before its widgets exist: a test
    that queries it (or ends, tearing the app down under the mounting screen) in between sees
    a screen without widgets.
    """
    return isinstance(app.screen, screen_type) and app.screen.is_mounted
