"""Restoring data-moved CSI volumes (DataDownload): `mover server` with `mover node-agent` on the
Kubernetes API double and SeaweedFS.

The backup is made here as a finished Velero backup with data movement leaves it: a restic
snapshot of each volume in ``restic/<namespace>``, and in the bucket the tarball (claims,
volumes and the completed DataUploads) with the ``-volumeinfo`` entries. The tests play the
cluster's other actors through tests/support/csi.py: the CSI provisioner, the volume binder,
the scheduler and the kubelet.
"""

from __future__ import annotations

import os
import random
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mover.archiver.pipeline import Archiver
from mover.kube import datapath
from mover.kube.framework.client import Kube, Obj
from mover.kube.nodeagent import NodeAgent, NodeAgentOptions
from mover.kube.repositories import ensure_password_secret, open_repository, repository_password
from mover.kube.resources import BACKUPS, BSLS, DATA_DOWNLOADS, DATA_UPLOADS, PODS, RESTORES
from mover.kube.storage import SecretFiles, StoreCache, open_location
from mover.progress import Counters
from mover.repo.lock import Lock
from mover.velero.bsl import BucketView
from mover.velero.datadownload import DYNAMIC_PV_RESTORE
from mover.velero.objects import (
    CSI_SNAPSHOT,
    Backup,
    BackupSpec,
    BackupStatus,
    ObjectMeta,
    SnapshotDataMovementInfo,
    VolumeInfo,
)
from mover.velero.repopassword import fixed
from mover.velero.tarball import BackedUpItem
from mover.velero.writer import BackupRecord, write_backup
from tests.support.csi import DRIVER, NODE, Cluster, running_cluster
from tests.support.kubeapi.fixtures import KubeApi, kube_api  # noqa: F401 - fixture
from tests.support.treekit import assert_same_tree, make_full_tree
from tests.support.velero_env import NS, PVCS, PVS, Watch, phase, running_server, velero_object, wait_for, wait_phase

MIB = 1 << 20


@contextmanager
def node_agent(kube: Kube, cluster: Cluster, prepare_timeout: float = 60.0) -> Iterator[None]:
    agent = NodeAgent(kube, NodeAgentOptions(node_name=NODE, kubelet_root=str(cluster.kubelet), namespace=NS,
                                             concurrency=2, resync=0.5, watch_seconds=5,
                                             prepare_timeout=prepare_timeout)).start()
    try:
        yield
    finally:
        agent.stop(grace=10)


@contextmanager
def agent_and_server(kube: Kube, cluster: Cluster, prepare_timeout: float = 60.0) -> Iterator[None]:
    with node_agent(kube, cluster, prepare_timeout), running_server(kube):
        yield


# -- the backup, as Velero's data movement leaves it ------------------------------------------------

class Volume:
    def __init__(self, claim: str, source: Path, block: bool = False, size: str = "64Mi",
                 storage_class: str = "csi-standard", access: str = "ReadWriteOnce") -> None:
        self.claim, self.source, self.block, self.size = claim, source, block, size
        self.storage_class, self.access = storage_class, access
        self.uid = str(uuid.uuid4())
        self.snapshot = ""  # restic's short id, once backed up
        self.recorded = ""  # the id its DataUpload records, when not that one


