"""The embedded default: a local Velero bucket built with the mover in-process, no cluster.

`kbrowse demo` makes two sample volumes of one application namespace and writes two Velero
backups of it into ``<dir>/bucket``, laid out as Velero's server, node agent and data mover
fill a backup storage location:

- the resources: ``velero-backup.json``, the tarball, the resource list, results, logs;
- volume ``data`` of pod ``web-0`` by file-system backup: a PodVolumeBackup in
  ``-podvolumebackups.json.gz``, its snapshot in the restic repository ``restic/<ns>`` tagged as
  the node agent tags it (backup, backup-uid, ns, pod, pod-uid, volume, pvc-uid);
- claim ``db-data`` by CSI snapshot data movement (Velero 1.12+): a ``CSISnapshot`` entry with
  ``snapshotDataMoved`` in ``-volumeinfo.json.gz``, the DataUpload in the tarball, the item
  operation, and the snapshot in the same repository tagged as Velero's data mover tags it
  (``velero.io/async-operation-id``, ``snapshot-requester``, ``snapshot-uploader``). Velero's
  own data mover writes kopia's format; the mover writes restic's, so the uploader is restic.

The second backup is incremental: each volume's snapshot has the first backup's as parent.
The bucket is built beside its final place and renamed when complete, so an interrupted run
never leaves a half-written bucket; a later run rebuilds it.
"""

from __future__ import annotations

import random
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from mover.archiver.pipeline import Archiver, find_parent
from mover.progress import Counters, ProgressBar
from mover.repo.backend.local import LocalBackend
from mover.repo.repository import Repository
from mover.velero import labels, layout, podvolumes
from mover.velero.objects import (
    CSI_SNAPSHOT,
    Backup,
    BackupProgress,
    BackupSpec,
    BackupStatus,
    CSISnapshotInfo,
    HookStatus,
    ObjectMeta,
    PodVolumeBackup,
    SnapshotDataMovementInfo,
    VolumeInfo,
    from_json,
)
from mover.velero.objectstore import LocalStore
from mover.velero.repopassword import DEFAULT_PASSWORD
from mover.velero.tarball import BackedUpItem
from mover.velero.writer import BackupRecord, write_backup
from mover.view import Snapshot

# Velero's default repository password: the bucket opens with no password given.
DEMO_PASSWORD = DEFAULT_PASSWORD
NAMESPACE = "shop"
POD = "web-0"
FS_VOLUME = "data"  # the pod volume backed up by file-system backup
FS_CLAIM = "web-data"
CSI_CLAIM = "db-data"  # the claim whose CSI snapshot the data mover uploads
BACKUPS = ("shop-daily-1", "shop-daily-2")
DATA_MOVER_REQUESTER = "snapshot-data-upload-download"  # Velero's data-upload requester tag
ASYNC_OPERATION_ID = "velero.io/async-operation-id"
CSI_DRIVER = "hostpath.csi.k8s.io"


def _uid(*parts: str) -> str:
    """Stable ids, so two demo builds (and the screenshots) show the same objects."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "kbrowse-demo/" + "/".join(parts)))


@dataclass
class Demo:
    root: Path

    @property
    def source(self) -> Path:
        """The file-system-backed pod volume as the second backup saw it."""
        return self.root / "volume"

    @property
    def db_source(self) -> Path:
        """The claim moved from its CSI snapshot, as the second backup saw it."""
        return self.root / "db-volume"

    @property
    def bucket(self) -> Path:
        return self.root / "bucket"

    @property
    def repo_path(self) -> Path:
        """The restic repository of the namespace's volumes, inside the bucket."""
        return self.bucket / layout.repository_prefix(layout.RESTIC, NAMESPACE)

    @property
    def password_file(self) -> Path:
        return self.root / "password"


