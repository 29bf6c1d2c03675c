"""Volume data on the move: DataUploads, DataDownloads, PodVolumeBackups and PodVolumeRestores
as one kind of row, and their transfer rates, computed from the updates the watch delivers.

The objects carry bytes done and the total, but no rate: the rate is what the app saw change
between two updates (over a sliding window), and the ETA is what is left at that rate. A
finished transfer keeps its duration and its mean rate, from its own timestamps.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from mover.velero.objects import parse_time

Obj = dict[str, Any]

RATE_WINDOW = 10.0  # seconds of samples the rate is taken over
FINISHED = frozenset({"Completed", "Failed", "Canceled", "Cancelled"})

_KINDS = {"DataUpload": "datauploads", "DataDownload": "datadownloads",
          "PodVolumeBackup": "podvolumebackups", "PodVolumeRestore": "podvolumerestores"}


@dataclass(frozen=True)
class Transfer:
    kind: str  # DataUpload, DataDownload, PodVolumeBackup, PodVolumeRestore
    name: str
    owner: str  # the backup's or the restore's name
    target: str  # namespace/PVC, or namespace/pod/volume
    node: str
    phase: str
    bytes_done: int
    total_bytes: int
    created: datetime | None
    started: datetime | None
    completed: datetime | None
    message: str = ""

    @property
    def key(self) -> str:
        return f"{_KINDS.get(self.kind, self.kind)}/{self.name}"

    @property
    def finished(self) -> bool:
        return self.phase in FINISHED

    @property
    def fraction(self) -> float | None:
        return min(self.bytes_done / self.total_bytes, 1.0) if self.total_bytes > 0 else None

    def duration(self, now: datetime) -> float | None:
        """Seconds from start to completion (to ``now`` while it runs)."""
        if self.started is None:
            return None
        end = self.completed if self.finished and self.completed is not None else now
        return max((end - self.started).total_seconds(), 0.0)

    def mean_rate(self) -> float | None:
        """Bytes per second over the whole transfer, once finished."""
        if not self.finished or self.started is None or self.completed is None:
            return None
        seconds = (self.completed - self.started).total_seconds()
        return self.bytes_done / seconds if seconds > 0 else None


def transfer(obj: Obj) -> Transfer:
    """The row of any of the four kinds (their JSON as the API serves it)."""
    kind = obj.get("kind", "")
    meta, spec, status = obj.get("metadata") or {}, obj.get("spec") or {}, obj.get("status") or {}
    labels = meta.get("labels") or {}
    progress = status.get("progress") or {}
    if kind == "DataUpload":
        target = f"{spec.get('sourceNamespace', '')}/{spec.get('sourcePVC', '')}"
    elif kind == "DataDownload":
        volume = spec.get("targetVolume") or {}
        target = f"{volume.get('namespace', '')}/{volume.get('pvc', '')}"
    else:
        pod = spec.get("pod") or {}
        target = f"{pod.get('namespace', '')}/{pod.get('name', '')}/{spec.get('volume', '')}"
    owner = labels.get("velero.io/backup-name") or labels.get("velero.io/restore-name") or ""
    return Transfer(kind=kind, name=meta.get("name", ""), owner=owner, target=target,
                    node=status.get("node") or spec.get("node") or "", phase=status.get("phase") or "New",
                    bytes_done=int(progress.get("bytesDone") or 0), total_bytes=int(progress.get("totalBytes") or 0),
                    created=parse_time(meta.get("creationTimestamp")), started=parse_time(status.get("startTimestamp")),
                    completed=parse_time(status.get("completionTimestamp")), message=status.get("message") or "")


class RateLog:
    """(time seen, bytes done) samples per transfer, fed by the watch thread, read by the UI."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._samples: dict[str, deque[tuple[float, int]]] = {}

    def observe(self, t: Transfer) -> None:
        now = self._clock()
        with self._lock:
            samples = self._samples.setdefault(t.key, deque())
            if samples and samples[-1][1] == t.bytes_done:
                return  # a status change that moved no bytes is not a new sample
            if samples and t.bytes_done < samples[-1][1]:
                samples.clear()  # restarted (a new attempt): earlier samples mean nothing now
            samples.append((now, t.bytes_done))
            while len(samples) > 2 and now - samples[1][0] > RATE_WINDOW:
                samples.popleft()

    def forget(self, key: str) -> None:
        with self._lock:
            self._samples.pop(key, None)

    def rate(self, t: Transfer) -> float | None:
        """Bytes per second lately, counting the time since the last update (a stalled
        transfer's rate falls); None before two samples."""
        if t.finished:
            return None
        with self._lock:
            samples = list(self._samples.get(t.key, ()))
        if len(samples) < 2:
            return None
        (t0, d0), (t1, d1) = samples[0], samples[-1]
        elapsed = max(self._clock(), t1) - t0
        return (d1 - d0) / elapsed if elapsed > 0 else None

    def eta(self, t: Transfer) -> float | None:
        """Seconds left at the current rate."""
        rate = self.rate(t)
        if not rate or t.total_bytes <= 0:
            return None
        return max(t.total_bytes - t.bytes_done, 0) / rate
