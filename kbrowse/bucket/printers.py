"""What ``velero backup get`` and ``velero backup describe --details`` print, from a bucket.

Pure functions over `mover.velero` objects, following Velero's printers
(``pkg/cmd/util/output/backup_printer.go``, ``backup_describer.go``): the same headings, the
same Go time and duration forms, the same tabwriter alignment. Where Velero would ask the
cluster (PodVolumeBackups, results, the resource list), the bucket's copies are used.
kbrowse adds one block Velero does not have: "Volume Data", each volume's repository,
snapshot id and size, so the operator can go straight to ``kbrowse cp``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import yaml

from kbrowse.bucket.paths import volume_parts
from mover.golang import duration
from mover.golang.tabwriter import tabwrite
from mover.velero.objects import (
    CSI_SNAPSHOT,
    NATIVE_SNAPSHOT,
    Backup,
    BackupResults,
    BackupSpec,
    PodVolumeBackup,
    Result,
    VolumeInfo,
    parse_time,
)
from mover.velero.volumes import BackupVolume

NONE = "<none>"
_SCHEDULED = re.compile(r"-[0-9]{14}$")


def go_time(when: datetime | None) -> str:
    """Go's time.Time.String() in the local zone, as Velero prints metav1.Time; "<nil>" for
    a missing time."""
    if when is None:
        return "<nil>"
    local = when.astimezone()
    frac = f"{local.microsecond:06d}".rstrip("0")
    return (local.strftime("%Y-%m-%d %H:%M:%S") + (f".{frac}" if frac else "")
            + local.strftime(" %z %Z"))


def _requirement(key: str, op: str, values: list[str]) -> str:
    vals = ",".join(sorted(values))
    return {"In": f"{key} in ({vals})", "NotIn": f"{key} notin ({vals})", "Exists": key,
            "DoesNotExist": f"!{key}"}.get(op, f"{key} {op} ({vals})")


def label_selector(sel: dict[str, Any] | None) -> str:
    """apimachinery's FormatLabelSelector: requirements sorted by key, "<none>" when empty."""
    if not sel:
        return NONE
    reqs = [(k, f"{k}={v}") for k, v in (sel.get("matchLabels") or {}).items()]
    reqs += [(e.get("key", ""), _requirement(e.get("key", ""), e.get("operator", ""),
                                             e.get("values") or []))
             for e in sel.get("matchExpressions") or []]
    text = ",".join(r for _, r in sorted(reqs, key=lambda kr: kr[0]))
    return text or NONE


def expiration(backup: Backup) -> datetime | None:
    """status.expiration, else creation time + TTL (a backup not processed yet)."""
    if backup.status.expiration is not None:
        return backup.status.expiration
    ttl = duration.parse_duration(backup.spec.ttl) if backup.spec.ttl else 0
    created = backup.metadata.creation_timestamp
    if ttl > 0 and created is not None:
        return datetime.fromtimestamp(created.timestamp() + ttl / 1e9, UTC)
    return None


def time_from_now(when: datetime | None, now: datetime) -> str:
    """Velero's humanReadableTimeFromNow: "29d", "3h ago", or "n/a"."""
    if when is None:
        return "n/a"
    delta = int((when - now).total_seconds() * 1e9)
    if delta < 0:
        return f"{duration.short_human(-delta)} ago"
    return duration.short_human(delta)


def status(backup: Backup) -> str:
    if backup.metadata.deletion_timestamp is not None:
        return "Deleting"
    return backup.status.phase or "New"


_NEWEST_FIRST = str.maketrans("0123456789", "9876543210")


