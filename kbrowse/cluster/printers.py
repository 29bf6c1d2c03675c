"""What the cluster-side commands print for restores, schedules and storage locations: the
tables of `velero restore|schedule|backup-location get` and `velero restore describe`, with
Velero's columns and formats. Backups use the bucket commands' table."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from kbrowse.bucket import printers as bucketfmt
from kbrowse.bucket.printers import NONE, go_time, label_selector, time_from_now
from mover.golang.tabwriter import tabwrite
from mover.velero.objects import Backup, from_json, parse_time

Obj = dict[str, Any]
ALL_NAMESPACES = "all namespaces found in the backup"


def _table(header: list[str], rows: list[list[Any]]) -> str:
    """kubectl's table printer: tabwriter with minwidth 6, padding 3."""
    lines = ["\t".join(header)] + ["\t".join(str(c) for c in row) for row in rows]
    return tabwrite("\n".join(lines) + "\n", minwidth=6, padding=3)


def _time(text: str | None) -> str:
    return go_time(parse_time(text)) if text else "<nil>"


def _spec(o: Obj) -> Obj:
    return o.get("spec") or {}


def _status(o: Obj) -> Obj:
    return o.get("status") or {}


RESTORE_HEADER = ["NAME", "BACKUP", "STATUS", "STARTED", "COMPLETED", "ERRORS", "WARNINGS", "CREATED", "SELECTOR"]
SCHEDULE_HEADER = ["NAME", "STATUS", "CREATED", "SCHEDULE", "BACKUP TTL", "LAST BACKUP", "SELECTOR", "PAUSED"]
LOCATION_HEADER = ["NAME", "PROVIDER", "BUCKET/PREFIX", "PHASE", "LAST VALIDATED", "ACCESS MODE", "DEFAULT"]


def _by_name(objs: list[Obj]) -> list[Obj]:
    return sorted(objs, key=lambda o: o["metadata"]["name"])


def restore_row(r: Obj) -> list[str]:
    """One restore's cells of `velero restore get` (also the app's Restores screen)."""
    spec, status = _spec(r), _status(r)
    return [r["metadata"]["name"], spec.get("backupName", ""), status.get("phase") or "New",
            _time(status.get("startTimestamp")), _time(status.get("completionTimestamp")),
            str(status.get("errors", 0)), str(status.get("warnings", 0)),
            _time(r["metadata"].get("creationTimestamp")), label_selector(spec.get("labelSelector"))]


def backup_table(backups: list[Obj], now: datetime) -> str:
    """`velero backup get`, from the Backup objects as the API returns them."""
    return bucketfmt.backup_table([from_json(Backup, b, "Backup") for b in backups], now)


def restore_table(restores: list[Obj]) -> str:
    return _table(RESTORE_HEADER, [restore_row(r) for r in _by_name(restores)])


def schedule_row(s: Obj, now: datetime) -> list[str]:
    spec, status = _spec(s), _status(s)
    template = spec.get("template") or {}
    return [s["metadata"]["name"], status.get("phase") or "New", _time(s["metadata"].get("creationTimestamp")),
            spec.get("schedule", ""), template.get("ttl") or "0s",
            time_from_now(parse_time(status.get("lastBackup")), now),
            label_selector(template.get("labelSelector")), str(bool(spec.get("paused"))).lower()]


def schedule_table(schedules: list[Obj], now: datetime) -> str:
    return _table(SCHEDULE_HEADER, [schedule_row(s, now) for s in _by_name(schedules)])


def location_row(loc: Obj) -> list[str]:
    spec, status = _spec(loc), _status(loc)
    storage = spec.get("objectStorage") or {}
    where = storage.get("bucket", "") + (f"/{storage['prefix']}" if storage.get("prefix") else "")
    validated = _time(status.get("lastValidationTime")) if status.get("lastValidationTime") else "Unknown"
    return [loc["metadata"]["name"], spec.get("provider", ""), where, status.get("phase") or "Unknown",
            validated, spec.get("accessMode") or "ReadWrite", str(bool(spec.get("default"))).lower()]


def location_table(locations: list[Obj]) -> str:
    return _table(LOCATION_HEADER, [location_row(loc) for loc in _by_name(locations)])


def repository_table(repositories: list[Obj]) -> str:
    """`velero repo get`: a repository never maintained says so."""
    rows = []
    for r in sorted(repositories, key=lambda x: x["metadata"]["name"]):
        status = _status(r)
        last = status.get("lastMaintenanceTime")
        rows.append([r["metadata"]["name"], status.get("phase") or "New", _time(last) if last else "<never>"])
    return _table(["NAME", "STATUS", "LAST MAINTENANCE"], rows)


def _join(items: list[str] | None, empty: str) -> str:
    return ", ".join(items) if items else empty


def _mapping(name: str, values: dict[str, str] | None) -> list[str]:
    items = [f"{k}={v}" for k, v in sorted((values or {}).items())] or [NONE]
    return [f"{name}:\t{items[0]}"] + [f"\t{item}" for item in items[1:]]