def mixed_file(path: Path, mib: int, seed: int) -> None:
    """Random, zero and repeated text stretches: what a disk image holds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rnd = random.Random(seed)
    with open(path, "wb") as f:
        for i in range(mib):
            kind = i % 4
            line = b"block %d of the disk\n" % i
            f.write(rnd.randbytes(MIB) if kind < 2 else bytes(MIB) if kind == 2 else
                    (line * (MIB // len(line) + 1))[:MIB])


def moved_backup(kube: Kube, name: str, volumes: list[Volume], namespace: str = "shop") -> None:
    """Back each volume up into ``restic/<namespace>`` and write the backup's files."""
    ensure_password_secret(kube, NS)
    bsl = kube.get(BSLS, NS, "default")
    stores, backup_uid = StoreCache(), str(uuid.uuid4())
    repo = open_repository(kube, stores, bsl, namespace, create=True)
    try:
        with Lock(repo, exclusive=False).acquire(confirm_before_write=True):
            for vol in volumes:
                tags = {"backup": name, "backup-uid": backup_uid, "ns": namespace, "pvc": vol.claim,
                        "pvc-uid": vol.uid, "volume": vol.claim}
                result = Archiver(repo, Counters()).backup([str(vol.source)], host="velero", contents_at_root=True,
                                                           tags=[f"{k}={v}" for k, v in sorted(tags.items())])
                vol.snapshot = result.snapshot.short_id
    finally:
        repo.close()
        stores.close()
    now = datetime.now(UTC).replace(microsecond=0)
    items = [BackedUpItem("namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {
        "name": namespace, "labels": {"team": "shop"}}})]
    infos = []
    for vol in volumes:
        pv = f"pvc-{vol.uid}"
        items.append(BackedUpItem("persistentvolumeclaims", {
            "apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": vol.claim, "namespace": namespace, "uid": vol.uid, "labels": {"app": "shop"},
                         "annotations": {"pv.kubernetes.io/bind-completed": "yes"}},
            "spec": {"accessModes": [vol.access], "resources": {"requests": {"storage": vol.size}},
                     "storageClassName": vol.storage_class, "volumeMode": "Block" if vol.block else "Filesystem",
                     "volumeName": pv},
            "status": {"phase": "Bound"}}))
        items.append(BackedUpItem("persistentvolumes", {
            "apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": pv},
            "spec": {"capacity": {"storage": vol.size}, "accessModes": [vol.access],
                     "persistentVolumeReclaimPolicy": "Delete", "storageClassName": vol.storage_class,
                     "csi": {"driver": DRIVER, "volumeHandle": pv},
                     "claimRef": {"namespace": namespace, "name": vol.claim, "uid": vol.uid}}}))
        items.append(BackedUpItem("datauploads", {
            "apiVersion": "velero.io/v2alpha1", "kind": "DataUpload",
            "metadata": {"name": f"{name}-{vol.claim}", "namespace": NS,
                         "labels": {"velero.io/backup-name": name, "velero.io/pvc-uid": vol.uid}},
            "spec": {"snapshotType": "CSI", "csiSnapshot": {"volumeSnapshot": f"velero-{vol.claim}-x1",
                                                            "storageClass": vol.storage_class},
                     "sourcePVC": vol.claim, "sourceNamespace": namespace, "backupStorageLocation": "default",
                     "datamover": "velero", "operationTimeout": "10m0s"},
            "status": {"phase": "Completed", "snapshotID": vol.recorded or vol.snapshot, "node": NODE,
                       "progress": {"totalBytes": 1, "bytesDone": 1}}}))
        infos.append(VolumeInfo(
            pvc_name=vol.claim, pvc_namespace=namespace, pv_name=pv, backup_method=CSI_SNAPSHOT,
            snapshot_data_moved=True, result="succeeded", start_timestamp=now, completion_timestamp=now,
            snapshot_data_movement_info=SnapshotDataMovementInfo(
                data_mover="velero", uploader_type="restic", snapshot_handle=vol.snapshot, phase="Completed")))
    backup = Backup(metadata=ObjectMeta(name=name, namespace=NS, uid=backup_uid, creation_timestamp=now),
                    spec=BackupSpec(included_namespaces=[namespace], storage_location="default",
                                    snapshot_move_data=True, ttl="720h0m0s"),
                    status=BackupStatus(phase="Completed", version=1, format_version="1.1.0",
                                        start_timestamp=now, completion_timestamp=now))
    files = SecretFiles()
    try:
        write_backup(open_location(kube, bsl, files), BackupRecord(backup=backup, items=items, volume_infos=infos))
    finally:
        files.close()


def restore(kube: Kube, name: str, backup: str, mapping: dict[str, str]) -> Obj:
    # The sync controller brings the backup in from the bucket, as from another cluster.
    wait_for(lambda: kube.get_or_none(BACKUPS, NS, backup), lambda b: b is not None, 30, f"backup {backup} synced")
    return kube.create(RESTORES, NS, velero_object("Restore", name, {"backupName": backup,
                                                                      "namespaceMapping": mapping}))


def downloads_of(kube: Kube, restore_name: str) -> dict[str, Obj]:
    """The restore's DataDownloads by target claim."""
    items = kube.list(DATA_DOWNLOADS, NS, label_selector=f"velero.io/restore-name={restore_name}")["items"]
    return {d["spec"]["targetVolume"]["pvc"]: d for d in items}


def helpers_left(kube: Kube) -> list[str]:
    return [f"{r.kind}/{o['metadata']['name']}" for r in (PODS, PVCS) for o in kube.list(r, NS)["items"]]


@contextmanager
def bucket_view(kube: Kube) -> Iterator[BucketView]:
    files = SecretFiles()  # kept while the view is open: each repository's client reads them
    bucket = BucketView(open_location(kube, kube.get(BSLS, NS, "default"), files),
                        passwords=[fixed("the server's", repository_password(kube, NS))])
    try:
        yield bucket
    finally:
        bucket.close()
        files.close()