def sort_backups(backups: list[Backup]) -> list[Backup]:
    """Velero's sortBackupsByPrefixAndTimestamp: by name, but backups of one schedule (a
    14-digit timestamp suffix) newest first. As a sort key (the app sorts the whole list again
    on each batch of watch events): a schedule's backups sit where the first of their names
    does, in reverse timestamp order."""
    prefixes = [m.string[: m.start()] if (m := _SCHEDULED.search(b.name)) else None for b in backups]
    first: dict[str, str] = {}
    for b, prefix in zip(backups, prefixes, strict=True):
        if prefix is not None and b.name < first.get(prefix, "\U0010ffff"):
            first[prefix] = b.name

    def key(i: int) -> tuple[str, str]:
        name, prefix = backups[i].name, prefixes[i]
        if prefix is None:
            return name, ""
        return first[prefix], name[len(prefix) + 1:].translate(_NEWEST_FIRST)

    return [backups[i] for i in sorted(range(len(backups)), key=key)]


def backup_table(backups: list[Backup], now: datetime) -> str:
    """``velero backup get``."""
    rows = ["NAME\tSTATUS\tERRORS\tWARNINGS\tCREATED\tEXPIRES\tSTORAGE LOCATION\tSELECTOR"]
    for b in sort_backups(backups):
        rows.append("\t".join([
            b.name, status(b), str(b.status.errors), str(b.status.warnings),
            go_time(b.status.start_timestamp), time_from_now(expiration(b), now),
            b.spec.storage_location, label_selector(b.spec.label_selector)]))
    return tabwrite("\n".join(rows) + "\n", minwidth=6, padding=3)


# -- describe -----------------------------------------------------------------------------------


@dataclass
class BackupDetails:
    """Everything ``describe`` shows, read from the bucket by the caller."""

    backup: Backup
    results: BackupResults | None
    resource_list: dict[str, list[str]] | None
    item_operations: list[dict[str, Any]]
    pod_volume_backups: list[PodVolumeBackup]
    volume_infos: list[VolumeInfo] | None
    volumes: list[BackupVolume]
    logs_hint: str  # the command that prints the logs, for a failed backup


class _Describer:
    """Velero's Describer: Printf into a buffer that a tabwriter (0, 8, 2) aligns."""

    def __init__(self) -> None:
        self.parts: list[str] = []

    def printf(self, text: str) -> None:
        self.parts.append(text)

    def println(self, text: str = "") -> None:
        self.parts.append(text + "\n")

    def map(self, name: str, m: dict[str, str]) -> None:
        self.printf(f"{name}:\t")
        if not m:
            self.printf(f"{NONE}\n")
        for i, key in enumerate(sorted(m)):
            self.printf(("\t" if i else "") + f"{key}={m[key]}\n")

    def slice(self, indent: int, name: str, items: list[str]) -> None:
        pfx = "\t" * indent
        self.printf(f"{pfx}{name}:\t")
        if not items:
            self.printf(f"{NONE}\n")
            return
        self.printf(f"{items[0]}\n")
        for x in items[1:]:
            self.printf(f"{pfx}\t{x}\n")

    def text(self) -> str:
        return tabwrite("".join(self.parts), minwidth=0, padding=2)


def _bool(b: bool | None, false: str, true: str, unset: str) -> str:
    return unset if b is None else (true if b else false)


def _join(items: list[str], empty: str) -> str:
    return ", ".join(items) if items else empty


def _go_duration(text: str) -> str:
    return duration.format_duration(duration.parse_duration(text)) if text else "0s"


def describe_backup(d: BackupDetails) -> str:
    """``velero backup describe --details`` (plus kbrowse's "Volume Data" block)."""
    out = _Describer()
    b = d.backup
    out.printf(f"Name:\t{b.metadata.name}\n")
    out.printf(f"Namespace:\t{b.metadata.namespace}\n")
    out.map("Labels", b.metadata.labels)
    out.map("Annotations", b.metadata.annotations)
    out.println()
    phase = b.status.phase or "New"
    note = ""
    if phase in ("Failed", "PartiallyFailed"):
        note = f" (run `{d.logs_hint}` for more information)"
    out.printf(f"Phase:\t{phase}{note}\n")
    if b.spec.resource_policy:
        out.println()
        out.printf("Resource policies:\n")
        out.printf(f"\tType:\t{b.spec.resource_policy.get('kind', '')}\n")
        out.printf(f"\tName:\t{b.spec.resource_policy.get('name', '')}\n")
    parallel = (b.spec.uploader_config or {}).get("parallelFilesUpload", 0)
    if parallel:
        out.println()
        out.printf("Uploader config:\n")
        out.printf(f"\tParallel files upload:\t{parallel}\n")
    if b.status.validation_errors:
        out.println()
        out.printf("Validation errors:")
        for err in b.status.validation_errors:
            out.printf(f"\t{err}\n")
    out.println()
    _describe_results(out, b, d.results)
    out.println()
    _describe_spec(out, b.spec)
    out.println()
    _describe_status(out, d)
    return out.text()


