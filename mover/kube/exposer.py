"""The CSI snapshot exposer: make a volume snapshot readable on some node, and take it away.

As Velero's ``pkg/exposer/csi_snapshot.go`` does it: the source claim's VolumeSnapshot (in
the claim's namespace) is moved into the mover's namespace by a static VolumeSnapshot and
VolumeSnapshotContent (made in that order) with the same snapshot handle; the source content is retained and removed
with its snapshot, so the storage snapshot survives the move. From it a backup claim is
provisioned, shaped by the node agent's backup-PVC config (``readOnly``: ReadOnlyMany, which
Ceph and others serve as a linked clone instead of a full copy), and an exposer pod mounts
it, so that the scheduler puts it on a node whose agent then reads the volume. The backup
snapshot, claim and pod are all named after the DataUpload; deleting the backup snapshot
(whose content keeps the source's deletion policy) deletes the storage snapshot.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mover.errors import RepoError
from mover.kube.framework.client import Kube, KubeError, Obj, Resource
from mover.kube.resources import PODS, PVCS, PVS, VOLUME_SNAPSHOT_CONTENTS, VOLUME_SNAPSHOTS
from mover.velero import labels
from mover.velero.datamovement import DataUpload
from mover.velero.nodeagentconfig import BackupPVC, NodeAgentConfig
from mover.velero.podvolumes import RESTORE_HELPER_IMAGE

SNAPSHOT_GROUP = "snapshot.storage.k8s.io"
DATA_UPLOAD_LABEL = "velero.io/data-upload"  # on the exposer's objects: whose they are
VOLUME_MOUNT = "/velero"  # where the exposer pod mounts (or attaches) the backup claim


@dataclass(frozen=True)
class Exposure:
    """Where a DataUpload's objects are."""

    namespace: str  # the mover's namespace: backup snapshot, claim and pod
    name: str  # the DataUpload's, and of each of its objects
    source_namespace: str
    source_snapshot: str


def exposure_of(du: DataUpload) -> Exposure:
    csi = du.spec.csi_snapshot
    return Exposure(du.metadata.namespace, du.metadata.name, du.spec.source_namespace,
                    csi.volume_snapshot if csi else "")


def snapshot_ready(kube: Kube, where: Exposure) -> tuple[bool, str]:
    """Whether the source snapshot is ready to use, and the error its controller reports."""
    vs = kube.get_or_none(VOLUME_SNAPSHOTS, where.source_namespace, where.source_snapshot)
    if vs is None:
        raise RepoError(f"volume snapshot {where.source_namespace}/{where.source_snapshot} does not exist")
    status = vs.get("status") or {}
    error = (status.get("error") or {}).get("message") or ""
    return bool(status.get("readyToUse")) and bool(status.get("boundVolumeSnapshotContentName")), error


def moved(kube: Kube, where: Exposure) -> bool:
    """Whether the source snapshot was already moved into the mover's namespace (its content,
    made after the backup snapshot, exists)."""
    return kube.get_or_none(VOLUME_SNAPSHOT_CONTENTS, None, where.name) is not None


