"""CSI snapshot data movement, backup side: a Backup with ``snapshotMoveData`` on the
Kubernetes API double and SeaweedFS, `mover server` with `mover node-agent`; the snapshot
controller, provisioner, scheduler and kubelet are played by tests/support/csi.py. Last, the
round trip: such a backup restored through DataDownloads (tests/kube/test_datadownload.py)."""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from mover.deploy import crds
from mover.kube import datapath
from mover.kube.framework.client import Kube, Obj
from mover.kube.nodeagent import NodeAgent, NodeAgentOptions
from mover.kube.resources import (
    BACKUPS,
    DATA_UPLOADS,
    NAMESPACES,
    PODS,
    RESTORES,
    VOLUME_SNAPSHOT_CONTENTS,
    VOLUME_SNAPSHOTS,
)
from mover.velero.nodeagentconfig import BackupPVC, NodeAgentConfig
from tests.kube.test_datadownload import (
    MIB,
    bucket_view,
    downloads_of,
    helpers_left,
    mixed_file,
    phases_seen,
    restore,
)
from tests.kube.test_nodeagent import bucket_store, restic
from tests.support.csi import DRIVER, NODE, Cluster, running_cluster
from tests.support.s3server import S3Server
from tests.support.treekit import assert_same_tree, make_full_tree
from tests.support.velero_env import NS, PVCS, PVS, Watch, phase, running_server, velero_object, wait_for, wait_phase


@pytest.fixture
def cluster(kube: Kube, tmp_path: Path) -> Iterator[Cluster]:
    with running_cluster(kube, tmp_path / "cluster") as c:
        yield c


READ_ONLY = NodeAgentConfig({"ceph-rbd": BackupPVC(storage_class="ceph-rbd-clone", read_only=True,
                                                   spc_no_relabeling=True)})


@contextmanager
def node_agent(kube: Kube, cluster: Cluster) -> Iterator[NodeAgent]:
    agent = NodeAgent(kube, NodeAgentOptions(node_name=NODE, kubelet_root=str(cluster.kubelet), namespace=NS,
                                             resync=0.5, watch_seconds=5, config=READ_ONLY)).start()
    try:
        yield agent
    finally:
        agent.stop(grace=10)


def shop(kube: Kube, cluster: Cluster, big_mib: int = 0) -> tuple[Path, Path]:
    """Namespace shop: claim ``db`` (class fast, RWO) and ``media`` (class ceph-rbd, which the
    agent's config backs up read-only); returns their data directories."""
    kube.create(NAMESPACES, None, {"metadata": {"name": "shop"}})
    db = cluster.claim("shop", "db", "fast")
    media = cluster.claim("shop", "media", "ceph-rbd", "ReadWriteMany")
    make_full_tree(db)
    (media / "photos").mkdir()
    for i in range(3):
        (media / "photos" / f"{i}.jpg").write_bytes(bytes([i]) * (100_000 + i))
    if big_mib:
        with open(db / "big.bin", "wb") as f:
            f.writelines(os.urandom(1 << 20) for _ in range(big_mib))  # slow enough to watch it move
    return db, media


def move_data_backup(kube: Kube, name: str, **spec: Any) -> Obj:
    return kube.create(BACKUPS, NS, velero_object("Backup", name, {
        "includedNamespaces": ["shop"], "snapshotMoveData": True, **spec}))


def uploads_of(kube: Kube, backup: str) -> dict[str, Obj]:
    items = kube.list(DATA_UPLOADS, NS, label_selector=f"velero.io/backup-name={backup}")["items"]
    return {o["spec"]["sourcePVC"]: o for o in items}


def gone(kube: Kube, cluster: Cluster) -> list[str]:
    """The intermediate objects that still exist (the source claims' volumes are not intermediate)."""
    left = []
    lookups = {"VolumeSnapshot": VOLUME_SNAPSHOTS, "VolumeSnapshotContent": VOLUME_SNAPSHOT_CONTENTS,
               "PersistentVolumeClaim": PVCS, "PersistentVolume": PVS, "Pod": PODS}
    for (kind, key), _ in cluster.seen.items():
        ns, name = key.split("/")
        if kind == "PersistentVolume" and name.startswith("pv-shop-"):
            continue
        if kube.get_or_none(lookups[kind], ns or None, name) is not None:
            left.append(f"{kind} {key}")
    return left


