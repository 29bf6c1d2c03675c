"""Velero's file-system backup of pod volumes, as plain functions: which volumes of a pod are
backed up, the PodVolumeBackup and PodVolumeRestore objects that carry the work to the node
agent, the restore-wait init container, and the volume entries of ``<backup>-volumeinfo``.

Names, labels, tags and rules follow Velero's ``pkg/podvolume`` and ``pkg/util/podvolume``.
Objects are the JSON the API server speaks (dicts), as the controllers handle them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from mover import __version__
from mover.velero import labels, layout
from mover.velero.objects import (
    POD_VOLUME_BACKUP,
    PodVolumeBackup,
    PodVolumeInfo,
    VolumeInfo,
)
from mover.view.snapshot import Snapshot

Obj = dict[str, Any]

BACKUP_VOLUMES_ANNOTATION = "backup.velero.io/backup-volumes"
BACKUP_VOLUMES_EXCLUDES_ANNOTATION = "backup.velero.io/backup-volumes-excludes"
PVC_NAME_ANNOTATION = "velero.io/pvc-name"

UPLOADER = layout.RESTIC  # the mover writes restic's format
SNAPSHOT_HOST = "velero"  # the host Velero's restic uploader records in every snapshot
RESTORE_WAIT = "restore-wait"  # the init container's name, as Velero's
RESTORE_HELPER_IMAGE = f"kbrowse/mover:{__version__}"  # the mover's image, which runs `mover restore-wait`
RESTORES_DIR = "/restores"  # where the init container mounts each volume being restored
MARKER_DIR = ".velero"  # <volume>/.velero/<restore-uid>: "this volume is restored"
FINAL_PHASES = ("Completed", "Failed", "Canceled")

# Never backed up: not under the kubelet's pod directory (hostPath), or rebuilt from the API
# by the kubelet (secrets, config maps, projected and downward-API volumes, service account tokens).
_NEVER = ("hostPath", "secret", "configMap", "projected", "downwardAPI")


def _names(text: str | None) -> list[str]:
    return [n.strip() for n in (text or "").split(",") if n.strip()]


def volumes_to_back_up(pod: Obj, default_to_fs_backup: bool) -> tuple[list[str], list[str]]:
    """The pod's volumes to back up, and a reason for each volume left out that the operator
    may have meant (Velero logs those). Opt-in: the ``backup-volumes`` annotation; with
    ``defaultVolumesToFsBackup``: every volume but the ``backup-volumes-excludes`` ones."""
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    spec = pod.get("spec") or {}
    volumes = {v.get("name", ""): v for v in spec.get("volumes") or []}
    mounted = {m.get("name") for c in spec.get("containers") or [] for m in c.get("volumeMounts") or []}
    if default_to_fs_backup:
        excluded = set(_names(annotations.get(BACKUP_VOLUMES_EXCLUDES_ANNOTATION)))
        wanted = [n for n in volumes if n not in excluded]
        silent = True  # volumes nobody asked for by name are left out without a word
    else:
        wanted = _names(annotations.get(BACKUP_VOLUMES_ANNOTATION))
        silent = False
    where = f"pod {(pod.get('metadata') or {}).get('namespace')}/{(pod.get('metadata') or {}).get('name')}"
    chosen, skipped = [], []
    for name in wanted:
        volume = volumes.get(name)
        if volume is None:
            skipped.append(f"No volume named {name} found in {where}, skipping")
            continue
        kind = next((k for k in _NEVER if k in volume), None)
        if kind is not None or name.startswith("default-token"):
            if not silent:
                skipped.append(f"Volume {name} in {where} is a {kind or 'service account token'} volume, "
                               "which file-system backup does not support, skipping")
            continue
        if name not in mounted:
            skipped.append(f"Volume {name} is declared in {where} but not mounted by any container, skipping")
            continue
        chosen.append(name)
    return chosen, skipped


def claim_name(pod: Obj, volume: str) -> str:
    """The claim a pod volume mounts, "" for other volumes."""
    for v in (pod.get("spec") or {}).get("volumes") or []:
        if v.get("name") == volume:
            return (v.get("persistentVolumeClaim") or {}).get("claimName", "")
    return ""


def volume_dir_name(pod: Obj, volume: str, pvc: Obj | None) -> str:
    """The directory the kubelet keeps the volume in, under ``volumes/<plugin>/``: the
    persistent volume's name for a claim, the pod volume's name otherwise."""
    if pvc is not None:
        return (pvc.get("spec") or {}).get("volumeName", "")
    return volume


def repo_identifier(bsl: Obj, namespace: str) -> str:
    """Velero's ``spec.repoIdentifier``: the restic repository URL of a namespace's volumes."""
    spec = bsl.get("spec") or {}
    storage = spec.get("objectStorage") or {}
    path = "/".join(p for p in (storage.get("bucket", "").rstrip("/"), (storage.get("prefix") or "").strip("/"),
                                layout.repository_prefix(UPLOADER, namespace)) if p)
    if spec.get("provider", "") in ("aws", "velero.io/aws"):
        config = spec.get("config") or {}
        endpoint = (config.get("s3Url") or "").rstrip("/") or \
            f"s3-{config.get('region') or 'us-east-1'}.amazonaws.com"
        return f"s3:{endpoint}/{path}"
    return path


def new_pod_volume_backup(backup: Obj, pod: Obj, volume: str, repo_id: str, pvc: Obj | None) -> Obj:
    bmeta, pmeta = backup["metadata"], pod["metadata"]
    marks = {labels.BACKUP_NAME: bmeta["name"], labels.BACKUP_UID: bmeta.get("uid", "")}
    tags = {"backup": bmeta["name"], "backup-uid": bmeta.get("uid", ""), "pod": pmeta["name"],
            "pod-uid": pmeta.get("uid", ""), "ns": pmeta["namespace"], "volume": volume}
    meta: Obj = {"generateName": f"{bmeta['name']}-", "namespace": bmeta["namespace"], "labels": marks,
                 "ownerReferences": [{"apiVersion": "velero.io/v1", "kind": "Backup", "name": bmeta["name"],
                                      "uid": bmeta.get("uid", ""), "controller": True}]}
    if pvc is not None:
        meta["annotations"] = {PVC_NAME_ANNOTATION: pvc["metadata"]["name"]}
        marks[labels.PVC_UID] = pvc["metadata"].get("uid", "")
        tags["pvc-uid"] = pvc["metadata"].get("uid", "")
    return {"apiVersion": "velero.io/v1", "kind": "PodVolumeBackup", "metadata": meta, "spec": {
        "node": (pod.get("spec") or {}).get("nodeName", ""),
        "pod": {"kind": "Pod", "namespace": pmeta["namespace"], "name": pmeta["name"], "uid": pmeta.get("uid", "")},
        "volume": volume,
        "tags": tags,
        "backupStorageLocation": (backup.get("spec") or {}).get("storageLocation", ""),
        "repoIdentifier": repo_id,
        "uploaderType": UPLOADER,
    }}


def latest_of_same_volume(snapshots: Iterable[Snapshot], tags: dict[str, str]) -> Snapshot | None:
    """The parent of a pod volume's snapshot: the latest of the same claim (tag ``pvc-uid``),
    or of the same pod volume for volumes without a claim."""
    keys = ("pvc-uid",) if tags.get("pvc-uid") else ("ns", "pod", "volume")
    wanted = {f"{k}={tags.get(k, '')}" for k in keys}
    same = [s for s in snapshots if wanted <= set(s.tags)]
    return max(same, key=lambda s: (s.time, s.id)) if same else None


def new_pod_volume_restore(restore: Obj, pod: Obj, pvb: PodVolumeBackup, repo_id: str) -> Obj:
    """The restore of one backed-up volume into ``pod``, the pod the restore created."""
    rmeta, pmeta = restore["metadata"], pod["metadata"]
    return {"apiVersion": "velero.io/v1", "kind": "PodVolumeRestore", "metadata": {
        "generateName": f"{rmeta['name']}-", "namespace": rmeta["namespace"],
        "labels": {labels.RESTORE_NAME: rmeta["name"], labels.RESTORE_UID: rmeta.get("uid", ""),
                   labels.POD_UID: pmeta.get("uid", "")},
        "ownerReferences": [{"apiVersion": "velero.io/v1", "kind": "Restore", "name": rmeta["name"],
                             "uid": rmeta.get("uid", ""), "controller": True}],
    }, "spec": {
        "pod": {"kind": "Pod", "namespace": pmeta["namespace"], "name": pmeta["name"], "uid": pmeta.get("uid", "")},
        "volume": pvb.spec.volume,
        "backupStorageLocation": pvb.spec.backup_storage_location,
        "repoIdentifier": repo_id,
        "uploaderType": pvb.spec.uploader_type or UPLOADER,
        "snapshotID": pvb.status.snapshot_id,
        "sourceNamespace": pvb.spec.pod.namespace,
        "snapshotSize": pvb.status.progress.total_bytes,
    }}


def restorable(pvbs: list[PodVolumeBackup], namespace: str, pod: str) -> list[PodVolumeBackup]:
    """The completed volume backups of the pod ``namespace/pod`` (as backed up)."""
    return [p for p in pvbs if p.spec.pod.namespace == namespace and p.spec.pod.name == pod
            and p.status.phase == "Completed" and p.status.snapshot_id]


def add_restore_wait(pod: Obj, volumes: list[str], restore_uid: str, image: str) -> None:
    """Put Velero's restore-wait init container first in ``pod`` (in place): it holds the pod's
    containers back until the node agent has written every volume's marker."""
    spec = pod.setdefault("spec", {})
    container = {
        "name": RESTORE_WAIT, "image": image, "imagePullPolicy": "IfNotPresent",
        "command": ["mover", "restore-wait"], "args": [restore_uid],
        "env": [{"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
        "volumeMounts": [{"name": v, "mountPath": f"{RESTORES_DIR}/{v}"} for v in volumes],
    }
    others = [c for c in spec.get("initContainers") or [] if c.get("name") != RESTORE_WAIT]
    spec["initContainers"] = [container, *others]


def init_container_running(pod: Obj) -> bool:
    """Whether the kubelet reports the restore-wait init container as running."""
    for status in (pod.get("status") or {}).get("initContainerStatuses") or []:
        if status.get("name") == RESTORE_WAIT:
            return "running" in (status.get("state") or {})
    return False


def volume_info(pvb: PodVolumeBackup, pv_name: str = "") -> VolumeInfo:
    """The ``<backup>-volumeinfo`` entry of one pod volume backup."""
    pvc = pvb.metadata.annotations.get(PVC_NAME_ANNOTATION, "")
    return VolumeInfo(
        pvc_name=pvc, pvc_namespace=pvb.spec.pod.namespace if pvc else "", pv_name=pv_name,
        backup_method=POD_VOLUME_BACKUP, start_timestamp=pvb.status.start_timestamp,
        completion_timestamp=pvb.status.completion_timestamp,
        result="succeeded" if pvb.status.phase == "Completed" else "failed",
        pvb_info=PodVolumeInfo(snapshot_handle=pvb.status.snapshot_id, size=pvb.status.progress.total_bytes,
                               uploader_type=pvb.spec.uploader_type, volume_name=pvb.spec.volume,
                               pod_name=pvb.spec.pod.name, pod_namespace=pvb.spec.pod.namespace,
                               node_name=pvb.spec.node, phase=pvb.status.phase))