def _describe_results(out: _Describer, b: Backup, results: BackupResults | None) -> None:
    if b.status.warnings == 0 and b.status.errors == 0:
        return
    if results is None:  # backups older than the results file
        out.printf(f"Errors:\t{b.status.errors}\n")
        out.printf(f"Warnings:\t{b.status.warnings}\n")
        return
    for name, count, result in (("Warnings", b.status.warnings, results.warnings),
                                ("Errors", b.status.errors, results.errors)):
        if count > 0:
            out.println()
            _describe_result(out, name, result)


def _describe_result(out: _Describer, name: str, result: Result) -> None:
    out.printf(f"{name}:\n")
    out.slice(1, "Velero", result.velero)
    out.slice(1, "Cluster", result.cluster)
    if not result.namespaces:
        out.printf(f"\tNamespaces: {NONE}\n")
        return
    out.printf("\tNamespaces:\n")
    for ns in sorted(result.namespaces):
        out.slice(2, ns, result.namespaces[ns])


def _old_resource_filters(spec: BackupSpec) -> bool:
    """Velero's UseOldResourceFilters."""
    if spec.include_cluster_resources is not None or spec.included_resources \
            or spec.excluded_resources:
        return True
    return not (spec.included_cluster_scoped_resources or spec.excluded_cluster_scoped_resources
                or spec.included_namespace_scoped_resources
                or spec.excluded_namespace_scoped_resources)


def _describe_spec(out: _Describer, spec: BackupSpec) -> None:
    out.printf("Namespaces:\n")
    out.printf(f"\tIncluded:\t{_join(spec.included_namespaces, '*')}\n")
    out.printf(f"\tExcluded:\t{_join(spec.excluded_namespaces, NONE)}\n")
    out.println()
    out.printf("Resources:\n")
    if _old_resource_filters(spec):
        out.printf(f"\tIncluded:\t{_join(spec.included_resources, '*')}\n")
        out.printf(f"\tExcluded:\t{_join(spec.excluded_resources, NONE)}\n")
        cluster = _bool(spec.include_cluster_resources, "excluded", "included", "auto")
        out.printf(f"\tCluster-scoped:\t{cluster}\n")
    else:
        for title, items, empty in (
                ("Included cluster-scoped", spec.included_cluster_scoped_resources, NONE),
                ("Excluded cluster-scoped", spec.excluded_cluster_scoped_resources, NONE),
                ("Included namespace-scoped", spec.included_namespace_scoped_resources, "*"),
                ("Excluded namespace-scoped", spec.excluded_namespace_scoped_resources, NONE)):
            out.printf(f"\t{title}:\t{_join(items, empty)}\n")
    out.println()
    out.printf(f"Label selector:\t{label_selector(spec.label_selector)}\n")
    out.println()
    ors = " or ".join(label_selector(s) for s in spec.or_label_selectors) or NONE
    out.printf(f"Or label selector:\t{ors}\n")
    out.println()
    out.printf(f"Storage Location:\t{spec.storage_location}\n")
    out.println()
    pvs = _bool(spec.snapshot_volumes, "false", "true", "auto")
    out.printf(f"Velero-Native Snapshot PVs:\t{pvs}\n")
    out.printf(f"Snapshot Move Data:\t{_bool(spec.snapshot_move_data, 'false', 'true', 'auto')}\n")
    out.printf(f"Data Mover:\t{spec.datamover or 'velero'}\n")
    out.println()
    out.printf(f"TTL:\t{_go_duration(spec.ttl)}\n")
    out.println()
    out.printf(f"CSISnapshotTimeout:\t{_go_duration(spec.csi_snapshot_timeout)}\n")
    out.printf(f"ItemOperationTimeout:\t{_go_duration(spec.item_operation_timeout)}\n")
    out.println()
    _describe_hooks(out, spec.hooks.get("resources") or [])
    if spec.ordered_resources:
        out.println()
        out.printf("OrderedResources:\n")
        for kind in sorted(spec.ordered_resources):
            out.printf(f"\t{kind}: {spec.ordered_resources[kind]}\n")


