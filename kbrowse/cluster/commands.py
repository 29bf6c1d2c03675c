"""The velero-shaped commands: ask the cluster for work by creating velero.io objects, exactly
as the velero CLI does, and show what the server reports. They work against `mover server`
and against real Velero alike.

    kbrowse backup create|get|describe|logs|delete
    kbrowse restore create|get|describe|logs
    kbrowse schedule create|get|pause|unpause|delete
    kbrowse backup-location get

Every command takes -n/--namespace (the server's namespace, default velero), --kubeconfig
and --context; get, describe and create take -o json|yaml (create then prints
the object instead of submitting it, as velero does).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import yaml

from kbrowse.cluster import printers as view
from mover.ui.cliargs import key_values
from mover.errors import RepoError

Obj = dict[str, Any]
Handler = Callable[[argparse.Namespace], int]


# -- plumbing ----------------------------------------------------------------------------------

# mover.kube imports the Kubernetes client, which takes most of a second: commands import it
# when they run, so `kbrowse --help` and the repository commands do not wait for it.

def _kube(args: argparse.Namespace) -> Any:
    from mover.kube.framework.client import Kube, load_api_client

    return Kube(load_api_client(getattr(args, "kubeconfig", None), getattr(args, "kubecontext", None)))


def _run(body: Handler) -> Handler:
    """Turn API failures into one-line errors (the CLI prints RepoErrors without a traceback)."""
    def wrapped(args: argparse.Namespace) -> int:
        from mover.kube.framework.client import KubeError

        try:
            return body(args)
        except KubeError as exc:
            raise RepoError(exc.message if exc.status else f"cannot reach the cluster: {exc.message}") from None
    return wrapped


def _now() -> datetime:
    return datetime.now(UTC)


def _split(values: list[str] | None) -> list[str]:
    return [v.strip() for value in values or [] for v in value.split(",") if v.strip()]


def _bool(text: str) -> bool:
    if text.lower() in ("true", "1", "yes"):
        return True
    if text.lower() in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _duration(text: str) -> str:
    from mover.golang.duration import format_duration, parse_duration

    try:
        return format_duration(parse_duration(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid duration {text!r} (e.g. 24h, 30m, 720h0m0s)") from None


def _print_objects(objs: list[Obj], fmt: str, single: bool, kind: str) -> None:
    doc: Any = objs[0] if single and len(objs) == 1 else {"apiVersion": "velero.io/v1", "kind": f"{kind}List",
                                                          "items": objs}
    if fmt == "json":
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
    else:
        sys.stdout.write(yaml.safe_dump(doc, sort_keys=False))


def _output(args: argparse.Namespace) -> str | None:
    return args.output or ("json" if getattr(args, "json", False) else None)


def _common(p: argparse.ArgumentParser, output: bool = True) -> None:
    """-n, --kubeconfig and --context on every command. Their defaults are left to the main
    parser (kbrowse declares the same options there), so they work before or after the command."""
    hidden = argparse.SUPPRESS
    p.add_argument("-n", "--namespace", default=hidden, metavar="NS",
                   help="the namespace the server runs in (default: velero)")
    p.add_argument("--kubeconfig", default=hidden, metavar="FILE",
                   help="kubeconfig file (default: $KUBECONFIG, ~/.kube/config, or in-cluster)")
    p.add_argument("--context", "--kubecontext", dest="kubecontext", default=hidden, metavar="CONTEXT",
                   help="kubeconfig context (default: the current one)")
    if output:
        p.add_argument("-o", "--output", choices=("json", "yaml"), help="print objects in this format")


def _ns(args: argparse.Namespace) -> str:
    return getattr(args, "namespace", None) or "velero"


def _select(kube: Any, res: Any, args: argparse.Namespace) -> list[Obj]:
    """The named objects, or every one (matching -l when given)."""
    names = getattr(args, "names", None) or []
    if names:
        return [kube.get(res, _ns(args), n) for n in names]
    return kube.list(res, _ns(args), label_selector=getattr(args, "selector", None))["items"]


def _confirm(args: argparse.Namespace, what: str) -> bool:
    if args.confirm:
        return True
    if not sys.stdin.isatty():
        raise RepoError(f"refusing to {what} without --confirm (stdin is not a terminal)")
    return input(f"Are you sure you want to {what} (Y/N)? ").strip().lower() in ("y", "yes")


def _finished(what: str, obj: Obj, prog: str) -> int:
    phase = (obj.get("status") or {}).get("phase") or "New"
    name = obj["metadata"]["name"]
    noun = what.lower()
    if phase not in ("Completed", "PartiallyFailed", "Failed", "FailedValidation"):
        print(f"{what} {name} has not finished (phase {phase}).")
        return 1
    print(f"{what} completed with status: {phase}. You may check for more information using the commands "
          f"`{prog} {noun} describe {name}` and `{prog} {noun} logs {name}`.")
    return 0 if phase == "Completed" else 1


# -- backup ------------------------------------------------------------------------------------

def _backup_flags(p: argparse.ArgumentParser) -> None:
    """The flags a backup and a schedule's template share (velero's BackupOptions)."""
    p.add_argument("--include-namespaces", action="append", metavar="NS,...",
                   help="namespaces to include (default: all)")
    p.add_argument("--exclude-namespaces", action="append", metavar="NS,...", help="namespaces to exclude")
    p.add_argument("--include-resources", action="append", metavar="RES,...",
                   help="resources to include, e.g. deployments,configmaps (default: all)")
    p.add_argument("--exclude-resources", action="append", metavar="RES,...", help="resources to exclude")
    p.add_argument("--include-cluster-resources", type=_bool, nargs="?", const=True, metavar="BOOL",
                   help="include cluster-scoped resources (default: only with all namespaces, plus related ones)")
    p.add_argument("--include-cluster-scoped-resources", action="append", metavar="RES,...")
    p.add_argument("--exclude-cluster-scoped-resources", action="append", metavar="RES,...")
    p.add_argument("--include-namespace-scoped-resources", action="append", metavar="RES,...")
    p.add_argument("--exclude-namespace-scoped-resources", action="append", metavar="RES,...")
    p.add_argument("--selector", "-l", dest="label_selector", metavar="SELECTOR",
                   help="only back up objects matching this label selector")
    p.add_argument("--or-selector", metavar="SEL or SEL",
                   help='back up objects matching any of these selectors, e.g. "app=a or app=b"')
    p.add_argument("--ttl", type=_duration, help="how long to keep the backup (default: the server's, 720h)")
    p.add_argument("--storage-location", help="backup storage location (default: the default one)")
    p.add_argument("--volume-snapshot-locations", action="append", metavar="VSL,...")
    p.add_argument("--snapshot-volumes", type=_bool, nargs="?", const=True, metavar="BOOL",
                   help="take snapshots of persistent volumes")
    p.add_argument("--snapshot-move-data", type=_bool, nargs="?", const=True, metavar="BOOL",
                   help="move snapshot data into the storage location")
    p.add_argument("--data-mover", default="", help='data mover ("" or velero: the built-in one)')
    p.add_argument("--default-volumes-to-fs-backup", type=_bool, nargs="?", const=True, metavar="BOOL",
                   help="back up every pod volume from the file system by default")
    p.add_argument("--parallel-files-upload", type=int, metavar="N", help="files uploaded in parallel")
    p.add_argument("--csi-snapshot-timeout", type=_duration, metavar="DURATION")
    p.add_argument("--item-operation-timeout", type=_duration, metavar="DURATION")
    p.add_argument("--labels", type=key_values, default={}, metavar="K=V,...", help="labels for the object")


def backup_spec(args: argparse.Namespace) -> Obj:
    from mover.velero.filters import parse_selector

    spec: Obj = {"includedNamespaces": _split(args.include_namespaces) or ["*"]}
    for field, values in (("excludedNamespaces", args.exclude_namespaces),
                          ("includedResources", args.include_resources),
                          ("excludedResources", args.exclude_resources),
                          ("includedClusterScopedResources", args.include_cluster_scoped_resources),
                          ("excludedClusterScopedResources", args.exclude_cluster_scoped_resources),
                          ("includedNamespaceScopedResources", args.include_namespace_scoped_resources),
                          ("excludedNamespaceScopedResources", args.exclude_namespace_scoped_resources),
                          ("volumeSnapshotLocations", args.volume_snapshot_locations)):
        if _split(values):
            spec[field] = _split(values)
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


@_run
def backup_create(args: argparse.Namespace) -> int:
    from mover.kube.resources import BACKUPS, SCHEDULES
    from mover.velero import labels as velero_labels
    from mover.velero.requests import scheduled_backup_name

    labels = dict(args.labels)
    kube = _kube(args) if not args.output else None
    if args.from_schedule:
        kube = kube or _kube(args)
        schedule = kube.get(SCHEDULES, _ns(args), args.from_schedule)
        spec = dict((schedule.get("spec") or {}).get("template") or {})
        labels |= (spec.pop("metadata", None) or {}).get("labels") or {}
        labels[velero_labels.SCHEDULE_NAME] = args.from_schedule
        name = args.name or scheduled_backup_name(args.from_schedule, _now())
    elif not args.name:
        raise RepoError("a backup needs a NAME (or --from-schedule)")
    else:
        spec, name = backup_spec(args), args.name
    backup = {"apiVersion": "velero.io/v1", "kind": "Backup",
              "metadata": {"name": name, "namespace": _ns(args), **({"labels": labels} if labels else {})},
              "spec": spec}
    if args.output:
        _print_objects([backup], args.output, True, "Backup")
        return 0
    kube.create(BACKUPS, _ns(args), backup)
    print(f'Backup request "{name}" submitted successfully.')
    if not args.wait:
        print(f"Run `kbrowse backup describe {name}` or `kbrowse backup logs {name}` for more details.")
        return 0
    from kbrowse.cluster.wait import wait

    print("Waiting for backup to complete. You may safely press ctrl-c to stop waiting - your backup will "
          "continue in the background.")
    return _finished("Backup", wait(kube, BACKUPS, _ns(args), name, "backup"), "kbrowse")


@_run
def backup_get(args: argparse.Namespace) -> int:
    from kbrowse.bucket.printers import backup_table
    from mover.kube.resources import BACKUPS
    from mover.velero.objects import Backup, from_json

    backups = _select(_kube(args), BACKUPS, args)
    if _output(args):
        _print_objects(backups, _output(args), bool(args.names), "Backup")
    else:
        sys.stdout.write(backup_table([from_json(Backup, b, "Backup") for b in backups], _now()))
    return 0


def _fetch(kube: Any, args: argparse.Namespace, kind: str, name: str) -> Any:
    """A JSON file of a backup or restore, through a DownloadRequest; None (with a note on
    stderr) when the server cannot give it."""
    from kbrowse.cluster.wait import download

    try:
        return json.loads(download(kube, _ns(args), kind, name))
    except (RepoError, ValueError) as exc:
        print(f"kbrowse: note: {kind} of {name} is not available: {exc}", file=sys.stderr)
        return None


def _backup_details(kube: Any, args: argparse.Namespace, obj: Obj) -> Any:
    """What `backup describe` shows beyond the object: the files the server uploaded and the
    backup's PodVolumeBackups, as `velero backup describe --details` gathers them."""
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
    results = _fetch(kube, args, "BackupResults", name) if finished and (status.errors or status.warnings) else None
    resources = _fetch(kube, args, "BackupResourceList", name) if finished else None
    operations = (_fetch(kube, args, "BackupItemOperations", name) or []) \
        if status.backup_item_operations_attempted else []
    infos = _fetch(kube, args, "BackupVolumeInfos", name) if finished else None
    try:
        pvbs = kube.list(POD_VOLUME_BACKUPS, _ns(args), label_selector=f"velero.io/backup-name={name}")["items"]
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


