"""Velero's API objects as plain dataclasses, read from and written to Velero's JSON.

Only the fields kbrowse and the mover use are modelled. JSON names are the dataclass field
names in camelCase (``snapshot_id`` -> ``snapshotID`` where Go spells it so, via the ``json``
field metadata). Encoding leaves out fields equal to their default, as Go's ``omitempty`` does;
a ``bool | None`` keeps an explicit ``False`` (Velero's ``*bool``: false is not "auto").
Objects read from a bucket keep the document they came from in ``raw`` for faithful display.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from mover.errors import IntegrityError

API_V1 = "velero.io/v1"
NOT_JSON = {"skip": True}  # field metadata: not part of the object's JSON (e.g. ``raw``)

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

T = TypeVar("T", bound="DataclassInstance")


def _json_name(f: dataclasses.Field) -> str:
    if "json" in f.metadata:
        return f.metadata["json"]
    head, *rest = f.name.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


def parse_time(text: str | None) -> datetime | None:
    """A metav1.Time (RFC 3339, UTC 'Z' or an offset) as an aware datetime."""
    if not text:
        return None
    return datetime.fromisoformat(text)


def format_time(when: datetime) -> str:
    """metav1.Time's JSON form: RFC 3339 in UTC, whole seconds."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _decode(tp: Any, value: Any) -> Any:
    if value is None:
        return None
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        (inner,) = [a for a in typing.get_args(tp) if a is not type(None)]
        return _decode(inner, value)
    if origin is list:
        (inner,) = typing.get_args(tp)
        return [_decode(inner, v) for v in value]
    if origin is dict:
        _, inner = typing.get_args(tp)
        return {k: _decode(inner, v) for k, v in value.items()}
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return decode(tp, value)
    if tp is datetime:
        return parse_time(value)
    if tp in (int, float, str, bool) and not isinstance(value, tp):
        raise TypeError(f"expected {tp.__name__}, got {type(value).__name__}")
    return value


@functools.cache
def _decoded_fields(cls: type) -> tuple[tuple[str, str, Any], ...]:
    """(field name, JSON name, type) of each JSON field: resolving the type hints is most of
    the cost of decoding, and an app decodes thousands of objects of a few classes."""
    hints = typing.get_type_hints(cls)
    return tuple((f.name, _json_name(f), hints[f.name]) for f in dataclasses.fields(cls)
                 if not f.metadata.get("skip"))


def decode(cls: type[T], data: dict[str, Any] | None) -> T:
    """Build `cls` from Velero's JSON; unknown keys are ignored, missing ones take defaults."""
    data = data or {}
    kwargs = {}
    for name, json_name, tp in _decoded_fields(cls):
        value = data.get(json_name)
        if value is not None:
            kwargs[name] = _decode(tp, value)
    return cls(**kwargs)


def _encode(value: Any) -> Any:
    if dataclasses.is_dataclass(value):
        return encode(value)
    if isinstance(value, datetime):
        return format_time(value)
    if isinstance(value, list):
        return [_encode(v) for v in value]
    if isinstance(value, dict):
        return {k: _encode(v) for k, v in value.items()}
    return value


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