def _describe_hooks(out: _Describer, resources: list[dict[str, Any]]) -> None:
    if not resources:
        out.printf(f"Hooks:\t{NONE}\n")
        return
    out.printf("Hooks:\n")
    out.printf("\tResources:\n")
    for hook in resources:
        out.printf(f"\t\t{hook.get('name', '')}:\n")
        out.printf("\t\t\tNamespaces:\n")
        out.printf(f"\t\t\t\tIncluded:\t{_join(hook.get('includedNamespaces') or [], '*')}\n")
        out.printf(f"\t\t\t\tExcluded:\t{_join(hook.get('excludedNamespaces') or [], NONE)}\n")
        out.println()
        out.printf("\t\t\tResources:\n")
        out.printf(f"\t\t\t\tIncluded:\t{_join(hook.get('includedResources') or [], '*')}\n")
        out.printf(f"\t\t\t\tExcluded:\t{_join(hook.get('excludedResources') or [], NONE)}\n")
        out.println()
        out.printf(f"\t\t\tLabel selector:\t{label_selector(hook.get('labelSelector'))}\n")
        for title, key in (("Pre Exec Hook", "pre"), ("Post Exec Hook", "post")):
            for h in hook.get(key) or []:
                ex = h.get("exec")
                if not ex:
                    continue
                out.println()
                out.printf(f"\t\t\t{title}:\n")
                out.printf(f"\t\t\t\tContainer:\t{ex.get('container', '')}\n")
                out.printf(f"\t\t\t\tCommand:\t{' '.join(ex.get('command') or [])}\n")
                out.printf(f"\t\t\t\tOn Error:\t{ex.get('onError', '')}\n")
                out.printf(f"\t\t\t\tTimeout:\t{_go_duration(ex.get('timeout') or '')}\n")


def _describe_status(out: _Describer, d: BackupDetails) -> None:
    st = d.backup.status
    out.printf(f"Backup Format Version:\t{st.format_version}\n")
    out.println()
    for title, when in (("Started", st.start_timestamp), ("Completed", st.completion_timestamp)):
        # "<n/a>" only for backups that failed validation
        out.printf(f"{title}:\t{go_time(when) if when else '<n/a>'}\n")
    out.println()
    out.printf(f"Expiration:\t{go_time(st.expiration)}\n")
    out.println()
    if st.progress is not None:
        if st.phase == "InProgress":
            out.printf(f"Estimated total items to be backed up:\t{st.progress.total_items}\n")
            out.printf(f"Items backed up so far:\t{st.progress.items_backed_up}\n")
        else:
            out.printf(f"Total items to be backed up:\t{st.progress.total_items}\n")
            out.printf(f"Items backed up:\t{st.progress.items_backed_up}\n")
        out.println()
    if st.backup_item_operations_attempted > 0:
        out.printf("Backup Item Operations:\n")
        for op in d.item_operations:
            _describe_operation(out, op)
    _describe_resource_list(out, d.resource_list)
    out.println()
    _describe_volumes(out, d)
    out.println()
    if st.hook_status is not None:
        out.println()
        out.printf(f"HooksAttempted:\t{st.hook_status.hooks_attempted}\n")
        out.printf(f"HooksFailed:\t{st.hook_status.hooks_failed}\n")


