"""The log and the results of one backup or restore, as Velero stores them in the bucket.

Log lines are logrus text (``time="..." level=info msg="..." backup=velero/name``), what
`velero backup logs` prints. Results sort each error and warning by where it happened, as
Velero's ``results.Result``: ``velero`` (the operation itself), ``cluster`` (cluster-scoped
items) or ``namespaces`` (by namespace).
"""

from __future__ import annotations

import copy
import logging
import threading

from mover.kube.framework.controller import Clock
from mover.velero.objects import BackupResults, Result

log = logging.getLogger("mover.kube")


def _quote(value: str) -> str:
    if value and all(c.isalnum() or c in "-._/:" for c in value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


class OperationLog:
    def __init__(self, clock: Clock, **fields: str) -> None:
        self._clock = clock
        self._fields = fields
        self._lock = threading.Lock()
        self._lines: list[str] = []
        self._results = BackupResults()

    def info(self, msg: str, **fields: str) -> None:
        self._add("info", msg, fields)

    def warning(self, msg: str, namespace: str | None = None, cluster: bool = False, **fields: str) -> None:
        self._add("warning", msg, fields, namespace)
        self._record(self._results.warnings, msg, namespace, cluster)

    def error(self, msg: str, namespace: str | None = None, cluster: bool = False, **fields: str) -> None:
        self._add("error", msg, fields, namespace)
        self._record(self._results.errors, msg, namespace, cluster)

    @property
    def errors(self) -> int:
        with self._lock:
            return self._results.errors.count()

    @property
    def warnings(self) -> int:
        with self._lock:
            return self._results.warnings.count()

    def counts(self) -> dict[str, int]:
        """``errors`` and ``warnings`` for a status, left out when zero as Go's omitempty does."""
        return {k: n for k, n in (("errors", self.errors), ("warnings", self.warnings)) if n}

    def text(self) -> str:
        with self._lock:
            return "".join(line + "\n" for line in self._lines)

    def results(self) -> BackupResults:
        """What goes to the results file (Velero uses the same shape for restores)."""
        with self._lock:
            return copy.deepcopy(self._results)

    def _add(self, level: str, msg: str, fields: dict[str, str], namespace: str | None = None) -> None:
        stamp = self._clock().strftime("%Y-%m-%dT%H:%M:%SZ")
        extra = {**self._fields, **({"namespace": namespace} if namespace else {}), **fields}
        line = f'time="{stamp}" level={level} msg={_quote(msg)}'
        line += "".join(f" {k}={_quote(str(v))}" for k, v in extra.items())
        with self._lock:
            self._lines.append(line)
        log.log({"info": logging.INFO, "warning": logging.WARNING}.get(level, logging.ERROR), "%s", line)

    def _record(self, result: Result, msg: str, namespace: str | None, cluster: bool) -> None:
        with self._lock:
            if namespace:
                result.namespaces.setdefault(namespace, []).append(msg)
            else:
                (result.cluster if cluster else result.velero).append(msg)