def test_snapshot_move_data_backs_up_each_claim_through_a_snapshot_and_cleans_up(
        kube: Kube, location: str, cluster: Cluster, s3_server: S3Server, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Progress written more often than the agent's 1 s, so a fast machine's upload still shows
    # its bytes rising through the watch.
    monkeypatch.setattr(datapath, "PROGRESS_EVERY", 0.1)
    db, media = shop(kube, cluster, big_mib=160)
    with running_server(kube), node_agent(kube, cluster):
        watch = Watch(kube, DATA_UPLOADS)
        move_data_backup(kube, "b1")
        b = wait_phase(kube, BACKUPS, "b1", timeout=120)
        events = watch.close()
        assert phase(b) == "Completed", b["status"]
        wait_for(lambda: gone(kube, cluster), lambda left: not left, 10, "the intermediate objects to go")

    uploads = uploads_of(kube, "b1")
    assert sorted(uploads) == ["db", "media"]
    for du in uploads.values():
        spec, status = du["spec"], du["status"]
        assert du["apiVersion"] == "velero.io/v2alpha1"
        assert spec["snapshotType"] == "CSI" and spec["sourceNamespace"] == "shop" and spec["datamover"] == "velero"
        assert spec["backupStorageLocation"] == "default" and spec["operationTimeout"] == "10m0s"
        assert spec["csiSnapshot"]["snapshotClass"] == "csi-snap" and spec["csiSnapshot"]["driver"] == DRIVER
        assert du["metadata"]["ownerReferences"][0]["name"] == "b1"
        assert status["phase"] == "Completed" and status["node"] == NODE and status["acceptedByNode"] == NODE
        assert len(status["snapshotID"]) == 8 and status["progress"]["bytesDone"] == status["progress"]["totalBytes"]

    # Through the watch: every phase in order, the bytes rising while it moves.
    big = uploads["db"]["metadata"]["name"]
    seen = [(phase(e) or "New", (e.get("status") or {}).get("progress") or {}) for e in events
            if e["metadata"]["name"] == big]
    assert phases_seen(events, big) == ["New", "Accepted", "Prepared", "InProgress", "Completed"]
    done = [p.get("bytesDone", 0) for ph, p in seen if ph == "InProgress"]
    total = seen[-1][1]["totalBytes"]
    assert any(0 < d < total for d in done) and done == sorted(done), done

    # Every intermediate object was there, and is gone: the source snapshots and their contents,
    # the backup snapshots, contents, claims, their volumes, the exposer pods.
    kinds = sorted({kind for kind, _ in cluster.seen})
    assert kinds == ["PersistentVolume", "PersistentVolumeClaim", "Pod", "VolumeSnapshot", "VolumeSnapshotContent"]
    claims = {o["spec"]["dataSource"]["name"]: o for (k, _), o in cluster.seen.items() if k == "PersistentVolumeClaim"}
    assert claims[uploads["media"]["metadata"]["name"]]["spec"]["accessModes"] == ["ReadOnlyMany"]
    assert claims[uploads["media"]["metadata"]["name"]]["spec"]["storageClassName"] == "ceph-rbd-clone"
    assert claims[big]["spec"]["accessModes"] == ["ReadWriteOnce"] and claims[big]["spec"]["storageClassName"] == "fast"
    pods = [o for (k, _), o in cluster.seen.items() if k == "Pod"]
    assert len(pods) == 2
    assert sum(1 for k, key in cluster.seen if k == "VolumeSnapshot" and key.startswith("shop/")) == 2
    assert sum(1 for k, key in cluster.seen if k == "VolumeSnapshot" and key.startswith(f"{NS}/")) == 2
    assert not any((cluster.root / "snapshots").iterdir())  # the storage snapshots are deleted too

    # The bucket records each volume; the repository is restic's and holds the very bytes.
    store = bucket_store(kube)
    infos = json.loads(gzip.decompress(store.store.get("backups/b1/b1-volumeinfo.json.gz")))
    store.close()
    by_claim = {i["pvcName"]: i for i in infos}
    assert sorted(by_claim) == ["db", "media"]
    for claim, info in by_claim.items():
        assert info["backupMethod"] == "CSISnapshot" and info["snapshotDataMoved"] is True
        assert info["pvcNamespace"] == "shop" and info["pvName"] == f"pv-shop-{claim}" and info["result"] == "succeeded"
        moved = info["snapshotDataMovementInfo"]
        assert moved["uploaderType"] == "restic" and moved["dataMover"] == "velero"
        assert moved["snapshotHandle"] == uploads[claim]["status"]["snapshotID"]
    repo = restic(kube, s3_server, location, "shop")
    repo.run("check", "--read-data")
    for claim, source in (("db", db), ("media", media)):
        out = tmp_path / f"restored-{claim}"
        repo.run("restore", uploads[claim]["status"]["snapshotID"], "--target", str(out))
        assert_same_tree(source, out)


def test_datauploads_print_velero_s_columns() -> None:
    (crd,) = [d for d in crds.load() if d["metadata"]["name"] == "datauploads.velero.io"]
    columns = crd["spec"]["versions"][0]["additionalPrinterColumns"]
    assert [c["name"].upper() for c in columns if not c.get("priority")] == [
        "STATUS", "STARTED", "BYTES DONE", "TOTAL BYTES", "STORAGE LOCATION", "AGE", "NODE"]


def test_a_snapshot_that_never_gets_ready_fails_its_volume_with_the_reason_and_cleans_up(
        kube: Kube, location: str, cluster: Cluster) -> None:
    shop(kube, cluster)
    cluster.stuck["db"] = "failed to take snapshot of the volume: quota exceeded"
    with running_server(kube), node_agent(kube, cluster):
        move_data_backup(kube, "b1", csiSnapshotTimeout="2s")
        b = wait_phase(kube, BACKUPS, "b1", timeout=60)
        wait_for(lambda: gone(kube, cluster), lambda left: not left, 10, "the intermediate objects to go")
    assert phase(b) == "PartiallyFailed", b["status"]
    uploads = uploads_of(kube, "b1")
    assert uploads["media"]["status"]["phase"] == "Completed"
    failed = uploads["db"]["status"]
    assert failed["phase"] == "Failed", failed
    snapshot = uploads["db"]["spec"]["csiSnapshot"]["volumeSnapshot"]
    assert failed["message"] == (f"volume snapshot shop/{snapshot} was not ready to use in 2s: failed to take "
                                 "snapshot of the volume: quota exceeded")
    assert ("VolumeSnapshot", f"shop/{snapshot}") in cluster.seen
    log = gzip.decompress(bucket_store(kube).store.get("backups/b1/b1-logs.gz")).decode()
    assert "quota exceeded" in log


def wait_moving(kube: Kube, backup: str, claim: str) -> Obj:
    return wait_for(lambda: uploads_of(kube, backup).get(claim),
                    lambda du: du is not None and ((du.get("status") or {}).get("progress") or {}).get("bytesDone", 0) > 0,
                    60, f"the data upload of {claim} under way")


def test_a_cancelled_upload_or_deleted_backup_stops_cleans_up_and_leaves_the_repository_valid(
        kube: Kube, location: str, cluster: Cluster, s3_server: S3Server) -> None:
    shop(kube, cluster, big_mib=160)
    with running_server(kube), node_agent(kube, cluster):
        watch = Watch(kube, DATA_UPLOADS)
        move_data_backup(kube, "b1")
        du = wait_moving(kube, "b1", "db")
        kube.patch(DATA_UPLOADS, NS, du["metadata"]["name"], {"spec": {"cancel": True}})
        b = wait_phase(kube, BACKUPS, "b1", timeout=60)
        wait_for(lambda: gone(kube, cluster), lambda left: not left, 10, "the intermediate objects to go")
        assert phase(b) == "PartiallyFailed", b["status"]
        status = uploads_of(kube, "b1")["db"]["status"]
        assert status["phase"] == "Canceled" and status["message"] == "the data upload was canceled", status
        # As Velero's: Canceling once the agent saw the cancel, Canceled once the upload stopped.
        assert phases_seen(watch.close(), du["metadata"]["name"])[-3:] == ["InProgress", "Canceling", "Canceled"]

        # Deleting the backup while its volume moves cancels it too.
        move_data_backup(kube, "b2")
        wait_moving(kube, "b2", "db")
        kube.delete(BACKUPS, NS, "b2")
        wait_for(lambda: gone(kube, cluster), lambda left: not left, 30, "the intermediate objects to go")
        wait_for(lambda: uploads_of(kube, "b2").get("db"),
                 lambda du: du is None or phase(du) == "Canceled", 30, "the upload of b2 to stop")
    repo = restic(kube, s3_server, location, "shop")
    repo.run("check", "--read-data")
    assert not repo.run("list", "locks", "--no-lock").stdout.split()


def test_the_next_backup_of_a_claim_has_the_last_one_as_parent(
        kube: Kube, location: str, cluster: Cluster, s3_server: S3Server) -> None:
    db, _ = shop(kube, cluster)
    with running_server(kube), node_agent(kube, cluster):
        move_data_backup(kube, "b1")
        assert phase(wait_phase(kube, BACKUPS, "b1", timeout=60)) == "Completed"
        (db / "new.txt").write_bytes(b"written after the first backup\n")
        move_data_backup(kube, "b2")
        assert phase(wait_phase(kube, BACKUPS, "b2", timeout=60)) == "Completed"
    first, second = (uploads_of(kube, b)["db"]["status"] for b in ("b1", "b2"))
    repo = restic(kube, s3_server, location, "shop")
    snaps = {s["short_id"]: s for s in json.loads(repo.run("snapshots", "--json").stdout)}
    assert snaps[second["snapshotID"]]["parent"] == snaps[first["snapshotID"]]["id"]
    assert {"ns=shop", "pvc=db"} <= set(snaps[second["snapshotID"]]["tags"])
    # Only what changed is stored again: the new file and the trees above it.
    assert 0 < second["progress"]["incrementalBytes"] < 64 << 10 < first["progress"]["incrementalBytes"]


def test_the_snapshot_class_is_the_claim_s_then_the_backup_s_then_the_labelled_one() -> None:
    from mover.errors import RepoError
    from mover.velero.datamovement import snapshot_class

    def cls(name: str, driver: str = DRIVER, labelled: bool = False) -> Obj:
        return {"metadata": {"name": name, "labels": {"velero.io/csi-volumesnapshot-class": "true"} if labelled
                             else {}}, "driver": driver}

    classes = [cls("plain"), cls("velero", labelled=True), cls("gold"), cls("foreign", "other.example.com", True)]
    pvc: Obj = {"metadata": {"name": "db", "namespace": "shop"}}
    backup: Obj = {"metadata": {"name": "b"}}
    assert snapshot_class(backup, pvc, DRIVER, classes) == "velero"
    backup["metadata"]["annotations"] = {f"velero.io/csi-volumesnapshot-class_{DRIVER}": "gold"}
    assert snapshot_class(backup, pvc, DRIVER, classes) == "gold"
    pvc["metadata"]["annotations"] = {"velero.io/csi-volumesnapshot-class": "plain"}
    assert snapshot_class(backup, pvc, DRIVER, classes) == "plain"
    pvc["metadata"]["annotations"] = {"velero.io/csi-volumesnapshot-class": "foreign"}
    with pytest.raises(RepoError, match="volume snapshot class foreign named by claim shop/db's annotation does "
                                        f"not exist for driver {DRIVER}"):
        snapshot_class(backup, pvc, DRIVER, classes)
    with pytest.raises(RepoError, match=r"label one class velero.io/csi-volumesnapshot-class=\"true\" "
                                        r"\(labelled now: none\)"):
        snapshot_class({"metadata": {"name": "b"}}, {"metadata": {"name": "db", "namespace": "shop"}}, DRIVER,
                       [cls("plain")])


def test_a_moved_backup_restores_through_data_downloads_byte_for_byte(
        kube: Kube, location: str, cluster: Cluster, s3_server: S3Server) -> None:
    """The round trip: what the backup side writes (the DataUploads in the tarball, the
    snapshots in the repository) is what the restore side reads."""
    shop(kube, cluster)
    with running_server(kube), node_agent(kube, cluster):
        move_data_backup(kube, "b1")
        assert phase(wait_phase(kube, BACKUPS, "b1", timeout=60)) == "Completed"
        uploads = uploads_of(kube, "b1")

        # The namespace goes, its claims with it; their volumes are deleted (kept aside here to compare).
        kube.delete(NAMESPACES, None, "shop")
        wait_for(lambda: [kube.get_or_none(PVS, None, f"pv-shop-{c}") for c in ("db", "media")],
                 lambda left: left == [None, None], 20, "the source volumes deleted")
        assert kube.get_or_none(NAMESPACES, None, "shop") is None

        restore(kube, "r1", "b1", {})
        r = wait_phase(kube, RESTORES, "r1", timeout=60)
    assert phase(r) == "Completed", r["status"]
    dds = downloads_of(kube, "r1")
    assert sorted(dds) == ["db", "media"]
    for claim, dd in dds.items():
        assert dd["spec"]["snapshotID"] == uploads[claim]["status"]["snapshotID"], dd["spec"]
        assert dd["spec"]["sourceNamespace"] == "shop" and dd["spec"]["targetVolume"]["namespace"] == "shop"
        assert dd["status"]["phase"] == "Completed", dd["status"]
        restored = kube.get(PVCS, "shop", claim)
        assert phase(restored) == "Bound" and restored["spec"]["volumeName"] != f"pv-shop-{claim}"
        assert_same_tree(cluster.volume(f"deleted-pv-shop-{claim}"), cluster.disk_of("shop", claim))
    assert helpers_left(kube) == []
    restic(kube, s3_server, location, "shop").run("check", "--read-data")


def test_a_block_volume_is_backed_up_as_its_device_s_bytes_and_restored_onto_a_new_device(
        kube: Kube, location: str, cluster: Cluster, s3_server: S3Server, tmp_path: Path) -> None:
    kube.create(NAMESPACES, None, {"metadata": {"name": "shop"}})
    device = cluster.claim("shop", "disk", "fast", size="24Mi", block=True)
    mixed_file(device, 24, seed=7)
    image = device.read_bytes()
    with running_server(kube), node_agent(kube, cluster):
        move_data_backup(kube, "b1")
        assert phase(wait_phase(kube, BACKUPS, "b1", timeout=60)) == "Completed"
        move_data_backup(kube, "b2")  # the device did not change
        assert phase(wait_phase(kube, BACKUPS, "b2", timeout=60)) == "Completed"
        wait_for(lambda: gone(kube, cluster), lambda left: not left, 10, "the intermediate objects to go")
        first, second = (uploads_of(kube, b)["disk"]["status"] for b in ("b1", "b2"))
        pods = [o for (k, _), o in cluster.seen.items() if k == "Pod"]
        assert pods and all("volumeDevices" in p["spec"]["containers"][0] for p in pods)

        # The device's bytes moved, all of them, each time; the second time nothing was new.
        assert first["progress"]["totalBytes"] == first["progress"]["bytesDone"] == 24 * MIB
        assert second["progress"]["totalBytes"] == second["progress"]["bytesDone"] == 24 * MIB
        assert first["progress"]["incrementalBytes"] > 12 * MIB and second["progress"]["incrementalBytes"] == 0

        kube.delete(NAMESPACES, None, "shop")
        wait_for(lambda: kube.get_or_none(PVS, None, "pv-shop-disk"), lambda pv: pv is None, 20,
                 "the source volume deleted")
        restore(kube, "r1", "b2", {})
        r = wait_phase(kube, RESTORES, "r1", timeout=60)
    assert phase(r) == "Completed", r["status"]
    restored = kube.get(PVCS, "shop", "disk")
    assert restored["spec"]["volumeMode"] == "Block" and phase(restored) == "Bound"
    assert cluster.disk_of("shop", "disk").read_bytes() == image  # a new device, byte for byte

    # restic is the peer: the snapshot is one file holding the device's bytes, the second the
    # first's tree again.
    repo = restic(kube, s3_server, location, "shop")
    repo.run("check", "--read-data")
    snaps = {s["short_id"]: s for s in json.loads(repo.run("snapshots", "--json").stdout)}
    assert snaps[second["snapshotID"]]["parent"] == snaps[first["snapshotID"]]["id"]
    assert snaps[second["snapshotID"]]["tree"] == snaps[first["snapshotID"]]["tree"]
    repo.run("restore", first["snapshotID"], "--target", str(tmp_path / "out"))
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["disk"]
    assert (tmp_path / "out" / "disk").read_bytes() == image

    # kbrowse --bsl shows the block volume as that file.
    with bucket_view(kube) as bucket:
        (vol,) = bucket.volumes("b2")
        view, _, node = bucket.volume_root("b2", vol)
        assert (node.name, node.type, node.size) == ("disk", "file", 24 * MIB)
        assert b"".join(view.iter_content(node)) == image


def snapshots_in(kube: Kube, namespace: str) -> list[str]:
    return [o["metadata"]["name"] for o in kube.list(VOLUME_SNAPSHOTS, namespace)["items"]]


def snapshots_gone(kube: Kube, cluster: Cluster) -> None:
    """Wait until the volume snapshots, their contents and the storage's snapshots are deleted."""
    wait_for(lambda: (snapshots_in(kube, "shop"), kube.list(VOLUME_SNAPSHOT_CONTENTS)["items"],
                      list((cluster.root / "snapshots").iterdir())),
             lambda left: left == ([], [], []), 20, "the volume snapshots deleted")


def test_a_backup_deleted_before_an_agent_takes_its_uploads_removes_their_snapshots(
        kube: Kube, location: str, cluster: Cluster) -> None:
    shop(kube, cluster)
    with running_server(kube):  # no node agent: nobody accepts the uploads
        # One upload deleted by hand, the other never taken until the item operation timeout:
        # neither leaves its snapshot behind.
        move_data_backup(kube, "b0", itemOperationTimeout="4s")
        wait_for(lambda: uploads_of(kube, "b0"), lambda ups: len(ups) == 2, 30, "the data uploads")
        kube.delete(DATA_UPLOADS, NS, uploads_of(kube, "b0")["db"]["metadata"]["name"])
        b = wait_phase(kube, BACKUPS, "b0", timeout=60)
        assert phase(b) == "PartiallyFailed" and b["status"]["errors"] == 2, b["status"]
        assert uploads_of(kube, "b0")["media"]["spec"]["cancel"] is True
        snapshots_gone(kube, cluster)

        move_data_backup(kube, "b1")
        wait_for(lambda: uploads_of(kube, "b1"), lambda ups: len(ups) == 2, 30, "the data uploads")
        wait_for(lambda: kube.list(VOLUME_SNAPSHOT_CONTENTS)["items"], lambda c: len(c) == 2, 10,
                 "the snapshots taken")
        assert phase(wait_phase(kube, BACKUPS, "b1", ("InProgress",))) == "InProgress"
        kube.delete(BACKUPS, NS, "b1")
        snapshots_gone(kube, cluster)
    assert uploads_of(kube, "b1") == {}


def test_an_upload_that_outlasts_the_item_operation_timeout_is_canceled_and_cleaned_up(
        kube: Kube, location: str, cluster: Cluster) -> None:
    kube.create(NAMESPACES, None, {"metadata": {"name": "shop"}})
    cluster.claim("shop", "db", "fast")
    cluster.stuck["db"] = "the storage system is slow today"  # the snapshot stays not ready
    with running_server(kube), node_agent(kube, cluster):
        move_data_backup(kube, "b1", itemOperationTimeout="3s")
        b = wait_phase(kube, BACKUPS, "b1", timeout=60)
        assert phase(b) == "PartiallyFailed", b["status"]
        (du,) = uploads_of(kube, "b1").values()
        name = du["metadata"]["name"]
        assert du["spec"]["cancel"] is True and du["spec"]["operationTimeout"] == "10m0s"
        du = wait_phase(kube, DATA_UPLOADS, name, ("Completed", "Failed", "Canceled"))  # its agent stops it
        assert phase(du) == "Canceled", du["status"]
        wait_for(lambda: gone(kube, cluster), lambda left: not left, 10, "the intermediate objects to go")
    log = gzip.decompress(bucket_store(kube).store.get("backups/b1/b1-logs.gz")).decode()
    assert (f"data upload {name} of claim shop/db did not finish within the backup's itemOperationTimeout of 3s "
            "(it was Accepted): canceled") in log
    assert snapshots_in(kube, "shop") == []