def _resource_id(r: dict[str, Any]) -> tuple[str, str]:
    """A ResourceIdentifier (Go field names, no JSON tags): "resource.group", "ns/name"."""
    gr = ".".join(p for p in (r.get("Resource", ""), r.get("Group", "")) if p)
    return gr, f"{r.get('Namespace', '')}/{r.get('Name', '')}"


def _describe_operation(out: _Describer, op: dict[str, Any]) -> None:
    spec, st = op.get("spec") or {}, op.get("status") or {}
    gr, nsname = _resource_id(spec.get("ResourceIdentifier") or {})
    out.printf(f"\tOperation for {gr} {nsname}:\n")
    out.printf(f"\t\tBackup Item Action Plugin:\t{spec.get('backupItemAction', '')}\n")
    out.printf(f"\t\tOperation ID:\t{spec.get('OperationID', '')}\n")
    items = spec.get("PostOperationItems") or []
    if items:
        out.printf("\t\tItems to Update:\n")
    for item in items:
        igr, insname = _resource_id(item)
        out.printf(f"\t\t\t{igr} {insname}\n")
    out.printf(f"\t\tPhase:\t{st.get('phase', '')}\n")
    if st.get("error"):
        out.printf(f"\t\tOperation Error:\t{st['error']}\n")
    if st.get("nTotal") or st.get("nCompleted"):
        out.printf(f"\t\tProgress:\t{st.get('nCompleted', 0)} of {st.get('nTotal', 0)} complete "
                   f"({st.get('operationUnits', '')})\n")
    if st.get("description"):
        out.printf(f"\t\tProgress description:\t{st['description']}\n")
    for key, title in (("created", "Created"), ("started", "Started"), ("updated", "Updated")):
        if st.get(key):
            out.printf(f"\t\t{title}:\t{go_time(parse_time(st[key]))}\n")


def _describe_resource_list(out: _Describer, resources: dict[str, list[str]] | None) -> None:
    if resources is None:
        out.println("Resource List:\t<backup resource list not found>")
        return
    out.println("Resource List:")
    for gvk in sorted(resources):
        out.printf(f"\t{gvk}:\n\t\t- " + "\n\t\t- ".join(resources[gvk]) + "\n")


def _describe_volumes(out: _Describer, d: BackupDetails) -> None:
    if d.backup.spec.snapshot_volumes is False:
        out.println("Backup Volumes: <none included>")
        return
    out.println("Backup Volumes:")
    infos = d.volume_infos or []
    native = [i for i in infos if i.backup_method == NATIVE_SNAPSHOT]
    csi = [i for i in infos if i.backup_method == CSI_SNAPSHOT]
    if not native:
        out.printf("\tVelero-Native Snapshots: <none included>\n")
    else:
        out.println("\tVelero-Native Snapshots:")
        for i in native:
            n = i.native_snapshot_info
            out.printf(f"\t\t{i.pv_name}:\n")
            out.printf(f"\t\t\tSnapshot ID:\t{n.snapshot_handle if n else ''}\n")
            out.printf(f"\t\t\tType:\t{n.volume_type if n else ''}\n")
            out.printf(f"\t\t\tAvailability Zone:\t{n.volume_az if n else ''}\n")
            out.printf(f"\t\t\tIOPS:\t{n.iops if n else ''}\n")
            out.printf(f"\t\t\tResult:\t{i.result}\n")
    out.println()
    if not csi:
        legacy = " or not detectable" if d.volume_infos is None else ""
        out.printf(f"\tCSI Snapshots: <none included{legacy}>\n")
    else:
        out.println("\tCSI Snapshots:")
        for i in csi:
            _describe_csi(out, i)
    out.println()
    _describe_pod_volume_backups(out, d.pod_volume_backups)
    in_bucket = [v for v in d.volumes if v.repository]
    if in_bucket:
        out.println()
        out.println("\tVolume Data:")
        for v in in_bucket:
            out.printf(f"\t\t{v.label}:\n")
            out.printf(f"\t\t\tMethod:\t{v.method}{' (data movement)' if v.data_mover else ''}\n")
            out.printf(f"\t\t\tUploader:\t{v.uploader}\n")
            out.printf(f"\t\t\tRepository:\t{v.repository}\n")
            out.printf(f"\t\t\tSnapshot ID:\t{v.snapshot_id}\n")
            out.printf(f"\t\t\tSize (bytes):\t{v.size}\n")
            out.printf(f"\t\t\tResult:\t{v.result}\n")
            out.printf(f"\t\t\tPath:\t{d.backup.name}/volumes/{'/'.join(volume_parts(v))}\n")


