"""The new-backup form: what `kbrowse backup create` (and `velero backup create`) take, checked
as the server would check it, then built into the same Backup object the command submits."""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.widgets import Select

from kbrowse.cluster.backup import backup_object
from kbrowse.cluster.commands import create_args
from kbrowse.tui.screens.form import (
    FormScreen,
    choice,
    field,
    name_problem,
    namespace_problem,
    split_list,
    tick,
)
from mover.errors import RepoError
from mover.golang.duration import format_duration, parse_duration
from mover.kube.controllers.backup import validation_errors
from mover.velero.filters import parse_selector
from mover.velero.objects import BackupSpec, decode

Obj = dict[str, Any]


class BackupFormScreen(FormScreen[Obj | None]):
    """Hands back the Backup to create (or None when cancelled)."""

    HEADING = "New backup"
    SUBMIT = "Create backup"

    def __init__(self, namespace: str, locations: list[str], default_location: str | None,
                 name: str = "") -> None:
        super().__init__()
        self.namespace = namespace
        self.locations = locations
        self.default_location = default_location
        self.initial_name = name

    def fields(self) -> ComposeResult:
        yield from field("Name", "name", self.initial_name, "e.g. shop-before-upgrade")
        yield from field("Included namespaces", "include-namespaces", placeholder="all (*), or ns1,ns2")
        yield from field("Excluded namespaces", "exclude-namespaces", placeholder="none")
        yield from field("Included resources", "include-resources", placeholder="all, or deployments,configmaps")
        yield from field("Excluded resources", "exclude-resources", placeholder="none, or secrets")
        yield from field("Label selector", "selector", placeholder="e.g. app=web,tier!=cache")
        yield from field("TTL", "ttl", placeholder="the server's default (720h)")
        yield from choice("Storage location", "storage-location", [(name, name) for name in self.locations],
                          self.default_location if self.default_location in self.locations else Select.NULL,
                          "the default location")
        yield from tick("Back up pod volumes from the file system by default", "default-volumes-to-fs-backup")
        yield from tick("Move CSI snapshot data into the storage location", "snapshot-move-data")

    def check(self) -> tuple[list[str], Obj | None]:
        problems = []
        name = self.text("name")
        if (p := name_problem(name, "backup name")) is not None:
            problems.append(p)
        included, excluded = split_list(self.text("include-namespaces")), split_list(self.text("exclude-namespaces"))
        problems += [p for ns in included + excluded if (p := namespace_problem(ns)) is not None]
        ttl = self.text("ttl") or None
        if ttl is not None:
            try:
                ttl = format_duration(parse_duration(ttl))
            except ValueError:
                problems.append(f"TTL {ttl!r} is not a duration (e.g. 24h, 30m, 720h0m0s)")
        selector = self.text("selector") or None
        if selector is not None:
            try:
                parse_selector(selector)
            except ValueError as exc:
                problems.append(f"label selector: {exc}")
        if problems:
            return problems, None
        args = create_args(
            "backup", self.namespace, name=name, include_namespaces=included, exclude_namespaces=excluded,
            include_resources=split_list(self.text("include-resources")),
            exclude_resources=split_list(self.text("exclude-resources")), label_selector=selector, ttl=ttl,
            storage_location=self.choice("storage-location"),
            default_volumes_to_fs_backup=self.checked("default-volumes-to-fs-backup"),
            snapshot_move_data=self.checked("snapshot-move-data"))
        try:
            backup = backup_object(args)
        except RepoError as exc:
            return [str(exc)], None
        problems = validation_errors(decode(BackupSpec, backup["spec"]))
        return problems, None if problems else backup
