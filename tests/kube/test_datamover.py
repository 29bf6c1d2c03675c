"""CSI snapshot data movement, backup side: a Backup with ``snapshotMoveData`` on the
Kubernetes API double and SeaweedFS, `mover server` with `mover node-agent`.

The tests play the cluster's other actors, through the API only: the snapshot controller
(VolumeSnapshots get a VolumeSnapshotContent and become ready; a content whose snapshot is
gone is deleted with its storage snapshot, unless retained), the CSI provisioner (a claim
from a snapshot gets a volume holding the snapshot's data; a deleted claim's volume goes),
the scheduler and the kubelet (the exposer pod is put on NODE, its volume is at
``<kubelet-root>/pods/<uid>/volumes/kubernetes.io~csi/<pv>/mount``, it runs). The "storage"
is a directory per volume and per snapshot under a temporary folder."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from mover.deploy import crds
from mover.kube.framework.client import Kube, KubeError, Obj, Resource
from mover.kube.framework.status import patch_status
from mover.kube.nodeagent import NodeAgent, NodeAgentOptions
from mover.kube.resources import (
    BACKUPS,
    CRDS,
    DATA_UPLOADS,
    NAMESPACES,
    PODS,
    VOLUME_SNAPSHOT_CLASSES,
    VOLUME_SNAPSHOT_CONTENTS,
    VOLUME_SNAPSHOTS,
    wait_established,
)
from mover.velero.nodeagentconfig import BackupPVC, NodeAgentConfig
from tests.kube.test_nodeagent import NODE, bucket_store, restic
from tests.support.s3server import S3Server
from tests.support.treekit import assert_same_tree, make_full_tree
from tests.support.velero_env import NS, PVCS, PVS, phase, running_server, velero_object, wait_for, wait_phase

DRIVER = "csi.example.com"
CSI = "kubernetes.io~csi"


def _crd(plural: str, kind: str, namespaced: bool) -> Obj:
    return {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": f"{plural}.snapshot.storage.k8s.io"},
            "spec": {"group": "snapshot.storage.k8s.io", "scope": "Namespaced" if namespaced else "Cluster",
                     "names": {"plural": plural, "kind": kind},
                     "versions": [{"name": "v1", "served": True, "storage": True, "subresources": {"status": {}},
                                   "schema": {"openAPIV3Schema": {"type": "object",
                                                                  "x-kubernetes-preserve-unknown-fields": True}}}]}}


def install_snapshot_crds(kube: Kube) -> None:
    """What the external snapshotter's deployment installs."""
    for plural, kind, namespaced in (("volumesnapshots", "VolumeSnapshot", True),
                                     ("volumesnapshotcontents", "VolumeSnapshotContent", False),
                                     ("volumesnapshotclasses", "VolumeSnapshotClass", False)):
        kube.create(CRDS, None, _crd(plural, kind, namespaced))
        wait_established(kube, f"{plural}.snapshot.storage.k8s.io", 10)