def phases_seen(events: list[Obj], name: str) -> list[str]:
    """The phases object ``name`` went through, in the order a watch delivered them."""
    seen = [phase(e) or "New" for e in events if e["metadata"]["name"] == name]
    return [p for i, p in enumerate(seen) if i == 0 or seen[i - 1] != p]


def head(path: Path, n: int) -> bytes:
    with open(path, "rb") as f:
        return f.read(n)


@pytest.fixture
def cluster(kube: Kube, tmp_path: Path) -> Iterator[Cluster]:
    with running_cluster(kube, tmp_path / "node") as c:
        yield c


# -- the round trip ------------------------------------------------------------------------------

def test_a_data_moved_backup_restores_each_claim_through_a_data_download(
        kube: Kube, location: str, cluster: Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A quiet machine restores the big volume within one 1-second progress tick: report more
    # often, so the watch sees its bytes rising however fast the machine is.
    monkeypatch.setattr(datapath, "PROGRESS_EVERY", 0.1)
    data, disk = tmp_path / "src" / "data", tmp_path / "src" / "disk"
    make_full_tree(data)
    mixed_file(data / "db" / "big.bin", 160, seed=1)
    mixed_file(disk / "disk.img", 20, seed=2)
    volumes = [Volume("data", data, size="256Mi"),
               Volume("disk", disk, block=True, size="32Mi", storage_class="csi-rbd", access="ReadWriteMany")]
    moved_backup(kube, "moved", volumes)
    # The bucket's view of the backup (what kbrowse reads) shows the block volume as its one file.
    with bucket_view(kube) as bucket:
        (block,) = [v for v in bucket.volumes("moved") if v.volume == "disk"]
        view, snap = bucket.volume_snapshot("moved", block)
        (image_node,) = view.list_dir(view.root(snap))
        assert (image_node.name, image_node.type, image_node.size) == ("disk.img", "file", 20 * MIB)
        assert b"".join(view.iter_content(image_node)) == (disk / "disk.img").read_bytes()
    with agent_and_server(kube, cluster):
        watch = Watch(kube, DATA_DOWNLOADS)
        r = restore(kube, "r1", "moved", {"shop": "shop-2"})
        r = wait_phase(kube, RESTORES, "r1", timeout=90)
        events = watch.close()
    assert phase(r) == "Completed", r["status"]
    assert (r["status"]["restoreItemOperationsAttempted"], r["status"]["restoreItemOperationsCompleted"]) == (2, 2)

    # One DataDownload per claim, as Velero's: the snapshot, where it came from, where it goes.
    dds = downloads_of(kube, "r1")
    assert sorted(dds) == ["data", "disk"]
    for vol in volumes:
        dd = dds[vol.claim]
        assert dd["apiVersion"] == "velero.io/v2alpha1"
        assert dd["spec"]["snapshotID"] == vol.snapshot and dd["spec"]["sourceNamespace"] == "shop"
        assert dd["spec"]["targetVolume"]["namespace"] == "shop-2"
        assert dd["spec"]["backupStorageLocation"] == "default" and dd["spec"]["datamover"] == "velero"
        assert dd["spec"]["operationTimeout"] == "4h0m0s"
        assert dd["metadata"]["labels"]["velero.io/restore-uid"] == r["metadata"]["uid"]
        assert dd["metadata"]["ownerReferences"][0]["name"] == "r1"
        status = dd["status"]
        assert status["phase"] == "Completed" and status["node"] == NODE and status["acceptedByNode"] == NODE
        assert status["progress"]["bytesDone"] == status["progress"]["totalBytes"] > 0
        assert status["startTimestamp"] and status["completionTimestamp"]
    assert dds["disk"]["status"]["progress"]["totalBytes"] == 20 * MIB

    # Seen through the watch: every phase in order, and the big volume's bytes rising.
    big = dds["data"]["metadata"]["name"]
    seen = [(phase(e) or "New", (e.get("status") or {}).get("progress") or {}) for e in events
            if e["metadata"]["name"] == big]
    assert phases_seen(events, big) == ["New", "Accepted", "Prepared", "InProgress", "Completed"]
    done = [p.get("bytesDone", 0) for ph, p in seen if ph == "InProgress"]
    total = seen[-1][1]["totalBytes"]
    assert any(0 < d < total for d in done), done
    assert done == sorted(done)

    # The helpers came (a restore claim shaped like the target, a pod mounting it) and went.
    for vol in volumes:
        name = dds[vol.claim]["metadata"]["name"]
        helper_claim, pod = cluster.seen[("PersistentVolumeClaim", f"{NS}/{name}")], \
            cluster.seen[("Pod", f"{NS}/{name}")]
        assert helper_claim["spec"]["accessModes"] == [vol.access]
        assert helper_claim["spec"]["storageClassName"] == vol.storage_class
        assert helper_claim["spec"]["volumeMode"] == ("Block" if vol.block else "Filesystem")
        assert pod["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"] == name
        container = pod["spec"]["containers"][0]
        assert ("volumeDevices" in container) == vol.block and ("volumeMounts" in container) != vol.block
    assert helpers_left(kube) == []

    # The restored claims hold the volumes the downloads filled, handed over as Velero does.
    for vol in volumes:
        claim = kube.get(PVCS, "shop-2", vol.claim)
        assert phase(claim) == "Bound"
        pv = kube.get(PVS, None, claim["spec"]["volumeName"])
        assert pv["metadata"]["name"] != f"pvc-{vol.uid}"  # a new volume, not the backed-up one
        assert pv["spec"]["claimRef"]["uid"] == claim["metadata"]["uid"]
        assert pv["spec"]["persistentVolumeReclaimPolicy"] == "Delete"  # put back after the handover
        label = claim["spec"]["selector"]["matchLabels"][DYNAMIC_PV_RESTORE]
        assert pv["metadata"]["labels"][DYNAMIC_PV_RESTORE] == label
        assert claim["metadata"]["labels"]["app"] == "shop"
        assert "pv.kubernetes.io/bind-completed" not in (claim["metadata"].get("annotations") or {})
    assert kube.get_or_none(PVS, None, f"pvc-{volumes[0].uid}") is None  # the old volumes are not restored
    assert kube.list(DATA_UPLOADS, NS)["items"] == []  # nor the DataUploads

    # Byte for byte: the tree on the file-system volume, the image on the block device (its
    # tail still the zeros the provisioner gave it).
    assert_same_tree(data, cluster.disk_of("shop-2", "data"))
    device = cluster.disk_of("shop-2", "disk")
    image = (disk / "disk.img").read_bytes()
    assert os.path.getsize(device) == 32 * MIB
    assert head(device, len(image)) == image
    with open(device, "rb") as f:
        f.seek(len(image))
        assert f.read() == bytes(32 * MIB - len(image))


def test_a_download_that_fails_fails_its_volume_with_the_reason_and_cleans_up(
        kube: Kube, location: str, cluster: Cluster, tmp_path: Path) -> None:
    small = tmp_path / "small"
    small.mkdir()
    (small / "a.txt").write_bytes(b"one small file\n")
    folder = tmp_path / "folder"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "b.txt").write_bytes(b"not a device\n")
    gone = Volume("gone", small)
    not_block = Volume("raw", folder, block=True, size="1Mi")
    gone.recorded = "deadbeef"  # pruned since: the upload names a snapshot the repository lacks
    moved_backup(kube, "b", [gone, not_block])
    with agent_and_server(kube, cluster):
        restore(kube, "r", "b", {"shop": "shop-3"})
        r = wait_phase(kube, RESTORES, "r", timeout=60)
    assert phase(r) == "PartiallyFailed" and r["status"]["errors"] == 2, r["status"]
    assert r["status"]["restoreItemOperationsFailed"] == 2
    dds = downloads_of(kube, "r")
    assert dds["gone"]["status"]["phase"] == "Failed"
    assert "deadbeef" in dds["gone"]["status"]["message"], dds["gone"]["status"]
    assert dds["raw"]["status"]["phase"] == "Failed"
    assert "not the one device file of a block volume" in dds["raw"]["status"]["message"]
    assert helpers_left(kube) == []
    assert all(phase(kube.get(PVCS, "shop-3", c)) != "Bound" for c in ("gone", "raw"))


