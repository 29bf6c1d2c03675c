"""What the app knows of a Velero(-compatible) cluster: one informer (list, then watch) per
kind in the server's namespace, each in its own thread, and one dispatcher thread that hands
the changes to the app in batches.

Screens read the store's current objects, already parsed (off the UI thread), and redraw when
told which names of which kinds changed. Nothing polls: a change on the cluster reaches the
screen as a watch event. Failures (no CRD, RBAC, an unreachable server) are reported as they
happen and the informer retries on its own.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from typing import Any

from kbrowse.cluster.movement import RateLog, Transfer, transfer
from mover.errors import RepoError
from mover.kube.framework.client import Kube, KubeError, Obj, Resource
from mover.kube.framework.informer import Informer
from mover.kube.resources import (
    BACKUP_REPOSITORIES,
    BACKUPS,
    BSLS,
    DATA_DOWNLOADS,
    DATA_UPLOADS,
    POD_VOLUME_BACKUPS,
    POD_VOLUME_RESTORES,
    RESTORES,
    SCHEDULES,
)
from mover.velero.objects import Backup, from_json

# The informers log each failed watch, urllib3 each retried request; the app reports failures
# through ``on_error`` instead, and a log line on stderr would tear the terminal it draws on.
for _name in ("mover.kube", "urllib3"):
    logging.getLogger(_name).addHandler(logging.NullHandler())

BATCH_SECONDS = 0.05  # changes this close together reach the app as one batch


def _backup(obj: Obj) -> Backup:
    return from_json(Backup, obj, f"Backup {obj.get('metadata', {}).get('name', '')}")


@dataclass(frozen=True)
class Kind:
    key: str
    resource: Resource
    parse: Callable[[Obj], Any]  # what screens get: a dataclass, or the object itself
    moves_data: bool = False  # rows of the data-movement screen: bytes done are sampled


def _as_is(obj: Obj) -> Obj:
    return obj


KINDS: dict[str, Kind] = {k.key: k for k in (
    Kind("backups", BACKUPS, _backup),
    Kind("restores", RESTORES, _as_is),
    Kind("schedules", SCHEDULES, _as_is),
    Kind("locations", BSLS, _as_is),
    Kind("repositories", BACKUP_REPOSITORIES, _as_is),
    Kind("datauploads", DATA_UPLOADS, transfer, moves_data=True),
    Kind("datadownloads", DATA_DOWNLOADS, transfer, moves_data=True),
    Kind("podvolumebackups", POD_VOLUME_BACKUPS, transfer, moves_data=True),
    Kind("podvolumerestores", POD_VOLUME_RESTORES, transfer, moves_data=True),
)}
MOVEMENT_KINDS = tuple(k for k, kind in KINDS.items() if kind.moves_data)

Changes = dict[str, set[str]]  # kind key -> names changed (added, updated or deleted)


class ClusterStore:
    """``on_change`` and ``on_error(kind, message)`` are called from the store's threads."""

    def __init__(self, kube: Kube, namespace: str, on_change: Callable[[Changes], None] = lambda _c: None,
                 on_error: Callable[[str, str], None] = lambda _k, _m: None,
                 kinds: Iterable[str] = KINDS, clock: Callable[[], float] = time.monotonic) -> None:
        self.kube = kube
        self.namespace = namespace
        self.on_change = on_change
        self.on_error = on_error
        self.rates = RateLog(clock)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._pending: Changes = {}
        self._wake = threading.Event()
        self._parsed: dict[str, dict[str, Any]] = {}
        self._errors: dict[str, str] = {}
        self._informers: dict[str, Informer] = {}
        for key in kinds:
            self._parsed[key] = {}
            self._informers[key] = Informer(kube, KINDS[key].resource, namespace, partial(self._changed, key),
                                            self._stop, on_error=partial(self._failed, key))
        self._threads: list[threading.Thread] = []

    # ---- reading ---------------------------------------------------------------------------

    def items(self, kind: str) -> list[Any]:
        with self._lock:
            return list(self._parsed[kind].values())

    def get(self, kind: str, name: str) -> Any:
        with self._lock:
            return self._parsed[kind].get(name)

    def raw(self, kind: str, name: str) -> Obj | None:
        """The object as the server sent it."""
        return self._informers[kind].get(name)

    def synced(self, kind: str) -> bool:
        return self._informers[kind].synced.is_set()

    def error(self, kind: str) -> str | None:
        """Why the kind cannot be listed now (None when it can)."""
        with self._lock:
            return self._errors.get(kind)

    # ---- running ---------------------------------------------------------------------------

    def start(self) -> ClusterStore:
        """Start the watches (again: nothing more happens)."""
        if self._threads:
            return self
        for key, informer in self._informers.items():
            self._threads.append(threading.Thread(target=informer.run, name=f"watch-{key}", daemon=True))
        self._threads.append(threading.Thread(target=self._dispatch, name="cluster-store", daemon=True))
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        for informer in self._informers.values():
            informer.close()
        for thread in self._threads:
            thread.join(timeout=5)

    def wait_synced(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        return all(i.synced.wait(max(deadline - time.monotonic(), 0)) for i in self._informers.values())

    # ---- informer callbacks (informer threads) ---------------------------------------------

    def _changed(self, kind: str, name: str) -> None:
        obj = self._informers[kind].get(name)
        value = None
        if obj is not None:
            try:
                value = KINDS[kind].parse(obj)
            except RepoError as exc:  # a malformed object: reported, not shown
                self.on_error(kind, str(exc))
        if KINDS[kind].moves_data:
            if isinstance(value, Transfer):
                self.rates.observe(value)
            else:
                self.rates.forget(f"{kind}/{name}")
        with self._lock:
            if value is None:
                self._parsed[kind].pop(name, None)
            else:
                self._parsed[kind][name] = value
            self._pending.setdefault(kind, set()).add(name)
            cleared = self._errors.pop(kind, None) is not None
        if cleared:
            self.on_error(kind, "")
        self._wake.set()

    def _failed(self, kind: str, exc: KubeError) -> None:
        message = failure(exc, "watch" if self._informers[kind].synced.is_set() else "list",
                          KINDS[kind].resource, self.namespace)
        with self._lock:
            if self._errors.get(kind) == message:
                return
            self._errors[kind] = message
        self.on_error(kind, message)

    def _dispatch(self) -> None:
        while not self._stop.is_set():
            self._wake.wait()
            if self._stop.is_set():
                return
            self._stop.wait(BATCH_SECONDS)
            with self._lock:
                changes, self._pending = self._pending, {}
                self._wake.clear()
            if changes:
                self.on_change(changes)


def failure(exc: KubeError, verb: str, res: Resource, namespace: str | None) -> str:
    """One line for a refused or failed request: a missing RBAC right names the verb and the
    resource (what a cluster admin needs to grant), anything else says what failed."""
    where = f" in namespace {namespace}" if namespace and res.namespaced else ""
    if exc.status == 403:
        return f"not allowed to {verb} {res.qualified}{where} (RBAC: {exc.message})"
    if exc.status == 404 and exc.reason == "NotFound" and "requested resource" in exc.message:
        return f"{res.qualified} is not served by this cluster (is its CRD installed?)"
    if exc.status == 0:
        return f"cannot reach the cluster to {verb} {res.qualified}: {exc.message}"
    return f"cannot {verb} {res.qualified}{where}: {exc.message}"
