"""Velero's CSI snapshot data movement, as plain data and functions: the DataUpload object
(``velero.io/v2alpha1``) that carries one volume's upload to a node agent, how the snapshot
class of a claim is chosen, the repository tags of a moved volume, and its ``<backup>-volumeinfo``
entry.

Field names, labels and annotations follow Velero's ``pkg/apis/velero/v2alpha1`` and its CSI
plugin; the restore side (DataDownload) reads backed-up DataUploads through :class:`DataUpload`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from mover.errors import RepoError
from mover.velero import labels
from mover.velero.objects import (
    CSI_SNAPSHOT,
    CSISnapshotInfo,
    ObjectMeta,
    SnapshotDataMovementInfo,
    VolumeInfo,
    encode,
)
from mover.velero.podvolumes import UPLOADER

Obj = dict[str, Any]

API_V2ALPHA1 = "velero.io/v2alpha1"
SNAPSHOT_TYPE_CSI = "CSI"
DATA_MOVER = "velero"  # spec.datamover: "" or "velero" is Velero's built-in mover, this one
FINAL_PHASES = ("Completed", "Failed", "Canceled")

# The VolumeSnapshotClass chosen for a driver: the one labelled so; a Backup annotation
# ``velero.io/csi-volumesnapshot-class_<driver>`` or a claim annotation names one instead.
SNAPSHOT_CLASS_LABEL = "velero.io/csi-volumesnapshot-class"
BACKUP_CLASS_ANNOTATION_PREFIX = "velero.io/csi-volumesnapshot-class_"
PVC_CLASS_ANNOTATION = "velero.io/csi-volumesnapshot-class"


@dataclass
class CSISnapshotSpec:
    volume_snapshot: str = ""  # in the source namespace
    storage_class: str = ""  # the source claim's
    snapshot_class: str = ""
    driver: str = ""


@dataclass
class DataUploadSpec:
    snapshot_type: str = ""
    csi_snapshot: CSISnapshotSpec | None = None
    source_pvc: str = field(default="", metadata={"json": "sourcePVC"})
    source_namespace: str = ""
    backup_storage_location: str = ""
    data_mover: str = field(default="", metadata={"json": "datamover"})
    operation_timeout: str = ""  # a Go duration; how long the snapshot and the exposure may take
    cancel: bool = False


@dataclass
class DataUploadProgress:
    total_bytes: int = 0
    bytes_done: int = 0


@dataclass
class DataUploadStatus:
    phase: str = ""  # New -> Accepted -> Prepared -> InProgress [-> Canceling] -> Completed / Failed / Canceled
    path: str = ""
    snapshot_id: str = field(default="", metadata={"json": "snapshotID"})
    message: str = ""
    start_timestamp: datetime | None = None
    completion_timestamp: datetime | None = None
    progress: DataUploadProgress = field(default_factory=DataUploadProgress)
    node: str = ""  # the node that moved the data
    accepted_by_node: str = ""  # the node that made the snapshot's backup claim and pod
    accepted_timestamp: datetime | None = None
    node_os: str = field(default="", metadata={"json": "nodeOS"})  # the moving node's, for the restore's


@dataclass
class DataUpload:
    metadata: ObjectMeta = field(default_factory=ObjectMeta)
    spec: DataUploadSpec = field(default_factory=DataUploadSpec)
    status: DataUploadStatus = field(default_factory=DataUploadStatus)


def snapshot_class(backup: Obj, pvc: Obj, driver: str, classes: list[Obj]) -> str:
    """The VolumeSnapshotClass to snapshot ``pvc`` (on ``driver``) with, as Velero picks it:
    the claim's annotation, then the backup's per-driver annotation, then the one class of the
    driver labelled ``velero.io/csi-volumesnapshot-class: "true"``. RepoError saying what to
    do when none (or no single one) fits."""
    of_driver = {c["metadata"]["name"]: c for c in classes if c.get("driver") == driver}
    where = f"claim {pvc['metadata'].get('namespace')}/{pvc['metadata']['name']}"
    for named, source in (((pvc["metadata"].get("annotations") or {}).get(PVC_CLASS_ANNOTATION), f"{where}'s annotation"),
                          ((backup["metadata"].get("annotations") or {}).get(BACKUP_CLASS_ANNOTATION_PREFIX + driver),
                           "the backup's annotation")):
        if named:
            if named not in of_driver:
                raise RepoError(f"{where}: volume snapshot class {named} named by {source} does not exist for "
                                f"driver {driver}")
            return named
    labelled = sorted(n for n, c in of_driver.items()
                      if (c["metadata"].get("labels") or {}).get(SNAPSHOT_CLASS_LABEL) == "true")
    if len(labelled) != 1:
        found = "none" if not labelled else ", ".join(labelled)
        raise RepoError(f"{where}: failed to get the volume snapshot class for driver {driver}: label one class "
                        f"{SNAPSHOT_CLASS_LABEL}=\"true\" (labelled now: {found})")
    return labelled[0]


def new_data_upload(backup: Obj, pvc: Obj, spec: DataUploadSpec) -> Obj:
    """The DataUpload of one claim of ``backup``, owned by it (Velero names it after the backup)."""
    bmeta = backup["metadata"]
    return {"apiVersion": API_V2ALPHA1, "kind": "DataUpload", "metadata": {
        "generateName": f"{bmeta['name']}-", "namespace": bmeta["namespace"],
        "labels": {labels.BACKUP_NAME: bmeta["name"], labels.BACKUP_UID: bmeta.get("uid", ""),
                   labels.PVC_UID: pvc["metadata"].get("uid", "")},
        "ownerReferences": [{"apiVersion": "velero.io/v1", "kind": "Backup", "name": bmeta["name"],
                             "uid": bmeta.get("uid", ""), "controller": True}],
    }, "spec": encode(spec)}


def snapshot_tags(du: DataUpload, pvc_uid: str) -> dict[str, str]:
    """The repository snapshot's tags: they name the namespace and the claim, so the next
    backup of the same claim finds this one as its parent."""
    return {"backup": du.metadata.labels.get(labels.BACKUP_NAME, ""),
            "backup-uid": du.metadata.labels.get(labels.BACKUP_UID, ""),
            "ns": du.spec.source_namespace, "pvc": du.spec.source_pvc, "pvc-uid": pvc_uid,
            "data-upload": du.metadata.name}


def volume_info(du: DataUpload, pv_name: str = "") -> VolumeInfo:
    """The ``<backup>-volumeinfo`` entry of one moved volume."""
    csi = du.spec.csi_snapshot or CSISnapshotSpec()
    return VolumeInfo(
        pvc_name=du.spec.source_pvc, pvc_namespace=du.spec.source_namespace, pv_name=pv_name,
        backup_method=CSI_SNAPSHOT, snapshot_data_moved=True,
        start_timestamp=du.status.start_timestamp, completion_timestamp=du.status.completion_timestamp,
        result="succeeded" if du.status.phase == "Completed" else "failed",
        csi_snapshot_info=CSISnapshotInfo(driver=csi.driver, operation_id=du.metadata.name),
        snapshot_data_movement_info=SnapshotDataMovementInfo(
            data_mover=DATA_MOVER, uploader_type=UPLOADER, snapshot_handle=du.status.snapshot_id,
            operation_id=du.metadata.name, size=du.status.progress.total_bytes, phase=du.status.phase))
