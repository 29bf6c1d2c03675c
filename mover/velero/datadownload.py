"""Velero's DataDownload (``velero.io/v2alpha1``): the restore of one data-moved CSI volume,
and the objects its restore side is made of, as plain data and pure functions.

The flow is Velero's (``pkg/restore/actions/csi/pvc_action.go``, ``pkg/exposer/generic_restore.go``):
the restore finds the volume's DataUpload result in the backup, creates the claim with its
volume name cleared and a selector on ``velero.io/dynamic-pv-restore`` (so no provisioner
gives it a volume of its own), and a DataDownload. A node agent accepts it and exposes it: a
restore PVC shaped like the target claim, in the agent's namespace, and a restore pod that
mounts it. The agent of the node the pod runs on writes the data into that volume, then hands
the volume to the target claim (its ``claimRef`` moves, its reclaim policy is kept) and
removes the helpers.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from mover.golang.duration import SECOND, parse_duration
from mover.velero import labels
from mover.velero.datamovement import DataUpload
from mover.velero.objects import ObjectMeta, VolumeOperationProgress, decode, encode

Obj = dict[str, Any]

API_V2ALPHA1 = "velero.io/v2alpha1"
DYNAMIC_PV_RESTORE = "velero.io/dynamic-pv-restore"  # the label joining a restored claim to its volume
DATA_DOWNLOAD_LABEL = "velero.io/data-download"  # on the restore PVC and pod: whose helpers they are
FINAL_PHASES = ("Completed", "Failed", "Canceled")
RESTORE_VOLUME = "restore-data"  # the restore pod's volume name
BLOCK_DEVICE_PATH = "/dev/restore"  # where the restore pod sees a block volume
DEFAULT_OPERATION_TIMEOUT = "4h0m0s"  # Velero's default of a restore's itemOperationTimeout


@dataclass
class TargetVolume:
    pvc: str = ""
    pv: str = ""
    namespace: str = ""


@dataclass
class DataDownloadSpec:
    target_volume: TargetVolume = field(default_factory=TargetVolume)
    backup_storage_location: str = ""
    datamover: str = ""
    snapshot_id: str = field(default="", metadata={"json": "snapshotID"})
    source_namespace: str = ""
    operation_timeout: str = ""
    data_mover_config: dict[str, str] = field(default_factory=dict)
    cancel: bool = False
    node_os: str = field(default="", metadata={"json": "nodeOS"})


@dataclass
class DataDownloadStatus:
    phase: str = ""
    message: str = ""
    start_timestamp: datetime | None = None
    completion_timestamp: datetime | None = None
    progress: VolumeOperationProgress = field(default_factory=VolumeOperationProgress)
    node: str = ""
    accepted_by_node: str = ""
    accepted_timestamp: datetime | None = None


@dataclass
class DataDownload:
    metadata: ObjectMeta = field(default_factory=ObjectMeta)
    spec: DataDownloadSpec = field(default_factory=DataDownloadSpec)
    status: DataDownloadStatus = field(default_factory=DataDownloadStatus)

    def to_json(self) -> Obj:
        return {"apiVersion": API_V2ALPHA1, "kind": "DataDownload", **encode(self)}


@dataclass(frozen=True)
class DataUploadResult:
    """What a restore needs of a completed DataUpload (Velero's DataUploadResult)."""

    source_namespace: str
    source_pvc: str
    backup_storage_location: str
    data_mover: str
    snapshot_id: str
    node_os: str = ""


def upload_result(data_upload: Obj) -> DataUploadResult | None:
    """The result of a DataUpload as backed up; None unless it completed with a snapshot."""
    du = decode(DataUpload, data_upload)
    if du.status.phase != "Completed" or not du.status.snapshot_id:
        return None
    return DataUploadResult(du.spec.source_namespace, du.spec.source_pvc, du.spec.backup_storage_location,
                            du.spec.data_mover, du.status.snapshot_id, du.status.node_os)


def timeout_seconds(text: str | None) -> float:
    """An operation timeout (a Go duration) in seconds; Velero's default when unset or unreadable."""
    try:
        return parse_duration(text or DEFAULT_OPERATION_TIMEOUT) / SECOND
    except ValueError:
        return parse_duration(DEFAULT_OPERATION_TIMEOUT) / SECOND


def owner_reference(obj: Obj) -> Obj:
    meta = obj["metadata"]
    return {"apiVersion": obj.get("apiVersion", ""), "kind": obj.get("kind", ""), "name": meta["name"],
            "uid": meta.get("uid", ""), "controller": True}


def new_data_download(restore: Obj, result: DataUploadResult, namespace: str, pvc: str,
                      timeout: str = DEFAULT_OPERATION_TIMEOUT) -> Obj:
    """The DataDownload restoring ``result`` into the claim ``namespace/pvc``."""
    rmeta = restore["metadata"]
    dd = DataDownload(
        metadata=ObjectMeta(namespace=rmeta["namespace"], labels={
            labels.RESTORE_NAME: rmeta["name"], labels.RESTORE_UID: rmeta.get("uid", "")}),
        spec=DataDownloadSpec(
            target_volume=TargetVolume(pvc=pvc, namespace=namespace),
            backup_storage_location=result.backup_storage_location, datamover=result.data_mover,
            snapshot_id=result.snapshot_id, source_namespace=result.source_namespace,
            operation_timeout=timeout, node_os=result.node_os))
    body = dd.to_json()
    body["metadata"]["generateName"] = f"{rmeta['name']}-"
    body["metadata"]["ownerReferences"] = [owner_reference({"apiVersion": "velero.io/v1", "kind": "Restore",
                                                            **restore})]
    body["spec"]["targetVolume"].setdefault("pv", "")  # required by the CRD, empty until Velero knows it
    return body


def claim_for_download(pvc: Obj, selector_value: str) -> None:
    """Shape a claim to be restored (in place) so it waits for the volume its DataDownload
    hands over: no volume name, a selector only that volume will match."""
    spec = pvc.setdefault("spec", {})
    spec.pop("volumeName", None)
    spec.pop("dataSource", None)
    spec.pop("dataSourceRef", None)
    selector = spec.get("selector") or {}
    selector["matchLabels"] = {**(selector.get("matchLabels") or {}), DYNAMIC_PV_RESTORE: selector_value}
    spec["selector"] = selector


def is_block(pvc: Obj) -> bool:
    return (pvc.get("spec") or {}).get("volumeMode") == "Block"


def restore_pvc(dd: Obj, target: Obj) -> Obj:
    """The restore PVC of a DataDownload: the target claim's class, size, access modes and
    volume mode, in the DataDownload's namespace, owned by it."""
    source = target.get("spec") or {}
    spec = {k: copy.deepcopy(source[k]) for k in ("accessModes", "resources", "storageClassName", "volumeMode")
            if k in source}
    name = dd["metadata"]["name"]
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {
        "name": name, "namespace": dd["metadata"]["namespace"], "labels": {DATA_DOWNLOAD_LABEL: name},
        "ownerReferences": [owner_reference(dd)]}, "spec": spec}


def restore_pod(dd: Obj, block: bool, image: str) -> Obj:
    """The restore pod: it only holds the restore PVC on a node, for that node's agent to fill."""
    name = dd["metadata"]["name"]
    container: Obj = {"name": name, "image": image, "imagePullPolicy": "IfNotPresent",
                      "command": ["sleep", "infinity"]}
    if block:
        container["volumeDevices"] = [{"name": RESTORE_VOLUME, "devicePath": BLOCK_DEVICE_PATH}]
    else:
        container["volumeMounts"] = [{"name": RESTORE_VOLUME, "mountPath": f"/{RESTORE_VOLUME}"}]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {
        "name": name, "namespace": dd["metadata"]["namespace"], "labels": {DATA_DOWNLOAD_LABEL: name},
        "ownerReferences": [owner_reference(dd)]}, "spec": {
        "containers": [container], "restartPolicy": "Never", "terminationGracePeriodSeconds": 0,
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "volumes": [{"name": RESTORE_VOLUME, "persistentVolumeClaim": {"claimName": name}}]}}