def under_way(kube: Kube, restore_name: str) -> Obj:
    """The download of ``restore_name`` once it has written its first bytes."""
    return wait_for(lambda: downloads_of(kube, restore_name).get("disk"),
                    lambda d: phase(d) == "InProgress" and ((d.get("status") or {}).get("progress") or {}).get(
                        "bytesDone", 0) > 0, 60, f"the download of {restore_name} under way")


def test_a_download_canceled_stopped_or_whose_restore_is_deleted_ends_and_cleans_up(
        kube: Kube, location: str, cluster: Cluster, tmp_path: Path) -> None:
    disk = tmp_path / "disk"
    mixed_file(disk / "disk.img", 320, seed=3)
    moved_backup(kube, "big", [Volume("disk", disk, block=True, size="320Mi")])
    with running_server(kube):
        with node_agent(kube, cluster):  # stopped mid-download, the server still running
            watch = Watch(kube, DATA_DOWNLOADS)
            restore(kube, "r1", "big", {"shop": "shop-4"})
            dd = under_way(kube, "r1")
            kube.patch(DATA_DOWNLOADS, NS, dd["metadata"]["name"], {"spec": {"cancel": True}})
            r = wait_phase(kube, RESTORES, "r1", timeout=60)
            assert phase(r) == "PartiallyFailed" and r["status"]["errors"] == 1, r["status"]
            dd = kube.get(DATA_DOWNLOADS, NS, dd["metadata"]["name"])
            assert dd["status"]["phase"] == "Canceled" and dd["status"]["message"], dd["status"]
            assert phases_seen(watch.close(), dd["metadata"]["name"])[-3:] == ["InProgress", "Canceling", "Canceled"]
            assert 0 < dd["status"]["progress"]["bytesDone"] < 320 * MIB
            wait_for(lambda: helpers_left(kube), lambda left: left == [], 20, "the helpers gone")
            assert phase(kube.get(PVCS, "shop-4", "disk")) != "Bound"

            # Deleting the restore takes its downloads with it; the agent stops and cleans up.
            restore(kube, "r2", "big", {"shop": "shop-5"})
            under_way(kube, "r2")
            kube.delete(RESTORES, NS, "r2")
            wait_for(lambda: (downloads_of(kube, "r2"), helpers_left(kube)), lambda v: v == ({}, []), 30,
                     "the download and its helpers gone")

            # The agent stops (SIGTERM) mid-download: the download fails with the reason, nothing is left.
            restore(kube, "r3", "big", {"shop": "shop-6"})
            dd = under_way(kube, "r3")
        r = wait_phase(kube, RESTORES, "r3", timeout=60)
    assert phase(r) == "PartiallyFailed", r["status"]
    dd = kube.get(DATA_DOWNLOADS, NS, dd["metadata"]["name"])
    assert dd["status"]["phase"] == "Failed"
    assert dd["status"]["message"] == "the node agent stopped while restoring this volume"
    assert helpers_left(kube) == []
    restored = [pv for pv in kube.list(PVS, None)["items"] if (pv["spec"].get("claimRef") or {}).get(
        "namespace") in ("shop-4", "shop-5", "shop-6")]
    assert restored == []  # no half-written volume was handed to a claim