@_run
def backup_describe(args: argparse.Namespace) -> int:
    from kbrowse.bucket.printers import describe_backup, sort_backups
    from mover.kube.resources import BACKUPS
    from mover.velero.objects import Backup, from_json

    kube = _kube(args)
    objects = _select(kube, BACKUPS, args)
    if _output(args):
        _print_objects(objects, _output(args), bool(args.names), "Backup")
        return 0
    by_name = {o["metadata"]["name"]: o for o in objects}
    for i, backup in enumerate(sort_backups([from_json(Backup, o, "Backup") for o in objects])):
        if i:
            print()
        sys.stdout.write(describe_backup(_backup_details(kube, args, by_name[backup.name])))
    return 0


@_run
def backup_logs(args: argparse.Namespace) -> int:
    from kbrowse.cluster.wait import download
    from mover.kube.resources import BACKUPS

    kube = _kube(args)
    phase = (kube.get(BACKUPS, _ns(args), args.name).get("status") or {}).get("phase") or "New"
    if phase in ("New", "InProgress"):
        raise RepoError(f"logs for backup {args.name} are not available until it's finished processing; "
                        "please wait until the backup has a phase of Completed or Failed and try again")
    sys.stdout.write(download(kube, _ns(args), "BackupLog", args.name, args.timeout).decode("utf-8", "replace"))
    return 0