def make_sample_volume(dest: Path, seed: int = 7) -> None:
    """A tree like an application's data volume: config, logs, a database file, a symlink."""
    rnd = random.Random(seed)
    (dest / "config").mkdir(parents=True, exist_ok=True)
    (dest / "logs").mkdir(exist_ok=True)
    (dest / "data" / "uploads").mkdir(parents=True, exist_ok=True)
    (dest / "config" / "app.yaml").write_text(
        "server:\n  port: 8080\n  workers: 4\ndatabase:\n  path: /data/app.db\n  pool: 10\n"
        "features:\n  uploads: true\n  audit_log: true\n")
    (dest / "config" / "nginx.conf").write_text(
        "server {\n    listen 80;\n    location / {\n        proxy_pass http://127.0.0.1:8080;\n"
        "    }\n}\n")
    (dest / "README.md").write_text("# demo volume\n\nBacked up by the kbrowse demo.\n")
    (dest / "app.py").write_text(
        "import http.server\n\n\ndef main() -> None:\n"
        "    http.server.test(port=8080)\n\n\nif __name__ == '__main__':\n    main()\n")
    words = ["GET", "POST", "/api/items", "/login", "200", "404", "500", "user=alice", "user=bob"]
    for day in range(1, 8):
        lines = [f"2026-11-{day:02d}T{h:02d}:{m:02d}:00Z {rnd.choice(words)} {rnd.choice(words)} "
                 f"{rnd.randint(1, 999)}ms" for h in range(24) for m in range(0, 60, 3)]
        (dest / "logs" / f"access-2026-11-{day:02d}.log").write_text("\n".join(lines) + "\n")
    (dest / "data" / "app.db").write_bytes(rnd.randbytes(3 * 1024 * 1024))
    for i in range(20):
        (dest / "data" / "uploads" / f"image-{i:03d}.bin").write_bytes(rnd.randbytes(rnd.randint(2_000, 60_000)))
    link = dest / "logs" / "current.log"
    if not link.is_symlink():
        link.symlink_to("access-2026-11-07.log")


def change_sample_volume(dest: Path) -> None:
    """What a day of work does: a new log, an edited config, a grown database."""
    (dest / "logs" / "access-2026-11-08.log").write_text("2026-11-08T00:00:00Z GET /api/items 200 3ms\n")
    cfg = dest / "config" / "app.yaml"
    cfg.write_text(cfg.read_text().replace("workers: 4", "workers: 8"))
    with open(dest / "data" / "app.db", "ab") as f:
        f.write(random.Random(8).randbytes(256 * 1024))


def make_db_volume(dest: Path) -> None:
    """A database server's claim: its settings, a write-ahead log, table files."""
    rnd = random.Random(11)
    (dest / "pgdata" / "base" / "16384").mkdir(parents=True, exist_ok=True)
    (dest / "pgdata" / "pg_wal").mkdir(exist_ok=True)
    (dest / "pgdata" / "PG_VERSION").write_text("16\n")
    (dest / "pgdata" / "postgresql.conf").write_text(
        "listen_addresses = '*'\nmax_connections = 100\nshared_buffers = 128MB\nwal_level = replica\n")
    for table in (1259, 2608, 16385):
        (dest / "pgdata" / "base" / "16384" / str(table)).write_bytes(rnd.randbytes(256 * 1024))
    (dest / "pgdata" / "pg_wal" / "000000010000000000000001").write_bytes(rnd.randbytes(1024 * 1024))


def change_db_volume(dest: Path) -> None:
    """A day of orders: the orders table grew and a new WAL segment was written."""
    rnd = random.Random(12)
    with open(dest / "pgdata" / "base" / "16384" / "16385", "ab") as f:
        f.write(rnd.randbytes(64 * 1024))
    (dest / "pgdata" / "pg_wal" / "000000010000000000000002").write_bytes(rnd.randbytes(1024 * 1024))


# -- Velero's objects for the demo -----------------------------------------------------------


def _meta(name: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "namespace": NAMESPACE, "uid": _uid("obj", name), **extra}