def expose(kube: Kube, du: DataUpload, source_pvc: Obj, config: NodeAgentConfig, image: str = RESTORE_HELPER_IMAGE) -> None:
    """Create the backup snapshot, claim and pod of ``du`` (its source snapshot is ready);
    objects made by an earlier try are kept."""
    where = exposure_of(du)
    done = moved(kube, where)
    vs = kube.get(VOLUME_SNAPSHOTS, *((where.namespace, where.name) if done else
                                      (where.source_namespace, where.source_snapshot)))
    owner = [{"apiVersion": "velero.io/v2alpha1", "kind": "DataUpload", "name": where.name,
              "uid": du.metadata.uid, "controller": True}]
    marks = {DATA_UPLOAD_LABEL: where.name}
    content_name = (vs.get("status") or {}).get("boundVolumeSnapshotContentName") or ""
    content = None if done else kube.get_or_none(VOLUME_SNAPSHOT_CONTENTS, None, content_name)
    if content is not None:
        handle = (content.get("status") or {}).get("snapshotHandle")
        if not handle:
            raise RepoError(f"volume snapshot content {content_name} has no snapshot handle")
        spec = content.get("spec") or {}
        _create(kube, VOLUME_SNAPSHOTS, where.namespace, {
            "apiVersion": f"{SNAPSHOT_GROUP}/v1", "kind": "VolumeSnapshot",
            "metadata": {"name": where.name, "labels": marks, "ownerReferences": owner},
            "spec": {"source": {"volumeSnapshotContentName": where.name},
                     "volumeSnapshotClassName": (vs.get("spec") or {}).get("volumeSnapshotClassName")}})
        _create(kube, VOLUME_SNAPSHOT_CONTENTS, None, {
            "apiVersion": f"{SNAPSHOT_GROUP}/v1", "kind": "VolumeSnapshotContent",
            "metadata": {"name": where.name, "labels": marks},
            "spec": {"driver": spec.get("driver", ""), "deletionPolicy": spec.get("deletionPolicy", "Delete"),
                     "source": {"snapshotHandle": handle},
                     "volumeSnapshotClassName": spec.get("volumeSnapshotClassName"),
                     "volumeSnapshotRef": {"apiVersion": f"{SNAPSHOT_GROUP}/v1", "kind": "VolumeSnapshot",
                                           "namespace": where.namespace, "name": where.name}}})
        # The storage snapshot now belongs to the backup snapshot: let the source ones go without it.
        kube.patch(VOLUME_SNAPSHOT_CONTENTS, None, content_name, {"spec": {"deletionPolicy": "Retain"}})
        _delete(kube, VOLUME_SNAPSHOTS, where.source_namespace, where.source_snapshot)
        _delete(kube, VOLUME_SNAPSHOT_CONTENTS, None, content_name)
    elif not done:
        raise RepoError(f"volume snapshot content {content_name} of {where.source_namespace}/"
                        f"{where.source_snapshot} does not exist")
    shape = config.backup_pvc.get((source_pvc.get("spec") or {}).get("storageClassName") or "", BackupPVC())
    _create(kube, PVCS, where.namespace, backup_claim(where, source_pvc, vs, shape, marks, owner))
    _create(kube, PODS, where.namespace, exposer_pod(where, source_pvc, shape, marks, owner, image))


def backup_claim(where: Exposure, source_pvc: Obj, vs: Obj, shape: BackupPVC, marks: dict[str, str],
                 owner: list[Obj]) -> Obj:
    spec = source_pvc.get("spec") or {}
    size = (vs.get("status") or {}).get("restoreSize") or \
        ((spec.get("resources") or {}).get("requests") or {}).get("storage")
    body: Obj = {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                 "metadata": {"name": where.name, "labels": marks, "ownerReferences": owner},
                 "spec": {"accessModes": ["ReadOnlyMany" if shape.read_only else "ReadWriteOnce"],
                          "dataSource": {"apiGroup": SNAPSHOT_GROUP, "kind": "VolumeSnapshot", "name": where.name},
                          "resources": {"requests": {"storage": size}},
                          "volumeMode": spec.get("volumeMode") or "Filesystem"}}
    storage_class = shape.storage_class or spec.get("storageClassName")
    if storage_class:
        body["spec"]["storageClassName"] = storage_class
    return body