@_run
def backup_delete(args: argparse.Namespace) -> int:
    from mover.velero.requests import delete_backup_request
    from mover.kube.resources import BACKUPS, DELETE_BACKUP_REQUESTS

    kube = _kube(args)
    backups = _select(kube, BACKUPS, args) if args.names or args.all else []
    if not backups:
        raise RepoError("no backups to delete: name them, or use --all")
    names = ", ".join(b["metadata"]["name"] for b in backups)
    if not _confirm(args, f"delete backup(s) {names}"):
        return 1
    for backup in backups:
        kube.create(DELETE_BACKUP_REQUESTS, _ns(args), delete_backup_request(backup))
        print(f'Request to delete backup "{backup["metadata"]["name"]}" submitted successfully.\nThe backup will be '
              "fully deleted after all associated data (disk snapshots, backup files, restores) are removed.")
    return 0


# -- restore -----------------------------------------------------------------------------------

def _mappings(text: str) -> dict[str, str]:
    out = {}
    for pair in filter(None, text.split(",")):
        source, sep, target = pair.partition(":")
        if not sep or not source or not target:
            raise argparse.ArgumentTypeError(f"expected src:dst pairs separated by commas, got {pair!r}")
        out[source.strip()] = target.strip()
    return out


@_run
def restore_create(args: argparse.Namespace) -> int:
    from mover.velero.filters import parse_selector
    from mover.kube.resources import RESTORES
    from mover.velero.requests import scheduled_backup_name

    if bool(args.from_backup) == bool(args.from_schedule):
        raise RepoError("either --from-backup or --from-schedule must be given, but not both")
    name = args.name or scheduled_backup_name(args.from_backup or args.from_schedule, _now())
    spec: Obj = {"backupName": args.from_backup or "", "scheduleName": args.from_schedule or "",
                 "includedNamespaces": _split(args.include_namespaces) or ["*"]}
    for field, values in (("excludedNamespaces", args.exclude_namespaces),
                          ("includedResources", args.include_resources),
                          ("excludedResources", args.exclude_resources)):
        if _split(values):
            spec[field] = _split(values)
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
    restore = {"apiVersion": "velero.io/v1", "kind": "Restore",
               "metadata": {"name": name, "namespace": _ns(args)}, "spec": spec}
    if args.output:
        _print_objects([restore], args.output, True, "Restore")
        return 0
    kube = _kube(args)
    kube.create(RESTORES, _ns(args), restore)
    print(f'Restore request "{name}" submitted successfully.')
    if not args.wait:
        print(f"Run `kbrowse restore describe {name}` or `kbrowse restore logs {name}` for more details.")
        return 0
    from kbrowse.cluster.wait import wait

    print("Waiting for restore to complete. You may safely press ctrl-c to stop waiting - your restore will "
          "continue in the background.")
    return _finished("Restore", wait(kube, RESTORES, _ns(args), name, "restore"), "kbrowse")


