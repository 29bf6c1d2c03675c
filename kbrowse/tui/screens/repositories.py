"""The cluster's backup repositories (one per volume namespace, storage location and
uploader), as `velero repo get` lists them, with where each lives."""

from __future__ import annotations

from typing import Any, ClassVar

from kbrowse.bucket.printers import go_time
from kbrowse.tui.screens.cluster import ClusterListScreen, phase_style
from kbrowse.tui.widgets.virtual_table import Column
from mover.velero.objects import parse_time

Obj = dict[str, Any]


def _maintained(repo: Obj) -> str:
    when = (repo.get("status") or {}).get("lastMaintenanceTime")
    return go_time(parse_time(when)) if when else "<nil>"


class RepositoriesScreen(ClusterListScreen[Obj]):
    TAB = "repositories"
    KINDS = ("repositories",)
    NOUN = "repository"
    PLURAL = "repositories"
    LOADING = "watching backup repositories…"
    EMPTY = "no backup repositories: the first volume backup of a namespace makes one"
    TABLE_TITLE = "Backup repositories"
    COLUMNS: ClassVar[list[Column[Obj]]] = [
        Column("name", "NAME"),
        Column("status", "STATUS", 9),
        Column("maintained", "LAST MAINTENANCE", 29,
               sort_key=lambda r: (r.get("status") or {}).get("lastMaintenanceTime") or ""),
        Column("namespace", "VOLUME NAMESPACE", 16),
        Column("location", "STORAGE LOCATION", 16),
        Column("type", "TYPE", 6),
        Column("identifier", "REPOSITORY"),
    ]

    def row(self, repo: Obj) -> list[str]:
        spec, status = repo.get("spec") or {}, repo.get("status") or {}
        return [repo["metadata"]["name"], status.get("phase") or "New", _maintained(repo),
                spec.get("volumeNamespace", ""), spec.get("backupStorageLocation", ""),
                spec.get("repositoryType") or "restic", spec.get("resticIdentifier", "")]

    def style(self, repo: Obj) -> str:
        return phase_style((repo.get("status") or {}).get("phase") or "")

    def key(self, repo: Obj) -> object:
        return repo["metadata"]["name"]
