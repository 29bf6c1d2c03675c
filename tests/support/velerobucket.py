"""Build a Velero-shaped backup storage location the way Velero 1.10-1.16 fills one.

Volume data goes in with **restic itself**, as Velero's node agent runs it: one repository per
namespace at ``<bsl>/restic/<ns>``, ``restic backup . --host velero --tag backup=... ...`` with
the volume directory as working directory, and the snapshot's 8-hex short id recorded in
``PodVolumeBackup.status.snapshotID``. Metadata files are written by `mover.velero.writer`
(the tests check its output against Velero's layout separately). Built on disk; the tests copy
it into S3 key for key, since restic's S3 objects are named as its local files.

Backups:
- ``web-backup``: Velero >= 1.13 (volume info + PodVolumeBackups), namespaces shop and ledger,
  one warning in its results;
- ``legacy-backup``: Velero 1.10 style, PodVolumeBackups only (no volume info);
- ``kopia-backup``: a kopia pod volume backup, its data under ``kopia/shop``.
The ledger repository has its own password (``LEDGER_PASSWORD``), shop's is Velero's default.
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from mover.velero.objects import (
    Backup,
    BackupProgress,
    BackupResults,
    BackupSpec,
    BackupStatus,
    HookStatus,
    ObjectMeta,
    ObjectReference,
    PodVolumeBackup,
    PodVolumeBackupSpec,
    PodVolumeBackupStatus,
    PodVolumeInfo,
    Result,
    SnapshotDataMovementInfo,
    VolumeInfo,
    VolumeOperationProgress,
)
from mover.velero.objectstore import LocalStore
from mover.velero.repopassword import DEFAULT_PASSWORD
from mover.velero.tarball import BackedUpItem
from mover.velero.writer import BackupRecord, write_backup
from tests.support.restic_cli import Restic

LEDGER_PASSWORD = "ledger-repo-password"
TTL = timedelta(hours=720)
# web-backup expires in 29.5 days ("29d"); the two older ones expired 10 days ago ("10d ago").
NOW = datetime.now(UTC).replace(microsecond=0)
STARTED = NOW - timedelta(hours=12)
OLD_STARTED = NOW - timedelta(days=40)


@dataclass
class PodVolume:
    namespace: str
    pod: str
    volume: str
    pvc: str  # "" for an emptyDir
    files: dict[str, bytes]
    pod_uid: str = field(default_factory=lambda: str(uuid.uuid4()))
    pvc_uid: str = field(default_factory=lambda: str(uuid.uuid4()))
    snapshot_id: str = ""  # full id, set once backed up


@dataclass
class BuiltBucket:
    root: Path
    volumes: dict[str, PodVolume]  # "ns/pod/volume" -> volume (of web-backup)
    volume_dirs: dict[str, Path]  # the same keys -> the volume's directory on the "node"
    legacy: PodVolume
    items: list[BackedUpItem]


def _items() -> list[BackedUpItem]:
    shop = {"namespace": "shop"}
    return [
        BackedUpItem("deployments", {"apiVersion": "apps/v1", "kind": "Deployment",
                                     "metadata": {"name": "web", **shop, "labels": {"app": "web"}},
                                     "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}}}}),
        BackedUpItem("configmaps", {"apiVersion": "v1", "kind": "ConfigMap",
                                    "metadata": {"name": "web-config", **shop},
                                    "data": {"nginx.conf": "server { listen 80; }\n"}}),
        BackedUpItem("secrets", {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                                 "metadata": {"name": "web-tls", **shop},
                                 "data": {"tls.key": "c2VjcmV0"}}),
        BackedUpItem("services", {"apiVersion": "v1", "kind": "Service",
                                  "metadata": {"name": "web", **shop},
                                  "spec": {"ports": [{"port": 80}], "selector": {"app": "web"}}}),
        BackedUpItem("persistentvolumeclaims", {
            "apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": "web-html", **shop},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}),
        BackedUpItem("pods", {"apiVersion": "v1", "kind": "Pod",
                              "metadata": {"name": "db-0", "namespace": "ledger"}}),
        BackedUpItem("namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                    "metadata": {"name": "shop"}}),
        BackedUpItem("clusterroles", {"apiVersion": "rbac.authorization.k8s.io/v1",
                                      "kind": "ClusterRole", "metadata": {"name": "web-reader"},
                                      "rules": [{"verbs": ["get"], "resources": ["pods"],
                                                 "apiGroups": [""]}]}),
    ]


def pvc_item(namespace: str, name: str, mode: str) -> BackedUpItem:
    """A claim of volumeMode ``mode`` ("Filesystem" or "Block") as the backup holds it."""
    return BackedUpItem("persistentvolumeclaims", {
        "apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"accessModes": ["ReadWriteOnce"], "volumeMode": mode,
                 "resources": {"requests": {"storage": "1Gi"}}}})


def data_upload(namespace: str, pvc: str, uploader: str, snapshot: str, size: int) -> VolumeInfo:
    """The volume info of a claim the data mover moved into the ``uploader`` repository."""
    return VolumeInfo(
        pvc_name=pvc, pvc_namespace=namespace, pv_name=f"pvc-{pvc}", backup_method="CSISnapshot",
        snapshot_data_moved=True, result="succeeded", start_timestamp=STARTED,
        completion_timestamp=STARTED + timedelta(seconds=9),
        snapshot_data_movement_info=SnapshotDataMovementInfo(
            data_mover="velero", uploader_type=uploader, snapshot_handle=snapshot, size=size,
            phase="Completed"))


def _write_volume(root: Path, vol: PodVolume) -> Path:
    """The volume as the node agent sees it: /host_pods/<pod-uid>/volumes/<plugin>/<dir>."""
    plugin = "kubernetes.io~csi" if vol.pvc else "kubernetes.io~empty-dir"
    vdir = root / vol.pod_uid / "volumes" / plugin / vol.volume
    for rel, data in vol.files.items():
        path = vdir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return vdir


def _restic_backup(restic: Restic, vdir: Path, vol: PodVolume, backup: str, backup_uid: str) -> str:
    """Velero's `restic backup` call; returns the new snapshot's full id."""
    tags = {"backup": backup, "backup-uid": backup_uid, "pod": vol.pod, "pod-uid": vol.pod_uid,
            "ns": vol.namespace, "volume": vol.volume}
    if vol.pvc:
        tags["pvc-uid"] = vol.pvc_uid
    args = ["backup", "--json", "--host", "velero", *(f"--tag={k}={v}" for k, v in tags.items()), "."]
    out = restic.run(*args, cwd=vdir).stdout.splitlines()
    short = json.loads(out[-1])["snapshot_id"]  # the summary: restic 0.14 gives the short id
    # Snapshot files are named by their id: no second restic run (each costs a key derivation).
    (full,) = [n for n in os.listdir(Path(restic.repo) / "snapshots") if n.startswith(short)]
    return full


def _pvb(vol: PodVolume, backup: str, backup_uid: str, uploader: str, repo_id: str,
         snapshot_id: str, size: int, started: datetime = STARTED) -> PodVolumeBackup:
    return PodVolumeBackup(
        metadata=ObjectMeta(name=f"{backup}-{uuid.uuid4().hex[:5]}", namespace="velero",
                            uid=str(uuid.uuid4()),
                            labels={"velero.io/backup-name": backup, "velero.io/backup-uid": backup_uid,
                                    "velero.io/pvc-uid": vol.pvc_uid},
                            annotations={"velero.io/pvc-name": vol.pvc} if vol.pvc else {}),
        spec=PodVolumeBackupSpec(
            node="node-1", volume=vol.volume, backup_storage_location="default",
            repo_identifier=repo_id, uploader_type=uploader,
            pod=ObjectReference(kind="Pod", namespace=vol.namespace, name=vol.pod, uid=vol.pod_uid),
            tags={"backup": backup, "backup-uid": backup_uid, "ns": vol.namespace,
                  "pod": vol.pod, "pod-uid": vol.pod_uid, "volume": vol.volume}),
        status=PodVolumeBackupStatus(
            phase="Completed", snapshot_id=snapshot_id, path=f"/host_pods/{vol.pod_uid}/volumes",
            start_timestamp=started, completion_timestamp=started + timedelta(seconds=5),
            progress=VolumeOperationProgress(total_bytes=size, bytes_done=size)))


def _volume_info(vol: PodVolume, pvb: PodVolumeBackup) -> VolumeInfo:
    return VolumeInfo(
        pvc_name=vol.pvc, pvc_namespace=vol.namespace if vol.pvc else "",
        pv_name=f"pvc-{vol.pvc_uid}" if vol.pvc else "", backup_method="PodVolumeBackup",
        result="succeeded", start_timestamp=STARTED, completion_timestamp=STARTED + timedelta(seconds=5),
        pvb_info=PodVolumeInfo(snapshot_handle=pvb.status.snapshot_id,
                               size=pvb.status.progress.total_bytes,
                               uploader_type=pvb.spec.uploader_type, volume_name=vol.volume,
                               pod_name=vol.pod, pod_namespace=vol.namespace, node_name="node-1",
                               phase="Completed"))


def _backup(name: str, uid: str, namespaces: list[str], items: int, warnings: int = 0,
            started: datetime = STARTED) -> Backup:
    return Backup(
        metadata=ObjectMeta(name=name, namespace="velero", uid=uid,
                            creation_timestamp=started,
                            labels={"velero.io/storage-location": "default"},
                            annotations={"velero.io/source-cluster-k8s-gitversion": "v1.29.2",
                                         "velero.io/source-cluster-k8s-major-version": "1",
                                         "velero.io/source-cluster-k8s-minor-version": "29"}),
        spec=BackupSpec(included_namespaces=namespaces, ttl="720h0m0s", storage_location="default",
                        default_volumes_to_fs_backup=True, csi_snapshot_timeout="10m0s",
                        item_operation_timeout="4h0m0s", snapshot_move_data=False,
                        volume_snapshot_locations=["default"]),
        status=BackupStatus(version=1, format_version="1.1.0", phase="Completed",
                            expiration=started + TTL, start_timestamp=started,
                            completion_timestamp=started + timedelta(seconds=42),
                            progress=BackupProgress(total_items=items, items_backed_up=items),
                            warnings=warnings, hook_status=HookStatus()))


def build(root: Path, workdir: Path, restic_bin: str) -> BuiltBucket:
    """Fill the directory `root` with a BSL's layout."""
    store = LocalStore(root)

    def repo_url(sub: str) -> str:
        return str(root / sub)

    host_pods = workdir / "host_pods"
    vols = [
        PodVolume("shop", "web-7d9f8", "html", "web-html",
                  {"index.html": b"<h1>shop</h1>\n", "img/logo.bin": os.urandom(300_000),
                   "deep/a/b/c.txt": b"deep\n"}),
        PodVolume("shop", "web-7d9f8", "cache", "", {"cache.db": b"\0" * 4096}),
        PodVolume("ledger", "db-0", "data", "data-db-0", {"ledger.csv": b"id,amount\n1,42\n"}),
    ]
    passwords = {"shop": DEFAULT_PASSWORD, "ledger": LEDGER_PASSWORD}
    repos = {}
    for ns, pw in passwords.items():
        repos[ns] = Restic(repo_url(f"restic/{ns}"), pw, binary=restic_bin)
        repos[ns].init(version=2)

    uids = {name: str(uuid.uuid4()) for name in ("web-backup", "legacy-backup", "kopia-backup")}
    pvbs, infos, dirs = [], [], {}
    for vol in vols:
        vdir = dirs[f"{vol.namespace}/{vol.pod}/{vol.volume}"] = _write_volume(host_pods, vol)
        vol.snapshot_id = _restic_backup(repos[vol.namespace], vdir, vol, "web-backup", uids["web-backup"])
        size = sum(len(d) for d in vol.files.values())
        pvb = _pvb(vol, "web-backup", uids["web-backup"], "restic",
                   repo_url(f"restic/{vol.namespace}"), vol.snapshot_id[:8], size)
        pvbs.append(pvb)
        infos.append(_volume_info(vol, pvb))
    results = BackupResults(warnings=Result(namespaces={"shop": ["pod shop/web-7d9f8: volume cache is an emptyDir"]}))
    items = _items()
    write_backup(store, BackupRecord(
        backup=_backup("web-backup", uids["web-backup"], ["shop", "ledger"], len(items), warnings=1),
        items=items, pod_volume_backups=pvbs, volume_infos=infos, results=results,
        log="time=\"2024-05-01T10:00:00Z\" level=info msg=\"Setting up backup\" backup=velero/web-backup\n"))

    # Velero 1.10: no volume info; same pod volume, a second snapshot in the shop repository.
    legacy = PodVolume("shop", "web-7d9f8", "html", "web-html", {"index.html": b"<h1>old shop</h1>\n"})
    legacy.snapshot_id = _restic_backup(repos["shop"], _write_volume(host_pods / "legacy", legacy),
                                        legacy, "legacy-backup", uids["legacy-backup"])
    write_backup(store, BackupRecord(
        backup=_backup("legacy-backup", uids["legacy-backup"], ["shop"], 1, started=OLD_STARTED),
        items=items[:1], volume_infos=None,
        pod_volume_backups=[_pvb(legacy, "legacy-backup", uids["legacy-backup"], "restic",
                                 repo_url("restic/shop"), legacy.snapshot_id[:8], 18,
                                 OLD_STARTED)]))

    # A kopia pod volume backup (Velero's default uploader since 1.10), in a repository whose
    # format blob is damaged (tests/kopia makes real ones).
    kopia_vol = PodVolume("shop", "web-7d9f8", "html", "web-html", {})
    store.put("kopia/shop/kopia.repository.f", b"{}")
    write_backup(store, BackupRecord(
        backup=_backup("kopia-backup", uids["kopia-backup"], ["shop"], 1, started=OLD_STARTED),
        items=items[:1],
        pod_volume_backups=[_pvb(kopia_vol, "kopia-backup", uids["kopia-backup"], "kopia",
                                 repo_url("kopia/shop"), "k0f1e2d3c4b5a69788", 10, OLD_STARTED)],
        volume_infos=None))
    return BuiltBucket(root, {f"{v.namespace}/{v.pod}/{v.volume}": v for v in vols}, dirs,
                       legacy, items)


def copy_to_s3(root: Path, s3: Any, bucket: str, prefix: str) -> None:
    """The bucket directory ``root``, key for key, below ``prefix`` in an S3 bucket (restic's
    S3 objects are named as its local files, so the copy is a valid S3 location)."""
    for path in root.rglob("*"):
        if path.is_file():
            key = f"{prefix}/{path.relative_to(root).as_posix()}"
            s3.put_object(Bucket=bucket, Key=key, Body=path.read_bytes())