@_run
def restore_get(args: argparse.Namespace) -> int:
    from mover.kube.resources import RESTORES

    restores = _select(_kube(args), RESTORES, args)
    if _output(args):
        _print_objects(restores, _output(args), bool(args.names), "Restore")
    else:
        sys.stdout.write(view.restore_table(restores))
    return 0


@_run
def restore_describe(args: argparse.Namespace) -> int:
    from mover.kube.resources import RESTORES

    kube = _kube(args)
    restores = _select(kube, RESTORES, args)
    if _output(args):
        _print_objects(restores, _output(args), bool(args.names), "Restore")
        return 0
    for i, restore in enumerate(sorted(restores, key=lambda r: r["metadata"]["name"])):
        if i:
            print()
        name, status = restore["metadata"]["name"], restore.get("status") or {}
        finished = status.get("phase") in ("Completed", "PartiallyFailed", "Failed")
        results = _fetch(kube, args, "RestoreResults", name) if status.get("errors") or status.get("warnings") \
            else None
        resources = _fetch(kube, args, "RestoreResourceList", name) if finished else None
        sys.stdout.write(view.describe_restore(restore, results, resources))
    return 0


@_run
def restore_logs(args: argparse.Namespace) -> int:
    from kbrowse.cluster.wait import download
    from mover.kube.resources import RESTORES

    kube = _kube(args)
    phase = (kube.get(RESTORES, _ns(args), args.name).get("status") or {}).get("phase") or "New"
    if phase in ("New", "InProgress"):
        raise RepoError(f"logs for restore {args.name} are not available until it's finished processing")
    sys.stdout.write(download(kube, _ns(args), "RestoreLog", args.name, args.timeout).decode("utf-8",
                                                                                                    "replace"))
    return 0


