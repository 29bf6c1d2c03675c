"""Serving ``?watch=true``: which events a watcher sees, until timeout, server stop or disconnect."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from .errors import ApiError
from .resources import ResourceType
from .selectors import Selection
from .store import Event, Store

# How often an idle watch wakes to notice a server stop or a client that went away.
POLL_SECONDS = 0.2


def _visible_type(event: Event, selection: Selection) -> str | None:
    """The event type this watcher sees. As on the server, an object entering the selection
    is ADDED and one leaving it is DELETED, whatever the underlying change was."""
    now_in = selection.matches(event.obj)
    if event.type == "MODIFIED":
        was_in = event.prev is not None and selection.matches(event.prev)
        if now_in and was_in:
            return "MODIFIED"
        if now_in:
            return "ADDED"
        return "DELETED" if was_in else None
    return event.type if now_in else None


def _as_version(rt: ResourceType, obj: dict[str, Any]) -> dict[str, Any]:
    body = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind")}
    return {"apiVersion": rt.api_version, "kind": rt.kind, **body}


def stream(store: Store, rt: ResourceType, selection: Selection, resource_version: str | None,
           timeout_seconds: float | None, send: Callable[[dict[str, Any]], None],
           should_stop: Callable[[], bool]) -> None:
    """Call ``send`` with each watch event (``{"type": ..., "object": ...}``) until the stream ends."""
    deadline = time.monotonic() + timeout_seconds if timeout_seconds else None
    try:
        pending, cursor = store.watch_start(rt, resource_version)
        while True:
            for event in pending:
                kind = _visible_type(event, selection)
                if kind:
                    send({"type": kind, "object": _as_version(rt, event.obj)})
            wait = POLL_SECONDS if deadline is None else min(POLL_SECONDS, deadline - time.monotonic())
            if wait <= 0 or should_stop() or store.registry.resolve(rt.group, rt.version, rt.plural) is None:
                return
            pending, cursor = store.wait_events(rt.store_key, cursor, wait)
    except ApiError as error:  # a watch reports failures in-band, as an ERROR event
        send({"type": "ERROR", "object": error.status()})
