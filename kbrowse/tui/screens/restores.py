"""The cluster's restores, as `velero restore get` lists them, kept current by the watch; the
describe pane as `velero restore describe --details` prints the highlighted one."""

from __future__ import annotations

from typing import Any, ClassVar

from kbrowse.cluster.printers import restore_row
from kbrowse.cluster.restore import describe_restore
from kbrowse.tui.screens.cluster import ClusterListScreen, phase_style
from kbrowse.tui.widgets.virtual_table import Column

Obj = dict[str, Any]


def _status(r: Obj) -> Obj:
    return r.get("status") or {}


class RestoresScreen(ClusterListScreen[Obj]):
    TAB = "restores"
    KINDS = ("restores",)
    NOUN = "restore"
    LOADING = "watching restores…"
    EMPTY = "no restores: r on a backup makes one"
    FILTER_HINT = "filter: type part of a name, backup, status or time"
    TABLE_TITLE = "Restores"
    PANE = True
    DESCRIBES = "velero restore describe --details"
    SORT = ("created", True)
    COLUMNS: ClassVar[list[Column[Obj]]] = [
        Column("name", "NAME"),
        Column("backup", "BACKUP", 28),
        Column("status", "STATUS", 15),
        Column("started", "STARTED", 29),
        Column("completed", "COMPLETED", 29, sort_key=lambda r: _status(r).get("completionTimestamp") or ""),
        Column("errors", "ERRORS", 6, "right", sort_key=lambda r: _status(r).get("errors", 0)),
        Column("warnings", "WARNINGS", 8, "right", sort_key=lambda r: _status(r).get("warnings", 0)),
        Column("created", "CREATED", 29, sort_key=lambda r: r["metadata"].get("creationTimestamp") or ""),
        Column("selector", "SELECTOR", 10),
    ]

    def row(self, r: Obj) -> list[str]:
        return restore_row(r)

    def style(self, r: Obj) -> str:
        status = _status(r)
        return phase_style(status.get("phase") or "New", status.get("errors", 0), status.get("warnings", 0))

    def key(self, r: Obj) -> object:
        return r["metadata"]["name"]

    def version(self, r: Obj) -> str:
        return r["metadata"].get("resourceVersion", "")

    def on_mount(self) -> None:
        self.pane.message("Highlight a restore to describe it.", "Describe")
        super().on_mount()

    def describe(self, r: Obj) -> str:
        return self.gather(lambda note, cancelled: describe_restore(
            self.session.kube, self.session.namespace, r, note, cancelled))
