"""The cluster's backup storage locations, as `velero backup-location get` lists them: phase
and last validation, kept current by the watch. Enter opens one as a bucket: every backup in
it, also those the cluster does not know (yet)."""

from __future__ import annotations

from typing import Any, ClassVar

from textual import on
from textual.binding import Binding, BindingType

from kbrowse.cluster.printers import location_row
from kbrowse.tui.screens.backups import BackupsScreen
from kbrowse.tui.screens.cluster import ClusterListScreen, phase_style
from kbrowse.tui.widgets.virtual_table import Column, VirtualTable

Obj = dict[str, Any]


class LocationsScreen(ClusterListScreen[Obj]):
    TAB = "locations"
    KINDS = ("locations",)
    NOUN = "storage location"
    LOADING = "watching backup storage locations…"
    EMPTY = "no backup storage locations in this namespace"
    TABLE_TITLE = "Backup storage locations"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "open", "Open", tooltip="The location's bucket: its backups, read from storage"),
    ]
    COLUMNS: ClassVar[list[Column[Obj]]] = [
        Column("name", "NAME"),
        Column("provider", "PROVIDER", 10),
        Column("bucket", "BUCKET/PREFIX", 30),
        Column("phase", "PHASE", 11),
        Column("validated", "LAST VALIDATED", 29,
               sort_key=lambda loc: (loc.get("status") or {}).get("lastValidationTime") or ""),
        Column("access", "ACCESS MODE", 11),
        Column("default", "DEFAULT", 7),
        Column("message", "MESSAGE", 24),
    ]

    def row(self, loc: Obj) -> list[str]:
        return [*location_row(loc), (loc.get("status") or {}).get("message", "")]

    def style(self, loc: Obj) -> str:
        return phase_style((loc.get("status") or {}).get("phase") or "")

    def key(self, loc: Obj) -> object:
        return loc["metadata"]["name"]

    @on(VirtualTable.Selected)
    def action_open(self) -> None:
        loc = self.current
        if loc is None:
            return
        name = loc["metadata"]["name"]
        self.request(f"open storage location {name}", lambda: self.session.bucket(name),
                     lambda bucket: self.app.push_screen(BackupsScreen(bucket, f"{name} · {bucket.location()}")))
