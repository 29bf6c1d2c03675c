"""Handing a worker thread's result to the UI thread."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from textual.dom import DOMNode, NoScreen


def deliver(node: DOMNode, callback: Callable[..., object], *args: Any, **kwargs: Any) -> None:
    """From a worker thread: run ``callback(*args, **kwargs)`` on the UI thread, unless the
    screen of ``node`` has closed meanwhile (popped, or the app quitting).

    Textual cancels a screen's workers only once its widgets are gone, so a worker that
    finishes just as the user leaves the screen would otherwise run its callback on a screen
    without widgets (and crash the app with ``NoMatches``). The check runs on the UI thread,
    where screens are popped, so no pop can come between it and the callback.
    """
    try:
        node.app.call_from_thread(_if_shown, node, callback, args, kwargs)
    except RuntimeError:
        pass  # the app has stopped: nothing is left to update


def _if_shown(node: DOMNode, callback: Callable[..., object], args: tuple[Any, ...],
              kwargs: dict[str, Any]) -> None:
    try:
        screen = node.screen
    except NoScreen:
        return
    app = node.app
    if app.is_running and screen in app.screen_stack:
        callback(*args, **kwargs)