def _result(name: str, result: Obj | None) -> list[str]:
    lines = [f"{name}:"]
    for scope in ("velero", "cluster"):
        lines.append(f"\t{scope.capitalize()}:\t{_join((result or {}).get(scope), NONE)}")
    namespaces = (result or {}).get("namespaces") or {}
    lines.append("\tNamespaces:" + ("" if namespaces else f" {NONE}"))
    for ns in sorted(namespaces):
        messages = namespaces[ns]
        lines += [f"\t\t{ns}:\t{messages[0]}"] + [f"\t\t\t{m}" for m in messages[1:]]
    return lines + [""]


def _auto(value: bool | None) -> str:
    return "auto" if value is None else str(value).lower()


_RESTORE_GROUPS = {"Completed": "Completed", "Failed": "Failed", "InProgress": "In Progress", "New": "New", "": "New"}


def _pod_volume_restores(pvrs: list[Obj]) -> list[str]:
    """Velero's "<uploader> Restores:" section: the volumes of each pod, by phase."""
    if not pvrs:
        return []
    lines = ["", f"{_spec(pvrs[0]).get('uploaderType', '')} Restores:"]
    for phase in ("Completed", "Failed", "In Progress", "New"):
        by_pod: dict[str, list[str]] = {}
        for p in pvrs:
            if _RESTORE_GROUPS.get(_status(p).get("phase", "")) == phase:
                pod = _spec(p).get("pod") or {}
                by_pod.setdefault(f"{pod.get('namespace')}/{pod.get('name')}", []).append(_spec(p).get("volume", ""))
        if by_pod:
            lines += [f"\t{phase}:"] + [f"\t\t{pod}: {', '.join(sorted(v))}" for pod, v in sorted(by_pod.items())]
    return lines


def describe_restore(r: Obj, results: Obj | None, resource_list: dict[str, list[str]] | None,
                     pod_volume_restores: list[Obj] | None = None) -> str:
    """`velero restore describe --details`; ``results`` and ``resource_list`` as downloaded
    (None when the server could not give them), with the restore's PodVolumeRestores."""
    spec, status, meta = _spec(r), _status(r), r["metadata"]
    progress = status.get("progress") or {}
    include_cluster = spec.get("includeClusterResources")
    lines = [f"Name:\t{meta['name']}", f"Namespace:\t{meta.get('namespace', '')}",
             *_mapping("Labels", meta.get("labels")), *_mapping("Annotations", meta.get("annotations")), "",
             f"Phase:\t{status.get('phase') or 'New'}",
             f"Total items to be restored:\t{progress.get('totalItems', 0)}",
             f"Items restored:\t{progress.get('itemsRestored', 0)}", ""]
    if status.get("validationErrors"):
        lines += ["Validation errors:"] + [f"\t{e}" for e in status["validationErrors"]] + [""]
    if status.get("failureReason"):
        lines += [f"Failure reason:\t{status['failureReason']}", ""]
    lines += [f"Started:\t{_time(status.get('startTimestamp'))}",
              f"Completed:\t{_time(status.get('completionTimestamp'))}", ""]
    if results is not None:
        if status.get("warnings"):
            lines += _result("Warnings", results.get("warnings"))
        if status.get("errors"):
            lines += _result("Errors", results.get("errors"))
    cluster = "auto" if include_cluster is None else ("included" if include_cluster else "excluded")
    ors = " or ".join(label_selector(s) for s in spec.get("orLabelSelectors") or []) or NONE
    lines += [f"Backup:\t{spec.get('backupName', '')}", "",
              "Namespaces:", f"\tIncluded:\t{_join(spec.get('includedNamespaces'), ALL_NAMESPACES)}",
              f"\tExcluded:\t{_join(spec.get('excludedNamespaces'), NONE)}", "",
              "Resources:", f"\tIncluded:\t{_join(spec.get('includedResources'), '*')}",
              f"\tExcluded:\t{_join(spec.get('excludedResources'), NONE)}", f"\tCluster-scoped:\t{cluster}",
              "", *_mapping("Namespace mappings", spec.get("namespaceMapping")), "",
              f"Label selector:\t{label_selector(spec.get('labelSelector'))}", "", f"Or label selector:\t{ors}",
              "", f"Restore PVs:\t{_auto(spec.get('restorePVs'))}",
              *_pod_volume_restores(pod_volume_restores or []), "",
              f"Existing Resource Policy:\t{spec.get('existingResourcePolicy') or NONE}",
              f"ItemOperationTimeout:\t{spec.get('itemOperationTimeout') or '4h0m0s'}", "",
              f"Preserve Service NodePorts:\t{_auto(spec.get('preserveNodePorts'))}", ""]
    if resource_list is None:
        lines.append("Resource List:\t<restore resource list not found>")
    else:
        lines.append("Resource List:")
        for gvk in sorted(resource_list):
            lines += [f"\t{gvk}:"] + [f"\t\t- {item}" for item in resource_list[gvk]]
    return tabwrite("\n".join(lines) + "\n", minwidth=0, padding=2)