# -- schedule ----------------------------------------------------------------------------------

@_run
def schedule_create(args: argparse.Namespace) -> int:
    from mover.velero.cron import CronError, parse
    from mover.kube.resources import SCHEDULES

    try:
        parse(args.schedule)
    except CronError as exc:
        raise RepoError(f"invalid --schedule {args.schedule!r}: {exc}") from None
    template = backup_spec(args)
    spec: Obj = {"schedule": args.schedule, "template": template}
    if args.paused:
        spec["paused"] = True
    if args.skip_immediately is not None:
        spec["skipImmediately"] = args.skip_immediately
    if args.use_owner_references_in_backup:
        spec["useOwnerReferencesInBackup"] = True
    schedule = {"apiVersion": "velero.io/v1", "kind": "Schedule",
                "metadata": {"name": args.name, "namespace": _ns(args),
                             **({"labels": args.labels} if args.labels else {})}, "spec": spec}
    if args.output:
        _print_objects([schedule], args.output, True, "Schedule")
        return 0
    _kube(args).create(SCHEDULES, _ns(args), schedule)
    print(f'Schedule "{args.name}" created successfully.')
    return 0


@_run
def schedule_get(args: argparse.Namespace) -> int:
    from mover.kube.resources import SCHEDULES

    schedules = _select(_kube(args), SCHEDULES, args)
    if _output(args):
        _print_objects(schedules, _output(args), bool(args.names), "Schedule")
    else:
        sys.stdout.write(view.schedule_table(schedules, _now()))
    return 0