def test_restore_pvs_false_restores_the_claims_without_their_data(kube: Kube, location: str, cluster: Cluster,
                                                                   tmp_path: Path) -> None:
    (tmp_path / "small").mkdir()
    (tmp_path / "small" / "a.txt").write_bytes(b"x")
    moved_backup(kube, "b", [Volume("data", tmp_path / "small")])
    with running_server(kube):
        wait_for(lambda: kube.get_or_none(BACKUPS, NS, "b"), lambda b: b is not None, 30, "backup b synced")
        kube.create(RESTORES, NS, velero_object("Restore", "r", {"backupName": "b", "restorePVs": False,
                                                                  "namespaceMapping": {"shop": "shop-8"}}))
        r = wait_phase(kube, RESTORES, "r", timeout=60)
    assert phase(r) == "Completed", r["status"]
    assert downloads_of(kube, "r") == {}
    claim = kube.get(PVCS, "shop-8", "data")
    assert "selector" not in claim["spec"]  # the provisioner gives it a new, empty volume
    assert kube.list(DATA_UPLOADS, NS)["items"] == []


def test_a_restore_pod_that_never_runs_fails_the_download_after_the_prepare_timeout(
        kube: Kube, location: str, cluster: Cluster, tmp_path: Path) -> None:
    small = tmp_path / "small"
    small.mkdir()
    (small / "a.txt").write_bytes(b"x")
    moved_backup(kube, "b", [Volume("data", small)])
    cluster.schedule = False  # no node has room for the restore pod
    with agent_and_server(kube, cluster, prepare_timeout=1.0):
        restore(kube, "r", "b", {"shop": "shop-7"})
        r = wait_phase(kube, RESTORES, "r", timeout=60)
    assert phase(r) == "PartiallyFailed", r["status"]
    (dd,) = downloads_of(kube, "r").values()
    assert dd["status"]["phase"] == "Failed"
    assert dd["status"]["message"] == (f"timed out after 1s waiting for the restore pod {NS}/{dd['metadata']['name']} "
                                       "to run: it is not scheduled")
    assert helpers_left(kube) == []