def _resources(backup: str, db_snapshot: str, db_size: int, started: datetime) -> list[BackedUpItem]:
    """The namespace's objects as the API server returned them, and the DataUpload."""
    app = {"app": "web"}
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": _meta(POD, labels=app, annotations={
        podvolumes.BACKUP_VOLUMES_ANNOTATION: FS_VOLUME}), "spec": {
        "nodeName": "node-1",
        "containers": [{"name": "web", "image": "nginx:1.27", "volumeMounts": [
            {"name": FS_VOLUME, "mountPath": "/srv"}, {"name": "db", "mountPath": "/var/lib/postgresql"}]}],
        "volumes": [{"name": FS_VOLUME, "persistentVolumeClaim": {"claimName": FS_CLAIM}},
                    {"name": "db", "persistentVolumeClaim": {"claimName": CSI_CLAIM}}]}}

    def claim(name: str) -> dict[str, Any]:
        return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": _meta(name), "spec": {
            "accessModes": ["ReadWriteOnce"], "storageClassName": "csi-hostpath",
            "resources": {"requests": {"storage": "1Gi"}}, "volumeName": f"pvc-{_uid('obj', name)}"},
            "status": {"phase": "Bound"}}

    return [
        BackedUpItem("namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                    "metadata": {"name": NAMESPACE, "uid": _uid("ns")}}),
        BackedUpItem("statefulsets", {"apiVersion": "apps/v1", "kind": "StatefulSet",
                                      "metadata": _meta("web", labels=app), "spec": {
                                          "replicas": 1, "serviceName": "web",
                                          "selector": {"matchLabels": app}}}),
        BackedUpItem("pods", pod),
        BackedUpItem("services", {"apiVersion": "v1", "kind": "Service", "metadata": _meta("web"),
                                  "spec": {"ports": [{"port": 80}], "selector": app}}),
        BackedUpItem("configmaps", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": _meta("web-config"),
                                    "data": {"nginx.conf": "server { listen 80; }\n"}}),
        BackedUpItem("secrets", {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                                 "metadata": _meta("db-credentials"), "data": {"password": "ZGVtbw=="}}),
        BackedUpItem("persistentvolumeclaims", claim(FS_CLAIM)),
        BackedUpItem("persistentvolumeclaims", claim(CSI_CLAIM)),
        BackedUpItem("datauploads", _data_upload(backup, db_snapshot, db_size, started)),
    ]


def _operation_id(backup: str) -> str:
    """The CSI claim action's operation id: ``du-<backup uid>.<claim uid>``."""
    return f"du-{_uid('backup', backup)}.{_uid('obj', CSI_CLAIM)}"


def _data_upload(backup: str, snapshot_id: str, size: int, started: datetime) -> dict[str, Any]:
    done = started + timedelta(seconds=20)
    return {"apiVersion": "velero.io/v2alpha1", "kind": "DataUpload", "metadata": {
        "name": f"{backup}-x7k2p", "namespace": "velero", "uid": _uid("du", backup),
        "labels": {labels.BACKUP_NAME: backup, labels.BACKUP_UID: _uid("backup", backup),
                   labels.PVC_UID: _uid("obj", CSI_CLAIM), ASYNC_OPERATION_ID: _operation_id(backup)}},
        "spec": {"snapshotType": "CSI", "sourcePVC": CSI_CLAIM, "sourceNamespace": NAMESPACE,
                 "dataMover": "velero", "backupStorageLocation": "default", "operationTimeout": "10m0s",
                 "csiSnapshot": {"volumeSnapshot": f"velero-{CSI_CLAIM}-{backup[-1]}q8zt",
                                 "storageClass": "csi-hostpath", "snapshotClass": "csi-hostpath-snapclass",
                                 "driver": CSI_DRIVER}},
        "status": {"phase": "Completed", "node": "node-1", "snapshotID": snapshot_id,
                   "path": f"/{NAMESPACE}/{CSI_CLAIM}", "startTimestamp": _ts(started),
                   "completionTimestamp": _ts(done),
                   "progress": {"totalBytes": size, "bytesDone": size}}}