def _set_paused(paused: bool) -> Handler:
    @_run
    def handler(args: argparse.Namespace) -> int:
        from mover.kube.resources import SCHEDULES

        kube = _kube(args)
        schedules = _select(kube, SCHEDULES, args) if args.names or args.all else []
        if not schedules:
            raise RepoError("no schedules given: name them, or use --all")
        for schedule in schedules:
            name = schedule["metadata"]["name"]
            if bool((schedule.get("spec") or {}).get("paused")) == paused:
                print(f"schedule {name} is already {'paused' if paused else 'unpaused'}, skip")
                continue
            patch: Obj = {"spec": {"paused": paused}}
            if not paused and args.skip_immediately is not None:
                patch["spec"]["skipImmediately"] = args.skip_immediately
            kube.patch(SCHEDULES, _ns(args), name, patch)
            print(f"schedule {name} {'paused' if paused else 'unpaused'} successfully")
        return 0
    return handler


@_run
def schedule_delete(args: argparse.Namespace) -> int:
    from mover.kube.resources import SCHEDULES

    kube = _kube(args)
    schedules = _select(kube, SCHEDULES, args) if args.names or args.all else []
    if not schedules:
        raise RepoError("no schedules to delete: name them, or use --all")
    if not _confirm(args, f"delete schedule(s) {', '.join(s['metadata']['name'] for s in schedules)}"):
        return 1
    for schedule in schedules:
        kube.delete(SCHEDULES, _ns(args), schedule["metadata"]["name"])
        print(f'Schedule deleted: {schedule["metadata"]["name"]}')
    return 0


# -- backup-location ----------------------------------------------------------------------------

@_run
def location_get(args: argparse.Namespace) -> int:
    from mover.kube.resources import BSLS

    locations = _select(_kube(args), BSLS, args)
    if args.default:
        locations = [loc for loc in locations if (loc.get("spec") or {}).get("default")]
    if _output(args):
        _print_objects(locations, _output(args), bool(args.names), "BackupStorageLocation")
    else:
        sys.stdout.write(view.location_table(locations))
    return 0


# -- parsers -----------------------------------------------------------------------------------