class Cluster:
    """The snapshot controller, CSI provisioner, scheduler and kubelet, one loop."""

    WATCHED: tuple[tuple[Resource, str | None], ...] = (
        (VOLUME_SNAPSHOTS, None), (VOLUME_SNAPSHOT_CONTENTS, None), (PVCS, NS), (PVS, None), (PODS, NS))

    def __init__(self, kube: Kube, root: Path) -> None:
        self.kube = kube
        self.root = root
        self.kubelet = root / "kubelet"
        (self.kubelet / "pods").mkdir(parents=True)
        (root / "volumes").mkdir()
        (root / "snapshots").mkdir()
        self.stuck: dict[str, str] = {}  # claim name -> the error its snapshots report, never ready
        self.seen: dict[tuple[str, str], Obj] = {}  # (kind, ns/name) -> the object when last seen
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self.errors: list[str] = []

    def volume(self, pv: str) -> Path:
        return self.root / "volumes" / pv

    def claim(self, ns: str, name: str, storage_class: str, mode: str = "ReadWriteOnce") -> Path:
        """A bound claim on a CSI volume, as a provisioner leaves it; returns the volume's data."""
        pv = f"pv-{ns}-{name}"
        self.kube.create(PVS, None, {"metadata": {"name": pv}, "spec": {
            "capacity": {"storage": "1Gi"}, "accessModes": [mode], "persistentVolumeReclaimPolicy": "Delete",
            "storageClassName": storage_class, "csi": {"driver": DRIVER, "volumeHandle": pv},
            "claimRef": {"namespace": ns, "name": name}}})
        self.kube.create(PVCS, ns, {"metadata": {"name": name}, "spec": {
            "accessModes": [mode], "volumeName": pv, "storageClassName": storage_class,
            "resources": {"requests": {"storage": "1Gi"}}}})
        self.volume(pv).mkdir()
        return self.volume(pv)

    def start(self) -> Cluster:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
        assert not self.errors, self.errors

    def _loop(self) -> None:
        while not self._stop.wait(0.05):
            try:
                self._snapshots()
                self._contents()
                self._claims()
                self._pods()
            except KubeError as exc:
                if not (exc.not_found or exc.conflict or exc.already_exists):
                    self.errors.append(exc.message)
            except Exception as exc:  # reported by stop(): an actor that dies would hang the test
                self.errors.append(repr(exc))
                raise

    def _list(self, res: Resource, ns: str | None) -> list[Obj]:
        items = self.kube.list(res, ns)["items"]
        for o in items:
            self.seen[(res.kind, f"{o['metadata'].get('namespace', '')}/{o['metadata']['name']}")] = o
        return items

    def _snapshots(self) -> None:
        for vs in self._list(VOLUME_SNAPSHOTS, None):
            meta, source = vs["metadata"], vs["spec"]["source"]
            if (vs.get("status") or {}).get("readyToUse"):
                continue
            claim = source.get("persistentVolumeClaimName")
            if claim:
                if claim in self.stuck:
                    patch_status(self.kube, VOLUME_SNAPSHOTS, meta["namespace"], meta["name"],
                                 {"readyToUse": False, "error": {"message": self.stuck[claim]}})
                    continue
                pvc = self.kube.get(PVCS, meta["namespace"], claim)
                cls = self.kube.get(VOLUME_SNAPSHOT_CLASSES, None, vs["spec"]["volumeSnapshotClassName"])
                handle = f"snap-{meta['uid']}"
                # A point-in-time copy, with every kind of file, owner, time and attribute.
                subprocess.run(["cp", "-a", "--", str(self.volume(pvc["spec"]["volumeName"])),
                                str(self.root / "snapshots" / handle)], check=True)
                content = f"snapcontent-{meta['uid']}"
                self.kube.create(VOLUME_SNAPSHOT_CONTENTS, None, {
                    "apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshotContent",
                    "metadata": {"name": content}, "spec": {
                    "driver": DRIVER, "deletionPolicy": cls["deletionPolicy"],
                    "source": {"volumeHandle": pvc["spec"]["volumeName"]},
                    "volumeSnapshotClassName": cls["metadata"]["name"],
                    "volumeSnapshotRef": {"namespace": meta["namespace"], "name": meta["name"], "uid": meta["uid"]}}})
            else:  # pre-provisioned: the content names the snapshot handle
                content = source["volumeSnapshotContentName"]
                handle = self.kube.get(VOLUME_SNAPSHOT_CONTENTS, None, content)["spec"]["source"]["snapshotHandle"]
            patch_status(self.kube, VOLUME_SNAPSHOT_CONTENTS, None, content,
                         {"readyToUse": True, "snapshotHandle": handle, "restoreSize": 1 << 30})
            patch_status(self.kube, VOLUME_SNAPSHOTS, meta["namespace"], meta["name"],
                         {"readyToUse": True, "boundVolumeSnapshotContentName": content, "restoreSize": "1Gi"})

    def _contents(self) -> None:
        snapshots = {(o["metadata"]["namespace"], o["metadata"]["name"]) for o in self._list(VOLUME_SNAPSHOTS, None)}
        contents = self._list(VOLUME_SNAPSHOT_CONTENTS, None)
        for vsc in contents:
            ref = vsc["spec"]["volumeSnapshotRef"]
            if (ref["namespace"], ref["name"]) in snapshots or vsc["spec"]["deletionPolicy"] != "Delete":
                continue
            self.kube.delete(VOLUME_SNAPSHOT_CONTENTS, None, vsc["metadata"]["name"])
            handle = (vsc.get("status") or {}).get("snapshotHandle")
            if handle:
                shutil.rmtree(self.root / "snapshots" / handle, ignore_errors=True)

    def _claims(self) -> None:
        claims = self._list(PVCS, NS)
        for pvc in claims:
            source = pvc["spec"].get("dataSource") or {}
            if pvc["spec"].get("volumeName") or source.get("kind") != "VolumeSnapshot":
                continue
            vs = self.kube.get(VOLUME_SNAPSHOTS, NS, source["name"])
            content = self.kube.get(VOLUME_SNAPSHOT_CONTENTS, None, vs["status"]["boundVolumeSnapshotContentName"])
            pv = f"pvc-{pvc['metadata']['uid']}"
            # A clone of the snapshot: its files, as the storage system shows them.
            self.volume(pv).symlink_to(self.root / "snapshots" / content["status"]["snapshotHandle"])
            self.kube.create(PVS, None, {"metadata": {"name": pv}, "spec": {
                "capacity": {"storage": "1Gi"}, "accessModes": pvc["spec"]["accessModes"],
                "persistentVolumeReclaimPolicy": "Retain", "csi": {"driver": DRIVER, "volumeHandle": pv},
                "claimRef": {"namespace": NS, "name": pvc["metadata"]["name"], "uid": pvc["metadata"]["uid"]}}})
            self.kube.patch(PVCS, NS, pvc["metadata"]["name"], {"spec": {"volumeName": pv}})
            patch_status(self.kube, PVCS, NS, pvc["metadata"]["name"], {"phase": "Bound"})
        bound = {p["spec"].get("volumeName") for p in claims}
        for pv in self._list(PVS, None):
            spec = pv["spec"]
            if spec["claimRef"]["namespace"] == NS and pv["metadata"]["name"] not in bound \
                    and spec["persistentVolumeReclaimPolicy"] == "Delete":
                self.kube.delete(PVS, None, pv["metadata"]["name"])
                self.volume(pv["metadata"]["name"]).unlink(missing_ok=True)

    def _pods(self) -> None:
        for pod in self._list(PODS, NS):
            meta, spec = pod["metadata"], pod["spec"]
            if spec.get("nodeName") or phase(pod) != "Pending":
                continue
            claim = self.kube.get(PVCS, NS, spec["volumes"][0]["persistentVolumeClaim"]["claimName"])
            pv = claim["spec"].get("volumeName")
            if not pv:
                continue  # unschedulable until its claim is bound
            self.kube.patch(PODS, NS, meta["name"], {"spec": {"nodeName": NODE}})
            mount = self.kubelet / "pods" / meta["uid"] / "volumes" / CSI / pv
            mount.mkdir(parents=True)
            (mount / "mount").symlink_to(self.volume(pv).resolve())
            patch_status(self.kube, PODS, NS, meta["name"], {"phase": "Running"})


