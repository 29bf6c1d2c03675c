"""The new-restore form, from a selected backup: what `kbrowse restore create --from-backup`
takes (namespace mappings, filters, existing-resource policy, restore PVs), built into the
same Restore object the command submits."""

from __future__ import annotations

import argparse
from typing import Any

from textual.app import ComposeResult

from kbrowse.cluster.commands import create_args
from kbrowse.cluster.restore import parse_mappings, restore_object
from kbrowse.tui.screens.form import (
    FormScreen,
    choice,
    field,
    name_problem,
    namespace_problem,
    split_list,
)
from mover.errors import RepoError

Obj = dict[str, Any]


class RestoreFormScreen(FormScreen[Obj | None]):
    """Hands back the Restore to create (or None when cancelled)."""

    SUBMIT = "Create restore"

    def __init__(self, namespace: str, backup: str) -> None:
        super().__init__()
        self.namespace = namespace
        self.backup = backup
        self.HEADING = f"Restore from backup {backup}"

    def fields(self) -> ComposeResult:
        yield from field("Name", "name", placeholder=f"{self.backup}-<timestamp>")
        yield from field("Namespace mappings", "namespace-mappings", placeholder="src:dst,src2:dst2")
        yield from field("Included namespaces", "include-namespaces", placeholder="all (*), or ns1,ns2")
        yield from field("Excluded namespaces", "exclude-namespaces", placeholder="none")
        yield from field("Included resources", "include-resources", placeholder="all, or deployments,configmaps")
        yield from field("Excluded resources", "exclude-resources", placeholder="none")
        yield from choice("Existing objects", "existing-resource-policy",
                          [("leave them (none)", "none"), ("update them", "update")],
                          prompt="the server's default (none)")
        yield from choice("Restore PVs", "restore-volumes", [("yes", True), ("no", False)], prompt="auto")

    def check(self) -> tuple[list[str], Obj | None]:
        problems = []
        name = self.text("name")
        if name and (p := name_problem(name, "restore name")) is not None:
            problems.append(p)
        mappings: dict[str, str] = {}
        try:
            mappings = parse_mappings(self.text("namespace-mappings"))
        except argparse.ArgumentTypeError as exc:
            problems.append(f"namespace mappings: {exc}")
        included, excluded = split_list(self.text("include-namespaces")), split_list(self.text("exclude-namespaces"))
        problems += [p for ns in [*included, *excluded, *mappings, *mappings.values()]
                     if (p := namespace_problem(ns)) is not None]
        problems += [f"namespace {ns} is both included and excluded" for ns in set(included) & set(excluded)]
        if problems:
            return problems, None
        args = create_args(
            "restore", self.namespace, name=name or None, from_backup=self.backup,
            namespace_mappings=mappings or None, include_namespaces=included, exclude_namespaces=excluded,
            include_resources=split_list(self.text("include-resources")),
            exclude_resources=split_list(self.text("exclude-resources")),
            existing_resource_policy=self.choice("existing-resource-policy"),
            restore_volumes=self.choice("restore-volumes"))
        try:
            return [], restore_object(args)
        except RepoError as exc:
            return [str(exc)], None
