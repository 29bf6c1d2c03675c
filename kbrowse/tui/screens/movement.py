"""Data movement: every DataUpload, DataDownload, PodVolumeBackup and PodVolumeRestore in one
table, running ones first, each with a progress bar, bytes done of the total, the rate seen
in the watched updates and the time left; finished ones keep their duration and mean rate.

Rows change when the watch says so; a clock redraws the ages and rates once a second (no
request is made for it)."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

from kbrowse.cluster.movement import Transfer
from kbrowse.cluster.store import MOVEMENT_KINDS
from kbrowse.tui.screens.cluster import ClusterListScreen, now, phase_style
from kbrowse.tui.widgets.virtual_table import Column

BAR_CELLS = 10
REDRAW_SECONDS = 1.0
SHORT_KIND = {"DataUpload": "DataUpload", "DataDownload": "DataDownload", "PodVolumeBackup": "PodVolBackup",
              "PodVolumeRestore": "PodVolRestore"}


def short_duration(seconds: float) -> str:
    """kubectl's short ages: 45s, 3m20s, 2h5m, 4d."""
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s" if s < 600 else f"{s // 60}m"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d"


def short_bytes(n: float) -> str:
    """Sizes in at most five cells, for a table that must fit 130 columns: 512B, 12K, 768M, 4.0G."""
    for unit in ("B", "K", "M", "G", "T"):
        if n < 1024 or unit == "T":
            return f"{n:.0f}{unit}" if unit == "B" or n >= 100 else f"{n:.1f}{unit}"
        n /= 1024
    return f"{n:.1f}P"


def progress_cell(t: Transfer) -> str:
    fraction = t.fraction
    if fraction is None:
        return f"{'·' * BAR_CELLS} {short_bytes(t.bytes_done)}" if t.bytes_done else ""
    filled = round(fraction * BAR_CELLS * 2)  # half cells: ▌
    bar = "█" * (filled // 2) + ("▌" if filled % 2 else "")
    return f"{bar.ljust(BAR_CELLS, '·')} {fraction * 100:3.0f}% {short_bytes(t.bytes_done)}/{short_bytes(t.total_bytes)}"


def rate_cell(rate: float | None) -> str:
    return f"{short_bytes(rate)}/s" if rate is not None else ""


def _running_first(t: Transfer) -> tuple[bool, float]:
    return t.finished, -(t.created.timestamp() if t.created else 0.0)


class MovementScreen(ClusterListScreen[Transfer]):
    TAB = "movement"
    KINDS = MOVEMENT_KINDS
    NOUN = "volume transfer"
    LOADING = "watching DataUploads, DataDownloads, PodVolumeBackups and PodVolumeRestores…"
    EMPTY = "no volume data moved yet: backups with file-system or data-mover volumes show here"
    FILTER_HINT = "filter: type part of a kind, backup, namespace, PVC, pod, node or phase"
    TABLE_TITLE = "Data movement"
    SORT = ("phase", False)  # running first, then newest first
    COLUMNS: ClassVar[list[Column[Transfer]]] = [
        Column("kind", "KIND", 13),
        Column("owner", "BACKUP/RESTORE", 18),
        Column("target", "NAMESPACE/PVC|POD/VOLUME"),
        Column("node", "NODE", 9),
        Column("phase", "PHASE", 10, sort_key=_running_first),
        Column("progress", "PROGRESS", 27, sort_key=lambda t: t.fraction or 0.0),
        Column("rate", "RATE", 7, "right"),
        Column("eta", "ETA/TOOK", 8, "right"),
        Column("age", "AGE", 5, "right", sort_key=lambda t: -(t.created.timestamp() if t.created else 0.0)),
    ]

    def on_mount(self) -> None:
        super().on_mount()
        self.set_interval(REDRAW_SECONDS, self._tick)

    def _tick(self) -> None:
        self.now = now()
        self.table.redraw()

    def row(self, t: Transfer) -> tuple[str, ...]:
        rates = self.session.store.rates
        if t.finished:
            mean = t.mean_rate()
            took = t.duration(self.now)
            rate = rate_cell(mean)
            eta = short_duration(took) if took is not None else ""
        else:
            left = rates.eta(t)
            rate = rate_cell(rates.rate(t))
            eta = short_duration(left) if left is not None else ""
        return (SHORT_KIND.get(t.kind, t.kind), t.owner, t.target, t.node, t.phase, progress_cell(t), rate, eta,
                _age(t.created, self.now))

    def style(self, t: Transfer) -> str:
        if t.phase == "Completed":
            return "dim"
        return phase_style(t.phase)

    def key(self, t: Transfer) -> object:
        return t.key


def _age(created: datetime | None, when: datetime) -> str:
    return short_duration((when - created).total_seconds()) if created is not None else ""