def _describe_csi(out: _Describer, i: VolumeInfo) -> None:
    out.printf(f"\t\t{i.pvc_namespace}/{i.pvc_name}:\n")
    c = i.csi_snapshot_info
    if i.preserve_local_snapshot and c is not None:
        out.printf("\t\t\tSnapshot:\n")
        if not i.snapshot_data_moved and c.operation_id:
            out.printf(f"\t\t\t\tOperation ID: {c.operation_id}\n")
        out.printf(f"\t\t\t\tSnapshot Content Name: {c.vsc_name}\n")
        out.printf(f"\t\t\t\tStorage Snapshot ID: {c.snapshot_handle}\n")
        out.printf(f"\t\t\t\tSnapshot Size (bytes): {c.size}\n")
        out.printf(f"\t\t\t\tCSI Driver: {c.driver}\n")
        out.printf(f"\t\t\t\tResult: {i.result}\n")
    m = i.snapshot_data_movement_info
    if i.snapshot_data_moved and m is not None:
        out.printf("\t\t\tData Movement:\n")
        out.printf(f"\t\t\t\tOperation ID: {m.operation_id}\n")
        out.printf(f"\t\t\t\tData Mover: {m.data_mover or 'velero'}\n")
        out.printf(f"\t\t\t\tUploader Type: {m.uploader_type}\n")
        out.printf(f"\t\t\t\tMoved data Size (bytes): {m.size}\n")
        if m.incremental_size:
            out.printf(f"\t\t\t\tIncremental data Size (bytes): {m.incremental_size}\n")
        out.printf(f"\t\t\t\tResult: {i.result}\n")


_PHASE_GROUPS = {"Completed": "Completed", "Failed": "Failed", "InProgress": "In Progress",
                 "New": "New", "": "New"}


def _describe_pod_volume_backups(out: _Describer, pvbs: list[PodVolumeBackup]) -> None:
    if not pvbs:
        out.printf("\tPod Volume Backups: <none included>\n")
        return
    out.printf(f"\tPod Volume Backups - {pvbs[0].spec.uploader_type}:\n")
    groups: dict[str, list[PodVolumeBackup]] = {}
    for p in pvbs:
        groups.setdefault(_PHASE_GROUPS.get(p.status.phase, ""), []).append(p)
    for phase in ("Completed", "Failed", "In Progress", "New"):
        if phase not in groups:
            continue
        by_pod: dict[str, list[str]] = {}
        for p in groups[phase]:
            vol = p.spec.volume
            prog = p.status.progress
            if phase == "In Progress" and prog.total_bytes:
                vol += f" ({prog.bytes_done / prog.total_bytes * 100:.2f}%)"
            by_pod.setdefault(f"{p.spec.pod.namespace}/{p.spec.pod.name}", []).append(vol)
        out.printf(f"\t\t{phase}:\n")
        for pod in sorted(by_pod):
            out.printf(f"\t\t\t{pod}: {', '.join(sorted(by_pod[pod]))}\n")


def to_yaml(obj: dict) -> str:
    """The object as ``kubectl get -o yaml`` shows it (keys sorted)."""
    return yaml.safe_dump(obj, sort_keys=True, default_flow_style=False, allow_unicode=True)
