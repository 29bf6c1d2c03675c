"""`kbrowse backup create|get|describe|logs|delete`, as `velero backup ...`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from kbrowse.cluster.kinds import (
    BACKUP,
    SCHEDULE,
    Group,
    Obj,
    add_get,
    add_logs,
    api_errors,
    boolean,
    confirm,
    duration,
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
from mover.ui.cliargs import key_values


def add_backup_flags(p: argparse.ArgumentParser) -> None:
    """The flags a backup and a schedule's template share (velero's BackupOptions)."""
    p.add_argument("--include-namespaces", action="append", metavar="NS,...",
                   help="namespaces to include (default: all)")
    p.add_argument("--exclude-namespaces", action="append", metavar="NS,...", help="namespaces to exclude")
    p.add_argument("--include-resources", action="append", metavar="RES,...",
                   help="resources to include, e.g. deployments,configmaps (default: all)")
    p.add_argument("--exclude-resources", action="append", metavar="RES,...", help="resources to exclude")
    p.add_argument("--include-cluster-resources", type=boolean, nargs="?", const=True, metavar="BOOL",
                   help="include cluster-scoped resources (default: only with all namespaces, plus related ones)")
    p.add_argument("--include-cluster-scoped-resources", action="append", metavar="RES,...")
    p.add_argument("--exclude-cluster-scoped-resources", action="append", metavar="RES,...")
    p.add_argument("--include-namespace-scoped-resources", action="append", metavar="RES,...")
    p.add_argument("--exclude-namespace-scoped-resources", action="append", metavar="RES,...")
    p.add_argument("--selector", "-l", dest="label_selector", metavar="SELECTOR",
                   help="only back up objects matching this label selector")
    p.add_argument("--or-selector", metavar="SEL or SEL",
                   help='back up objects matching any of these selectors, e.g. "app=a or app=b"')
    p.add_argument("--ttl", type=duration, help="how long to keep the backup (default: the server's, 720h)")
    p.add_argument("--storage-location", help="backup storage location (default: the default one)")
    p.add_argument("--volume-snapshot-locations", action="append", metavar="VSL,...")
    p.add_argument("--snapshot-volumes", type=boolean, nargs="?", const=True, metavar="BOOL",
                   help="take snapshots of persistent volumes")
    p.add_argument("--snapshot-move-data", type=boolean, nargs="?", const=True, metavar="BOOL",
                   help="move snapshot data into the storage location")
    p.add_argument("--data-mover", default="", help='data mover ("" or velero: the built-in one)')
    p.add_argument("--default-volumes-to-fs-backup", type=boolean, nargs="?", const=True, metavar="BOOL",
                   help="back up every pod volume from the file system by default")
    p.add_argument("--parallel-files-upload", type=int, metavar="N", help="files uploaded in parallel")
    p.add_argument("--csi-snapshot-timeout", type=duration, metavar="DURATION")
    p.add_argument("--item-operation-timeout", type=duration, metavar="DURATION")
    p.add_argument("--labels", type=key_values, default={}, metavar="K=V,...", help="labels for the object")


def backup_spec(args: argparse.Namespace) -> Obj:
    from mover.velero.filters import parse_selector

    spec: Obj = {"includedNamespaces": split(args.include_namespaces) or ["*"]}
    for field, values in (("excludedNamespaces", args.exclude_namespaces),
                          ("includedResources", args.include_resources),
                          ("excludedResources", args.exclude_resources),
                          ("includedClusterScopedResources", args.include_cluster_scoped_resources),
                          ("excludedClusterScopedResources", args.exclude_cluster_scoped_resources),
                          ("includedNamespaceScopedResources", args.include_namespace_scoped_resources),
                          ("excludedNamespaceScopedResources", args.exclude_namespace_scoped_resources),
                          ("volumeSnapshotLocations", args.volume_snapshot_locations)):
        if split(values):
            spec[field] = split(values)
    try:
        if args.label_selector:
            spec["labelSelector"] = parse_selector(args.label_selector)
        if args.or_selector:
            spec["orLabelSelectors"] = [parse_selector(s) for s in args.or_selector.split(" or ")]
    except ValueError as exc:
        raise RepoError(str(exc)) from None
    for field, value in (("includeClusterResources", args.include_cluster_resources), ("ttl", args.ttl),
                         ("storageLocation", args.storage_location), ("snapshotVolumes", args.snapshot_volumes),
                         ("snapshotMoveData", args.snapshot_move_data), ("datamover", args.data_mover or None),
                         ("defaultVolumesToFsBackup", args.default_volumes_to_fs_backup),
                         ("csiSnapshotTimeout", args.csi_snapshot_timeout),
                         ("itemOperationTimeout", args.item_operation_timeout)):
        if value is not None:
            spec[field] = value
    if args.parallel_files_upload:
        spec["uploaderConfig"] = {"parallelFilesUpload": args.parallel_files_upload}
    return spec


def backup_object(args: argparse.Namespace, api: Any = None) -> Obj:
    """The Backup `backup create` submits (also the app's new-backup form); ``api`` reads the
    schedule of --from-schedule (made from ``args`` when not given)."""
    from mover.velero import labels as velero_labels
    from mover.velero.requests import scheduled_backup_name

    labels = dict(args.labels)
    if args.from_schedule:
        api = api or kube(args)
        schedule = api.get(SCHEDULE.resource, namespace(args), args.from_schedule)
        spec = dict((schedule.get("spec") or {}).get("template") or {})
        labels |= (spec.pop("metadata", None) or {}).get("labels") or {}
        labels[velero_labels.SCHEDULE_NAME] = args.from_schedule
        name = args.name or scheduled_backup_name(args.from_schedule, now())
    elif not args.name:
        raise RepoError("a backup needs a NAME (or --from-schedule)")
    else:
        spec, name = backup_spec(args), args.name
    return {"apiVersion": "velero.io/v1", "kind": "Backup",
            "metadata": {"name": name, "namespace": namespace(args), **({"labels": labels} if labels else {})},
            "spec": spec}


@api_errors
def backup_create(args: argparse.Namespace) -> int:
    api = kube(args) if not args.output or args.from_schedule else None
    return submit(BACKUP, args, backup_object(args, api), api)


def backup_details(api: Any, ns: str, obj: Obj, note: Callable[[str], None] | None = None,
                   cancelled: Callable[[], bool] | None = None) -> Any:
    """What `backup describe` shows beyond the object: the files the server uploaded and the
    backup's PodVolumeBackups, as `velero backup describe --details` gathers them (also the
    app's describe pane, which takes the notes and stops waiting once ``cancelled()``)."""
    from kbrowse.bucket.printers import BackupDetails
    from mover.kube.framework.client import KubeError
    from mover.kube.resources import POD_VOLUME_BACKUPS
    from mover.velero import volumes
    from mover.velero.objects import (
        Backup,
        BackupResults,
        PodVolumeBackup,
        VolumeInfo,
        from_json,
        list_from_json,
    )

    backup = from_json(Backup, obj, "Backup")
    name, status = backup.name, backup.status
    finished = status.phase in ("Completed", "PartiallyFailed", "Failed")
    def fetch(kind: str) -> Any:
        return fetch_file(api, ns, kind, name, note, cancelled)

    results = fetch("BackupResults") if finished and (status.errors or status.warnings) else None
    resources = fetch("BackupResourceList") if finished else None
    operations = (fetch("BackupItemOperations") or []) if status.backup_item_operations_attempted else []
    infos = fetch("BackupVolumeInfos") if finished else None
    try:
        pvbs = api.list(POD_VOLUME_BACKUPS, ns, label_selector=f"velero.io/backup-name={name}")["items"]
    except KubeError:
        pvbs = []  # no PodVolumeBackup CRD: no file-system backups either
    pod_volume_backups = list_from_json(PodVolumeBackup, pvbs, "PodVolumeBackups")
    volume_infos = None if infos is None else list_from_json(VolumeInfo, infos, "volume info")
    return BackupDetails(
        backup=backup, results=None if results is None else from_json(BackupResults, results, "results"),
        resource_list=resources, item_operations=operations, pod_volume_backups=pod_volume_backups,
        volume_infos=volume_infos,
        volumes=volumes.from_volume_info(volume_infos) if volume_infos is not None
        else volumes.from_pod_volume_backups(pod_volume_backups),
        logs_hint=f"kbrowse backup logs {name}")


@api_errors
def backup_describe(args: argparse.Namespace) -> int:
    from kbrowse.bucket.printers import describe_backup, sort_backups
    from mover.velero.objects import Backup, from_json

    api = kube(args)
    objects = select(api, BACKUP.resource, args)
    if fmt := output(args):
        print_objects(objects, fmt, bool(args.names), "Backup")
        return 0
    by_name = {o["metadata"]["name"]: o for o in objects}
    for i, backup in enumerate(sort_backups([from_json(Backup, o, "Backup") for o in objects])):
        if i:
            print()
        sys.stdout.write(describe_backup(backup_details(api, namespace(args), by_name[backup.name])))
    return 0


@api_errors
def backup_delete(args: argparse.Namespace) -> int:
    from mover.kube.resources import DELETE_BACKUP_REQUESTS
    from mover.velero.requests import delete_backup_request

    api = kube(args)
    backups = select(api, BACKUP.resource, args) if args.names or args.all else []
    if not backups:
        raise RepoError("no backups to delete: name them, or use --all")
    names = ", ".join(b["metadata"]["name"] for b in backups)
    if not confirm(args, f"delete backup(s) {names}"):
        return 1
    for backup in backups:
        api.create(DELETE_BACKUP_REQUESTS, namespace(args), delete_backup_request(backup))
        print(f'Request to delete backup "{backup["metadata"]["name"]}" submitted successfully.\nThe backup will be '
              "fully deleted after all associated data (disk snapshots, backup files, restores) are removed.")
    return 0


def register(backups: Group) -> None:
    p = leaf(backups, "create", "create a backup", backup_create)
    p.add_argument("name", nargs="?", metavar="NAME")
    add_backup_flags(p)
    p.add_argument("--from-schedule", metavar="SCHEDULE", help="create the backup from a schedule's template")
    p.add_argument("--wait", action="store_true", help="wait for the backup to finish, showing progress")
    add_get(backups, BACKUP, "list backups")
    p = names_and_selector(leaf(backups, "describe", "describe backups", backup_describe))
    p.add_argument("--details", action="store_true", help="accepted for velero's sake: details are always shown")
    add_logs(backups, BACKUP)
    p = names_and_selector(leaf(backups, "delete", "delete backups (files, restores and objects)", backup_delete,
                                with_output=False))
    p.add_argument("--all", action="store_true", help="delete every backup")
    p.add_argument("--confirm", action="store_true", help="do not ask for confirmation")
