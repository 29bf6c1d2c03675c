"""`kbrowse restore create|get|describe|logs`, as `velero restore ...`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from kbrowse.cluster.kinds import (
    RESTORE,
    Group,
    Obj,
    add_get,
    add_logs,
    api_errors,
    boolean,
    fetch_file,
    kube,
    leaf,
    names_and_selector,
    namespace,
    now,
    output,
    print_objects,
    select,
    split,
    submit,
)
from mover.errors import RepoError


def parse_mappings(text: str) -> dict[str, str]:
    out = {}
    for pair in filter(None, text.split(",")):
        source, sep, target = pair.partition(":")
        if not sep or not source or not target:
            raise argparse.ArgumentTypeError(f"expected src:dst pairs separated by commas, got {pair!r}")
        out[source.strip()] = target.strip()
    return out


def restore_object(args: argparse.Namespace) -> Obj:
    """The Restore `restore create` submits (also the app's new-restore form)."""
    from mover.velero.filters import parse_selector
    from mover.velero.requests import scheduled_backup_name

    if bool(args.from_backup) == bool(args.from_schedule):
        raise RepoError("either --from-backup or --from-schedule must be given, but not both")
    name = args.name or scheduled_backup_name(args.from_backup or args.from_schedule, now())
    spec: Obj = {"backupName": args.from_backup or "", "scheduleName": args.from_schedule or "",
                 "includedNamespaces": split(args.include_namespaces) or ["*"]}
    for field, values in (("excludedNamespaces", args.exclude_namespaces),
                          ("includedResources", args.include_resources),
                          ("excludedResources", args.exclude_resources)):
        if split(values):
            spec[field] = split(values)
    if args.namespace_mappings:
        spec["namespaceMapping"] = args.namespace_mappings
    try:
        if args.label_selector:
            spec["labelSelector"] = parse_selector(args.label_selector)
    except ValueError as exc:
        raise RepoError(str(exc)) from None
    for field, value in (("existingResourcePolicy", args.existing_resource_policy),
                         ("restorePVs", args.restore_volumes), ("preserveNodePorts", args.preserve_nodeports),
                         ("includeClusterResources", args.include_cluster_resources)):
        if value is not None:
            spec[field] = value
    return {"apiVersion": "velero.io/v1", "kind": "Restore",
            "metadata": {"name": name, "namespace": namespace(args)}, "spec": spec}


@api_errors
def restore_create(args: argparse.Namespace) -> int:
    return submit(RESTORE, args, restore_object(args))


def pod_volume_restores(api: Any, ns: str, name: str) -> list[Obj]:
    from mover.kube.framework.client import KubeError
    from mover.kube.resources import POD_VOLUME_RESTORES
    from mover.velero import labels

    try:
        return api.list(POD_VOLUME_RESTORES, ns, label_selector=f"{labels.RESTORE_NAME}={name}")["items"]
    except KubeError:
        return []  # no PodVolumeRestore CRD: no file-system restores either


def describe_restore(api: Any, ns: str, restore: Obj, note: Callable[[str], None] | None = None,
                     cancelled: Callable[[], bool] | None = None) -> str:
    """`velero restore describe --details` of one restore: the object, its results and
    resource list through DownloadRequests, its PodVolumeRestores (also the app's describe
    pane, which takes the notes and stops waiting once ``cancelled()``)."""
    name, status = restore["metadata"]["name"], restore.get("status") or {}
    finished = status.get("phase") in ("Completed", "PartiallyFailed", "Failed")
    results = fetch_file(api, ns, "RestoreResults", name, note, cancelled) \
        if status.get("errors") or status.get("warnings") else None
    resources = fetch_file(api, ns, "RestoreResourceList", name, note, cancelled) if finished else None
    from kbrowse.cluster import printers  # Velero's object types: only for describe

    return printers.describe_restore(restore, results, resources, pod_volume_restores(api, ns, name))


@api_errors
def restore_describe(args: argparse.Namespace) -> int:
    api = kube(args)
    restores = select(api, RESTORE.resource, args)
    if fmt := output(args):
        print_objects(restores, fmt, bool(args.names), "Restore")
        return 0
    for i, restore in enumerate(sorted(restores, key=lambda r: r["metadata"]["name"])):
        if i:
            print()
        sys.stdout.write(describe_restore(api, namespace(args), restore))
    return 0


def register(restores: Group) -> None:
    p = leaf(restores, "create", "restore from a backup", restore_create)
    p.add_argument("name", nargs="?", metavar="NAME", help="default: <backup>-<timestamp>")
    p.add_argument("--from-backup", metavar="BACKUP")
    p.add_argument("--from-schedule", metavar="SCHEDULE", help="restore the schedule's latest successful backup")
    p.add_argument("--include-namespaces", action="append", metavar="NS,...")
    p.add_argument("--exclude-namespaces", action="append", metavar="NS,...")
    p.add_argument("--include-resources", action="append", metavar="RES,...")
    p.add_argument("--exclude-resources", action="append", metavar="RES,...")
    p.add_argument("--namespace-mappings", type=parse_mappings, metavar="SRC:DST,...",
                   help="restore objects of namespace SRC into DST")
    p.add_argument("--existing-resource-policy", choices=("none", "update"),
                   help="what to do with objects that already exist (default: none, leave them)")
    p.add_argument("--selector", "-l", dest="label_selector", metavar="SELECTOR")
    p.add_argument("--restore-volumes", type=boolean, nargs="?", const=True, metavar="BOOL")
    p.add_argument("--preserve-nodeports", type=boolean, nargs="?", const=True, metavar="BOOL")
    p.add_argument("--include-cluster-resources", type=boolean, nargs="?", const=True, metavar="BOOL")
    p.add_argument("--wait", action="store_true", help="wait for the restore to finish, showing progress")
    add_get(restores, RESTORE, "list restores")
    p = names_and_selector(leaf(restores, "describe", "describe restores", restore_describe))
    p.add_argument("--details", action="store_true", help="accepted for velero's sake: details are always shown")
    add_logs(restores, RESTORE)