def exposer_pod(where: Exposure, source_pvc: Obj, shape: BackupPVC, marks: dict[str, str], owner: list[Obj],
                image: str) -> Obj:
    """A pod that holds the backup claim on a node and does nothing else."""
    block = (source_pvc.get("spec") or {}).get("volumeMode") == "Block"
    container: Obj = {"name": where.name, "image": image, "imagePullPolicy": "IfNotPresent",
                      "command": ["sleep", "infinity"]}
    if block:
        container["volumeDevices"] = [{"name": where.name, "devicePath": f"{VOLUME_MOUNT}/{where.name}"}]
    else:
        container["volumeMounts"] = [{"name": where.name, "mountPath": f"{VOLUME_MOUNT}/{where.name}",
                                      "readOnly": shape.read_only}]
    spec: Obj = {"containers": [container], "restartPolicy": "Never", "terminationGracePeriodSeconds": 0,
                 "volumes": [{"name": where.name, "persistentVolumeClaim": {"claimName": where.name,
                                                                            "readOnly": shape.read_only}}]}
    if shape.spc_no_relabeling:
        # SELinux type spc_t: the kubelet does not relabel every file of the (read-only) volume.
        spec["securityContext"] = {"seLinuxOptions": {"type": "spc_t"}}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": where.name, "labels": marks,
                                                            "ownerReferences": owner}, "spec": spec}


def exposes_device(pod: Obj) -> bool:
    """Whether the exposer pod attaches its claim as a block device (not a mounted file system)."""
    return any(c.get("volumeDevices") for c in (pod.get("spec") or {}).get("containers") or [])


def clean_up(kube: Kube, where: Exposure) -> list[str]:
    """Remove the exposer pod, the backup claim and its volume, the backup snapshot and the
    source snapshot, whichever exist; returns what could not be removed."""
    problems = []
    try:
        reclaim_backup_volume(kube, where)
    except KubeError as exc:
        problems.append(f"cannot have the backup volume of {where.namespace}/{where.name} deleted: {exc.message}")
    steps: list[tuple[Resource, str | None, str]] = [
        (PODS, where.namespace, where.name), (PVCS, where.namespace, where.name),
        (VOLUME_SNAPSHOTS, where.namespace, where.name)]
    if where.source_snapshot:
        steps.append((VOLUME_SNAPSHOTS, where.source_namespace, where.source_snapshot))
    for resource, namespace, name in steps:
        try:
            _delete(kube, resource, namespace, name)
        except KubeError as exc:
            problems.append(f"cannot delete {resource.kind} {namespace or ''}/{name}: {exc.message}")
    return problems


def reclaim_backup_volume(kube: Kube, where: Exposure) -> None:
    """Have the backup claim's volume deleted with the claim, whatever its storage class says
    (as Velero's exposer does): set before the data moves, so that a claim removed by the
    garbage collector (its DataUpload deleted with the Backup) takes its volume along too."""
    claim = kube.get_or_none(PVCS, where.namespace, where.name)
    volume = ((claim or {}).get("spec") or {}).get("volumeName")
    if not volume:
        return
    try:
        pv = kube.get(PVS, None, volume)
        if (pv.get("spec") or {}).get("persistentVolumeReclaimPolicy") != "Delete":
            kube.patch(PVS, None, volume, {"spec": {"persistentVolumeReclaimPolicy": "Delete"}})
    except KubeError as exc:
        if not exc.not_found:
            raise


def _create(kube: Kube, resource: Resource, namespace: str | None, body: Obj) -> None:
    try:
        kube.create(resource, namespace, body)
    except KubeError as exc:
        if not exc.already_exists:
            raise


def _delete(kube: Kube, resource: Resource, namespace: str | None, name: str) -> None:
    try:
        kube.delete(resource, namespace, name)
    except KubeError as exc:
        if not exc.not_found:
            raise


def volume_snapshot(backup: Obj, pvc: Obj, snapshot_class: str) -> Obj:
    """The source claim's VolumeSnapshot, in the claim's namespace, made by the backup."""
    bmeta, pmeta = backup["metadata"], pvc["metadata"]
    marks: dict[str, Any] = {labels.BACKUP_NAME: bmeta["name"], labels.BACKUP_UID: bmeta.get("uid", "")}
    return {"apiVersion": f"{SNAPSHOT_GROUP}/v1", "kind": "VolumeSnapshot", "metadata": {
        "generateName": f"velero-{pmeta['name']}-", "namespace": pmeta["namespace"], "labels": marks},
        "spec": {"source": {"persistentVolumeClaimName": pmeta["name"]}, "volumeSnapshotClassName": snapshot_class}}