def _ts(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def _backup_object(name: str, started: datetime, items: int) -> Backup:
    return Backup(
        metadata=ObjectMeta(name=name, namespace="velero", uid=_uid("backup", name), creation_timestamp=started,
                            labels={labels.STORAGE_LOCATION: "default"},
                            annotations={"velero.io/source-cluster-k8s-gitversion": "v1.31.0",
                                         "velero.io/source-cluster-k8s-major-version": "1",
                                         "velero.io/source-cluster-k8s-minor-version": "31"}),
        spec=BackupSpec(included_namespaces=[NAMESPACE], ttl="720h0m0s", storage_location="default",
                        default_volumes_to_fs_backup=False, snapshot_move_data=True,
                        csi_snapshot_timeout="10m0s", item_operation_timeout="4h0m0s"),
        status=BackupStatus(version=1, format_version="1.1.0", phase="Completed",
                            expiration=started + timedelta(days=30), start_timestamp=started,
                            completion_timestamp=started + timedelta(seconds=31),
                            progress=BackupProgress(total_items=items, items_backed_up=items),
                            backup_item_operations_attempted=1, backup_item_operations_completed=1,
                            hook_status=HookStatus()))


def _new_pod_volume_backup(backup: Backup) -> dict[str, Any]:
    """The PodVolumeBackup as Velero's server creates it: its tags are the snapshot's."""
    pod = {"metadata": {"name": POD, "namespace": NAMESPACE, "uid": _uid("obj", POD)},
           "spec": {"nodeName": "node-1"}}
    pvc = {"metadata": {"name": FS_CLAIM, "uid": _uid("obj", FS_CLAIM)}}
    obj = podvolumes.new_pod_volume_backup(backup.to_json(), pod, FS_VOLUME, f"restic/{NAMESPACE}", pvc)
    obj["metadata"]["name"] = f"{backup.name}-m4v9d"
    obj["metadata"]["uid"] = _uid("pvb", backup.name)
    return obj


def _finished(pvb: dict[str, Any], snap: Snapshot, size: int, started: datetime) -> PodVolumeBackup:
    """The node agent's status once the volume is in the repository."""
    pvb["status"] = {"phase": "Completed", "snapshotID": snap.short_id,
                     "path": f"/host_pods/{_uid('obj', POD)}/volumes/kubernetes.io~csi/"
                             f"pvc-{_uid('obj', FS_CLAIM)}/mount",
                     "startTimestamp": _ts(started), "completionTimestamp": _ts(started + timedelta(seconds=4)),
                     "progress": {"totalBytes": size, "bytesDone": size}}
    return from_json(PodVolumeBackup, pvb, "the demo's PodVolumeBackup")


def _moved_volume_info(backup: str, snap: Snapshot, size: int, added: int, started: datetime) -> VolumeInfo:
    return VolumeInfo(
        pvc_name=CSI_CLAIM, pvc_namespace=NAMESPACE, pv_name=f"pvc-{_uid('obj', CSI_CLAIM)}",
        backup_method=CSI_SNAPSHOT, snapshot_data_moved=True, result="succeeded",
        start_timestamp=started, completion_timestamp=started + timedelta(seconds=20),
        csi_snapshot_info=CSISnapshotInfo(driver=CSI_DRIVER, size=size, operation_id=_operation_id(backup),
                                          snapshot_handle=f"snapshot-{_uid('vs', backup)}"),
        snapshot_data_movement_info=SnapshotDataMovementInfo(
            data_mover="velero", uploader_type=layout.RESTIC, snapshot_handle=snap.id.hex(),
            retained_snapshot=f"velero-{CSI_CLAIM}-{backup[-1]}q8zt", operation_id=_operation_id(backup),
            size=size, incremental_size=added, phase="Completed"))


def _operation(backup: str, started: datetime) -> dict[str, Any]:
    """The backup's one item operation: the CSI claim action's data upload."""
    return {"spec": {"backupName": backup, "backupUID": _uid("backup", backup),
                     "backupItemAction": "velero.io/csi-pvc-backupper",
                     "resourceIdentifier": {"Group": "", "Resource": "persistentvolumeclaims",
                                            "Namespace": NAMESPACE, "Name": CSI_CLAIM},
                     "operationID": _operation_id(backup),
                     "postOperationItems": [{"Group": "velero.io", "Resource": "datauploads",
                                             "Namespace": "velero", "Name": f"{backup}-x7k2p"}]},
            "status": {"phase": "Completed", "nItemsToComplete": 1, "nItemsCompleted": 1,
                       "created": _ts(started), "started": _ts(started),
                       "updated": _ts(started + timedelta(seconds=20))}}


# -- building ---------------------------------------------------------------------------------


def _snapshot(repo: Repository, source: Path, tags: list[str], parent: Snapshot | None,
              when: datetime, what: str) -> tuple[Snapshot, int, int]:
    """Back up ``source``'s contents at the snapshot root, as Velero's uploaders do; returns
    the snapshot, the volume's size and the bytes this run added."""
    counters = Counters()
    with ProgressBar(counters, what):
        res = Archiver(repo, counters).backup([str(source)], host=podvolumes.SNAPSHOT_HOST, tags=tags,
                                              parent=parent, when_ns=int(when.timestamp() * 1e9),
                                              contents_at_root=True)
    s = res.stats
    print(f"  {what}: snapshot {res.snapshot.short_id} ({s.files_new} new, {s.files_changed} changed, "
          f"{s.files_unmodified} unmodified files; {s.data_added} bytes added)")
    return res.snapshot, counters.bytes, s.data_added


def _write_backup(store: LocalStore, repo: Repository, demo: Demo, name: str, started: datetime) -> None:
    backup = _backup_object(name, started, 0)
    # The data mover's upload runs as the claim's item operation; the pod's volume during
    # the item backup. The file-system volume's snapshot is the newest of the two.
    du_tags = {ASYNC_OPERATION_ID: _operation_id(name), "snapshot-requester": DATA_MOVER_REQUESTER,
               "snapshot-uploader": layout.RESTIC}
    db_snap, db_size, db_added = _snapshot(
        repo, demo.db_source, [f"{k}={v}" for k, v in sorted(du_tags.items())],
        find_parent(repo, [str(demo.db_source)], podvolumes.SNAPSHOT_HOST), started,
        f"{name}: data upload {NAMESPACE}/{CSI_CLAIM}")
    new_pvb = _new_pod_volume_backup(backup)
    fs_tags = new_pvb["spec"]["tags"]
    fs_snap, fs_size, _ = _snapshot(
        repo, demo.source, [f"{k}={v}" for k, v in sorted(fs_tags.items())],
        podvolumes.latest_of_same_volume(repo.snapshots(), fs_tags), started + timedelta(seconds=2),
        f"{name}: pod volume backup {NAMESPACE}/{POD}/{FS_VOLUME}")
    items = _resources(name, db_snap.id.hex(), db_size, started)
    backup.status.progress = BackupProgress(total_items=len(items), items_backed_up=len(items))
    pvb = _finished(new_pvb, fs_snap, fs_size, started)
    log = "".join(f'time="{_ts(started)}" level=info msg="{m}" backup=velero/{name}\n' for m in (
        "Setting up backup", f"Backing up {len(items)} items", "Pod volume backup of shop/web-0/data completed",
        "Data upload of shop/db-data completed", "Backup completed"))
    write_backup(store, BackupRecord(
        backup=backup, items=items, pod_volume_backups=[pvb], log=log,
        volume_infos=[podvolumes.volume_info(pvb, f"pvc-{_uid('obj', FS_CLAIM)}"),
                      _moved_volume_info(name, db_snap, db_size, db_added, started)],
        item_operations=[_operation(name, started)]), mtime=started.timestamp())


def _complete(demo: Demo) -> bool:
    return (demo.bucket / layout.backup_metadata_key(BACKUPS[-1])).is_file()


def build_bucket(demo: Demo, now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
    """Write both backups into a fresh bucket, then move it into place."""
    building = demo.root / ".bucket-building"
    for path in (building, demo.source, demo.db_source):
        shutil.rmtree(path, ignore_errors=True)
    make_sample_volume(demo.source)
    make_db_volume(demo.db_source)
    repo = Repository.init(LocalBackend(str(building / layout.repository_prefix(layout.RESTIC, NAMESPACE))),
                           DEMO_PASSWORD)
    store = LocalStore(building)
    today = now().replace(microsecond=0)
    try:
        _write_backup(store, repo, demo, BACKUPS[0], today - timedelta(days=1))
        change_sample_volume(demo.source)
        change_db_volume(demo.db_source)
        _write_backup(store, repo, demo, BACKUPS[1], today - timedelta(minutes=5))
    finally:
        repo.close()
    shutil.rmtree(demo.bucket, ignore_errors=True)
    building.rename(demo.bucket)


def run_demo(root: Path) -> Demo:
    """The demo under ``root``, built unless a complete one is there already."""
    demo = Demo(root)
    demo.root.mkdir(parents=True, exist_ok=True)
    if not _complete(demo):
        print(f"building a Velero bucket with two backups of namespace {NAMESPACE} in {demo.bucket}")
        build_bucket(demo)
    if not demo.password_file.exists():
        demo.password_file.write_text(DEMO_PASSWORD + "\n")
    return demo