def encode(obj: Any) -> dict[str, Any]:
    """Velero's JSON for a dataclass built here, leaving out fields at their default."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(obj):
        if f.metadata.get("skip"):
            continue
        value = getattr(obj, f.name)
        if value is None or value == _default(f):
            continue
        out[_json_name(f)] = _encode(value)
    return out


def from_json(cls: type[T], data: Any, what: str) -> T:
    """`decode` with errors that name the file: a malformed document is an IntegrityError."""
    if not isinstance(data, dict):
        raise IntegrityError(f"{what}: expected a JSON object, got {type(data).__name__}")
    try:
        obj = decode(cls, data)
    except (TypeError, ValueError, AttributeError) as e:
        raise IntegrityError(f"{what}: not a valid {cls.__name__} ({e})") from None
    if hasattr(obj, "raw"):
        obj.raw = data
    return obj


def list_from_json(cls: type[T], data: Any, what: str) -> list[T]:
    """A JSON array of objects; Go writes ``null`` for an empty (nil) list."""
    if data is None:
        return []
    if not isinstance(data, list):
        raise IntegrityError(f"{what}: expected a JSON array, got {type(data).__name__}")
    return [from_json(cls, item, f"{what}[{i}]") for i, item in enumerate(data)]


# -- metadata -------------------------------------------------------------------------------


@dataclass
class ObjectMeta:
    name: str = ""
    namespace: str = ""
    uid: str = ""
    creation_timestamp: datetime | None = None
    deletion_timestamp: datetime | None = None
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)


@dataclass
class ObjectReference:
    kind: str = ""
    namespace: str = ""
    name: str = ""
    uid: str = ""
    api_version: str = ""


# -- Backup -----------------------------------------------------------------------------------


@dataclass
class BackupSpec:
    included_namespaces: list[str] = field(default_factory=list)
    excluded_namespaces: list[str] = field(default_factory=list)
    included_resources: list[str] = field(default_factory=list)
    excluded_resources: list[str] = field(default_factory=list)
    included_cluster_scoped_resources: list[str] = field(default_factory=list)
    excluded_cluster_scoped_resources: list[str] = field(default_factory=list)
    included_namespace_scoped_resources: list[str] = field(default_factory=list)
    excluded_namespace_scoped_resources: list[str] = field(default_factory=list)
    label_selector: dict[str, Any] | None = None
    or_label_selectors: list[dict[str, Any]] = field(default_factory=list)
    snapshot_volumes: bool | None = None
    ttl: str = ""  # a Go duration, e.g. "720h0m0s"
    include_cluster_resources: bool | None = None
    hooks: dict[str, Any] = field(default_factory=dict)
    storage_location: str = ""
    volume_snapshot_locations: list[str] = field(default_factory=list)
    default_volumes_to_fs_backup: bool | None = None
    ordered_resources: dict[str, str] = field(default_factory=dict)
    csi_snapshot_timeout: str = ""
    item_operation_timeout: str = ""
    resource_policy: dict[str, Any] | None = None
    snapshot_move_data: bool | None = None
    datamover: str = ""
    uploader_config: dict[str, Any] | None = None


@dataclass
class BackupProgress:
    total_items: int = 0
    items_backed_up: int = 0


@dataclass
class HookStatus:
    hooks_attempted: int = 0
    hooks_failed: int = 0


@dataclass
class BackupStatus:
    version: int = 0
    format_version: str = ""
    expiration: datetime | None = None
    phase: str = ""
    validation_errors: list[str] = field(default_factory=list)
    start_timestamp: datetime | None = None
    completion_timestamp: datetime | None = None
    volume_snapshots_attempted: int = 0
    volume_snapshots_completed: int = 0
    failure_reason: str = ""
    warnings: int = 0
    errors: int = 0
    progress: BackupProgress | None = None
    csi_volume_snapshots_attempted: int = 0
    csi_volume_snapshots_completed: int = 0
    backup_item_operations_attempted: int = 0
    backup_item_operations_completed: int = 0
    backup_item_operations_failed: int = 0
    hook_status: HookStatus | None = None
    queue_position: int = 0


@dataclass
class Backup:
    metadata: ObjectMeta = field(default_factory=ObjectMeta)
    spec: BackupSpec = field(default_factory=BackupSpec)
    status: BackupStatus = field(default_factory=BackupStatus)
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False, metadata=NOT_JSON)

    @property
    def name(self) -> str:
        return self.metadata.name

    def to_json(self) -> dict[str, Any]:
        return {"kind": "Backup", "apiVersion": API_V1, **encode(self)}


# -- Restore ----------------------------------------------------------------------------------


@dataclass
class RestoreSpec:
    backup_name: str = ""
    schedule_name: str = ""
    included_namespaces: list[str] = field(default_factory=list)
    excluded_namespaces: list[str] = field(default_factory=list)
    included_resources: list[str] = field(default_factory=list)
    excluded_resources: list[str] = field(default_factory=list)
    namespace_mapping: dict[str, str] = field(default_factory=dict)
    label_selector: dict[str, Any] | None = None
    or_label_selectors: list[dict[str, Any]] = field(default_factory=list)
    restore_pvs: bool | None = field(default=None, metadata={"json": "restorePVs"})
    restore_status: dict[str, Any] | None = None  # {"includedResources": [...], "excludedResources": [...]}
    preserve_node_ports: bool | None = None
    include_cluster_resources: bool | None = None
    existing_resource_policy: str = ""


@dataclass
class RestoreProgress:
    total_items: int = 0
    items_restored: int = 0


@dataclass
class RestoreStatus:
    phase: str = ""
    validation_errors: list[str] = field(default_factory=list)
    warnings: int = 0
    errors: int = 0
    failure_reason: str = ""
    start_timestamp: datetime | None = None
    completion_timestamp: datetime | None = None
    progress: RestoreProgress | None = None


@dataclass
class Restore:
    metadata: ObjectMeta = field(default_factory=ObjectMeta)
    spec: RestoreSpec = field(default_factory=RestoreSpec)
    status: RestoreStatus = field(default_factory=RestoreStatus)
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False, metadata=NOT_JSON)

    def to_json(self) -> dict[str, Any]:
        return {"kind": "Restore", "apiVersion": API_V1, **encode(self)}


# -- PodVolumeBackup --------------------------------------------------------------------------


@dataclass
class PodVolumeBackupSpec:
    node: str = ""
    pod: ObjectReference = field(default_factory=ObjectReference)
    volume: str = ""
    backup_storage_location: str = ""
    repo_identifier: str = ""
    uploader_type: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    uploader_settings: dict[str, str] = field(default_factory=dict)


@dataclass
class VolumeOperationProgress:
    total_bytes: int = 0
    bytes_done: int = 0


@dataclass
class PodVolumeBackupStatus:
    phase: str = ""
    path: str = ""
    snapshot_id: str = field(default="", metadata={"json": "snapshotID"})
    message: str = ""
    start_timestamp: datetime | None = None
    completion_timestamp: datetime | None = None
    progress: VolumeOperationProgress = field(default_factory=VolumeOperationProgress)


@dataclass
class PodVolumeBackup:
    metadata: ObjectMeta = field(default_factory=ObjectMeta)
    spec: PodVolumeBackupSpec = field(default_factory=PodVolumeBackupSpec)
    status: PodVolumeBackupStatus = field(default_factory=PodVolumeBackupStatus)
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False, metadata=NOT_JSON)

    def to_json(self) -> dict[str, Any]:
        return {"kind": "PodVolumeBackup", "apiVersion": API_V1, **encode(self)}


# -- volume info (backups/<name>/<name>-volumeinfo.json.gz, Velero >= 1.13) ---------------------

POD_VOLUME_BACKUP = "PodVolumeBackup"
CSI_SNAPSHOT = "CSISnapshot"
NATIVE_SNAPSHOT = "NativeSnapshot"


@dataclass
class CSISnapshotInfo:
    snapshot_handle: str = ""
    size: int = 0
    driver: str = ""
    vsc_name: str = ""
    operation_id: str = field(default="", metadata={"json": "operationID"})
    ready_to_use: bool | None = None


@dataclass
class SnapshotDataMovementInfo:
    data_mover: str = ""
    uploader_type: str = ""
    retained_snapshot: str = ""
    snapshot_handle: str = ""  # the repository snapshot id
    operation_id: str = field(default="", metadata={"json": "operationID"})
    size: int = 0
    incremental_size: int = 0
    phase: str = ""


@dataclass
class NativeSnapshotInfo:
    snapshot_handle: str = ""
    volume_type: str = ""
    volume_az: str = field(default="", metadata={"json": "volumeAZ"})
    iops: str = ""
    phase: str = ""
    failure_reason: str = ""


@dataclass
class PodVolumeInfo:
    snapshot_handle: str = ""  # PodVolumeBackup.status.snapshotID
    size: int = 0
    uploader_type: str = ""
    volume_name: str = ""
    pod_name: str = ""
    pod_namespace: str = ""
    node_name: str = ""
    phase: str = ""


@dataclass
class PVInfo:
    reclaim_policy: str = ""
    labels: dict[str, str] = field(default_factory=dict)


@dataclass
class VolumeInfo:
    pvc_name: str = ""
    pvc_namespace: str = ""
    pv_name: str = ""
    backup_method: str = ""
    snapshot_data_moved: bool = False
    preserve_local_snapshot: bool = False
    skipped: bool = False
    skipped_reason: str = ""
    start_timestamp: datetime | None = None
    completion_timestamp: datetime | None = None
    result: str = ""  # "succeeded" / "failed"
    csi_snapshot_info: CSISnapshotInfo | None = None
    snapshot_data_movement_info: SnapshotDataMovementInfo | None = None
    native_snapshot_info: NativeSnapshotInfo | None = None
    pvb_info: PodVolumeInfo | None = None
    pv_info: PVInfo | None = None


# -- results (backups/<name>/<name>-results.gz) ----------------------------------------------


@dataclass
class Result:
    velero: list[str] = field(default_factory=list)
    cluster: list[str] = field(default_factory=list)
    namespaces: dict[str, list[str]] = field(default_factory=dict)

    def count(self) -> int:
        return len(self.velero) + len(self.cluster) + sum(map(len, self.namespaces.values()))


@dataclass
class BackupResults:
    errors: Result = field(default_factory=Result)
    warnings: Result = field(default_factory=Result)


# -- cluster-side objects the mover server and `kbrowse` work with ---------------------------


@dataclass
class ScheduleSpec:
    template: BackupSpec = field(default_factory=BackupSpec)
    schedule: str = ""
    use_owner_references_in_backup: bool | None = None
    paused: bool = False
    skip_immediately: bool | None = None


@dataclass
class ScheduleStatus:
    phase: str = ""
    last_backup: datetime | None = None
    last_skipped: datetime | None = None
    validation_errors: list[str] = field(default_factory=list)


@dataclass
class Schedule:
    metadata: ObjectMeta = field(default_factory=ObjectMeta)
    spec: ScheduleSpec = field(default_factory=ScheduleSpec)
    status: ScheduleStatus = field(default_factory=ScheduleStatus)
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False, metadata=NOT_JSON)


@dataclass
class ObjectStorageLocation:
    bucket: str = ""
    prefix: str = ""


@dataclass
class BackupStorageLocationSpec:
    provider: str = ""
    object_storage: ObjectStorageLocation = field(default_factory=ObjectStorageLocation)
    config: dict[str, str] = field(default_factory=dict)
    default: bool = False
    access_mode: str = ""
    backup_sync_period: str | None = None
    validation_frequency: str | None = None


@dataclass
class BackupStorageLocationStatus:
    phase: str = ""
    last_synced_time: datetime | None = None
    last_validation_time: datetime | None = None
    message: str = ""


@dataclass
class BackupStorageLocation:
    metadata: ObjectMeta = field(default_factory=ObjectMeta)
    spec: BackupStorageLocationSpec = field(default_factory=BackupStorageLocationSpec)
    status: BackupStorageLocationStatus = field(default_factory=BackupStorageLocationStatus)
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False, metadata=NOT_JSON)


@dataclass
class DeleteBackupRequestStatus:
    phase: str = ""
    errors: list[str] = field(default_factory=list)


@dataclass
class DeleteBackupRequest:
    metadata: ObjectMeta = field(default_factory=ObjectMeta)
    spec: dict[str, str] = field(default_factory=dict)  # {"backupName": ...}
    status: DeleteBackupRequestStatus = field(default_factory=DeleteBackupRequestStatus)