@pytest.fixture
def cluster(kube: Kube, tmp_path: Path) -> Iterator[Cluster]:
    install_snapshot_crds(kube)
    kube.create(VOLUME_SNAPSHOT_CLASSES, None, {
        "apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshotClass",
        "metadata": {"name": "csi-snap", "labels": {"velero.io/csi-volumesnapshot-class": "true"}},
        "driver": DRIVER, "deletionPolicy": "Delete"})
    kube.create(VOLUME_SNAPSHOT_CLASSES, None, {
        "apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshotClass",
        "metadata": {"name": "other-driver", "labels": {"velero.io/csi-volumesnapshot-class": "true"}},
        "driver": "other.example.com", "deletionPolicy": "Delete"})
    c = Cluster(kube, tmp_path / "cluster").start()
    yield c
    c.stop()


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


class Watch:
    """Every change of the DataUploads, as a watch delivers them."""

    def __init__(self, kube: Kube) -> None:
        self.events: list[Obj] = []
        self._stream = kube.watch(DATA_UPLOADS, NS, kube.list(DATA_UPLOADS, NS)["resourceVersion"], 120)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for event in self._stream:
                self.events.append(event["object"])
        except KubeError:
            pass

    def close(self) -> list[Obj]:
        self._stream.close()
        self._thread.join(5)
        return self.events


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
        kube: Kube, location: str, cluster: Cluster, s3_server: S3Server, tmp_path: Path) -> None:
    db, media = shop(kube, cluster, big_mib=160)
    with running_server(kube), node_agent(kube, cluster):
        watch = Watch(kube)
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
    phases = [p for i, (p, _) in enumerate(seen) if i == 0 or seen[i - 1][0] != p]
    assert phases == ["New", "Accepted", "Prepared", "InProgress", "Completed"], phases
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
