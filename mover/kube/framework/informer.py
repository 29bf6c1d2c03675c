"""A local cache of one resource in one namespace, kept current by list-then-watch.

Watches resume from the last resourceVersion seen after a disconnect or a server-side
timeout, so no change is missed and nothing is listed twice; only a 410 Gone (the server no
longer has history that old) forces a relist. Every change is reported by name.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from mover.kube.framework.client import Kube, KubeError, Obj, Resource, WatchStream

log = logging.getLogger("mover.kube")

# A watch request ends after this long (server side) and is renewed from the last resourceVersion.
WATCH_SECONDS = 300
RETRY_MIN, RETRY_MAX = 0.2, 10.0


class Informer:
    def __init__(self, kube: Kube, resource: Resource, namespace: str, on_change: Callable[[str], None],
                 stop: threading.Event, watch_seconds: int = WATCH_SECONDS,
                 on_error: Callable[[KubeError], None] | None = None) -> None:
        self.kube = kube
        self.resource = resource
        self.namespace = namespace
        self.synced = threading.Event()
        self._on_change = on_change
        # Told of each failed list or watch before the retry (an operator's app shows them).
        self._on_error = on_error
        self._stop = stop
        self._watch_seconds = watch_seconds
        self._lock = threading.Lock()
        self._cache: dict[str, Obj] = {}
        self._rv = ""
        self._stream: WatchStream | None = None

    def get(self, name: str) -> Obj | None:
        with self._lock:
            return self._cache.get(name)

    def names(self) -> list[str]:
        with self._lock:
            return list(self._cache)

    def objects(self) -> list[Obj]:
        with self._lock:
            return list(self._cache.values())

    def close(self) -> None:
        """Unblock a watch waiting for events, so ``run`` sees the stop flag."""
        stream = self._stream
        if stream is not None:
            stream.close()

    def run(self) -> None:
        retry = RETRY_MIN
        while not self._stop.is_set():
            try:
                if not self._rv:
                    self._relist()
                self._watch()
                retry = RETRY_MIN
            except KubeError as exc:
                if exc.gone:
                    log.info("watch of %s expired (%s); listing again", self.resource.qualified, exc.message)
                    self._rv = ""
                    continue
                log.warning("watching %s: %s; retrying in %.1fs", self.resource.qualified, exc.message, retry)
                if self._on_error is not None:
                    self._on_error(exc)
                self._stop.wait(retry)
                retry = min(retry * 2, RETRY_MAX)

    def _relist(self) -> None:
        listing = self.kube.list(self.resource, self.namespace)
        fresh = {item["metadata"]["name"]: item for item in listing["items"]}
        with self._lock:
            changed = [name for name in fresh.keys() | self._cache.keys()
                       if fresh.get(name) != self._cache.get(name)]
            self._cache = fresh
            self._rv = listing["resourceVersion"]
        self.synced.set()
        for name in changed:
            self._on_change(name)

    def _watch(self) -> None:
        self._stream = self.kube.watch(self.resource, self.namespace, self._rv, self._watch_seconds)
        try:
            if self._stop.is_set():  # stop() may have run before the stream existed
                return
            for event in self._stream:
                kind, obj = event.get("type"), event.get("object") or {}
                if kind == "ERROR":
                    raise KubeError(obj.get("code", 0), obj.get("reason", ""), obj.get("message", "watch error"))
                meta = obj.get("metadata") or {}
                if kind != "BOOKMARK":
                    name = meta["name"]
                    with self._lock:
                        if kind == "DELETED":
                            self._cache.pop(name, None)
                        else:
                            self._cache[name] = obj
                    self._on_change(name)
                self._rv = meta.get("resourceVersion") or self._rv
        finally:
            self._stream.close()
            self._stream = None