def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `backup`, `restore`, `schedule` and `backup-location` to a CLI; each leaf parser sets
    ``handler`` (a function of the parsed args returning the exit code)."""
    def group(name: str, help_: str) -> argparse._SubParsersAction:
        p = subparsers.add_parser(name, help=help_, description=help_)
        return p.add_subparsers(dest=f"{name.replace('-', '_')}_command", metavar="COMMAND", required=True)

    def leaf(sub: argparse._SubParsersAction, name: str, help_: str, handler: Handler,
             output: bool = True) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_, description=help_)
        _common(p, output)
        p.set_defaults(handler=handler)
        return p

    def getter(p: argparse.ArgumentParser) -> None:
        p.add_argument("names", nargs="*", metavar="NAME")
        p.add_argument("-l", "--selector", help="only objects with these labels")

    backups = group("backup", "work with backups (velero backup ...)")
    p = leaf(backups, "create", "create a backup", backup_create)
    p.add_argument("name", nargs="?", metavar="NAME")
    _backup_flags(p)
    p.add_argument("--from-schedule", metavar="SCHEDULE", help="create the backup from a schedule's template")
    p.add_argument("--wait", action="store_true", help="wait for the backup to finish, showing progress")
    getter(leaf(backups, "get", "list backups", backup_get))
    p = leaf(backups, "describe", "describe backups", backup_describe)
    getter(p)
    p.add_argument("--details", action="store_true", help="accepted for velero's sake: details are always shown")
    p = leaf(backups, "logs", "print a backup's log", backup_logs, output=False)
    p.add_argument("name", metavar="NAME")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the log (default 60)")
    p = leaf(backups, "delete", "delete backups (files, restores and objects)", backup_delete, output=False)
    getter(p)
    p.add_argument("--all", action="store_true", help="delete every backup")
    p.add_argument("--confirm", action="store_true", help="do not ask for confirmation")

    restores = group("restore", "work with restores (velero restore ...)")
    p = leaf(restores, "create", "restore from a backup", restore_create)
    p.add_argument("name", nargs="?", metavar="NAME", help="default: <backup>-<timestamp>")
    p.add_argument("--from-backup", metavar="BACKUP")
    p.add_argument("--from-schedule", metavar="SCHEDULE", help="restore the schedule's latest successful backup")
    p.add_argument("--include-namespaces", action="append", metavar="NS,...")
    p.add_argument("--exclude-namespaces", action="append", metavar="NS,...")
    p.add_argument("--include-resources", action="append", metavar="RES,...")
    p.add_argument("--exclude-resources", action="append", metavar="RES,...")
    p.add_argument("--namespace-mappings", type=_mappings, metavar="SRC:DST,...",
                   help="restore objects of namespace SRC into DST")
    p.add_argument("--existing-resource-policy", choices=("none", "update"),
                   help="what to do with objects that already exist (default: none, leave them)")
    p.add_argument("--selector", "-l", dest="label_selector", metavar="SELECTOR")
    p.add_argument("--restore-volumes", type=_bool, nargs="?", const=True, metavar="BOOL")
    p.add_argument("--preserve-nodeports", type=_bool, nargs="?", const=True, metavar="BOOL")
    p.add_argument("--include-cluster-resources", type=_bool, nargs="?", const=True, metavar="BOOL")
    p.add_argument("--wait", action="store_true", help="wait for the restore to finish, showing progress")
    getter(leaf(restores, "get", "list restores", restore_get))
    p = leaf(restores, "describe", "describe restores", restore_describe)
    getter(p)
    p.add_argument("--details", action="store_true", help="accepted for velero's sake: details are always shown")
    p = leaf(restores, "logs", "print a restore's log", restore_logs, output=False)
    p.add_argument("name", metavar="NAME")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the log (default 60)")

    schedules = group("schedule", "work with schedules (velero schedule ...)")
    p = leaf(schedules, "create", "create a schedule", schedule_create)
    p.add_argument("name", metavar="NAME")
    p.add_argument("--schedule", required=True, metavar="CRON",
                   help='a cron expression, e.g. "0 */6 * * *", or @every 6h')
    _backup_flags(p)
    p.add_argument("--paused", action="store_true", help="create the schedule paused")
    p.add_argument("--skip-immediately", type=_bool, nargs="?", const=True, metavar="BOOL",
                   help="do not make a backup right away")
    p.add_argument("--use-owner-references-in-backup", action="store_true",
                   help="the schedule owns its backups (deleting it deletes them)")
    getter(leaf(schedules, "get", "list schedules", schedule_get))
    for name, paused in (("pause", True), ("unpause", False)):
        p = leaf(schedules, name, f"{name} schedules", _set_paused(paused), output=False)
        getter(p)
        p.add_argument("--all", action="store_true", help=f"{name} every schedule")
        if not paused:
            p.add_argument("--skip-immediately", type=_bool, nargs="?", const=True, metavar="BOOL",
                           help="skip the backup that would run at once")
        else:
            p.set_defaults(skip_immediately=None)
    p = leaf(schedules, "delete", "delete schedules (their backups stay)", schedule_delete, output=False)
    getter(p)
    p.add_argument("--all", action="store_true", help="delete every schedule")
    p.add_argument("--confirm", action="store_true", help="do not ask for confirmation")

    locations = group("backup-location", "work with backup storage locations (velero backup-location ...)")
    p = leaf(locations, "get", "list backup storage locations", location_get)
    getter(p)
    p.add_argument("--default", action="store_true", help="only the default location")
