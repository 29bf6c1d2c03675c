"""The actors of a cluster with CSI snapshots, played on the Kubernetes API double through the
API only: the snapshot controller (VolumeSnapshots get a VolumeSnapshotContent and become
ready; a content whose snapshot is gone is deleted with its storage snapshot, unless
retained), the CSI provisioner (a claim from a snapshot gets a volume holding the snapshot's
data; a deleted claim's volume goes when its policy says Delete), the scheduler and the
kubelet (pods in the mover's namespace are put on NODE once their claim is bound, their
volume is at ``<kubelet-root>/pods/<uid>/volumes/kubernetes.io~csi/<pv>/mount``, they run).
The "storage" is a directory per volume and per snapshot."""

from __future__ import annotations

import shutil
import subprocess
import threading
from pathlib import Path

from mover.kube.framework.client import Kube, KubeError, Obj, Resource
from mover.kube.framework.status import patch_status
from mover.kube.resources import (
    CRDS,
    PODS,
    VOLUME_SNAPSHOT_CLASSES,
    VOLUME_SNAPSHOT_CONTENTS,
    VOLUME_SNAPSHOTS,
    wait_established,
)
from tests.support.velero_env import NS, PVCS, PVS, phase

NODE = "node-a"
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

    def __init__(self, kube: Kube, root: Path, copy: bool = True) -> None:
        self.kube = kube
        self.root = root
        self.copy = copy  # False: snapshots share the volume's files (copy-on-write storage, for timing)
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

    def _create(self, res: Resource, body: Obj) -> None:
        try:
            self.kube.create(res, None, body)
        except KubeError as exc:
            if not exc.already_exists:  # made by an earlier pass that stopped half-way
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
                taken = self.root / "snapshots" / handle
                if self.copy and not taken.exists():  # a point-in-time copy: every kind of file, owner, time
                    subprocess.run(["cp", "-a", "--", str(self.volume(pvc["spec"]["volumeName"])),
                                    str(taken) + ".part"], check=True)
                    (Path(str(taken) + ".part")).rename(taken)
                elif not taken.exists():
                    taken.symlink_to(self.volume(pvc["spec"]["volumeName"]))
                content = f"snapcontent-{meta['uid']}"
                self._create(VOLUME_SNAPSHOT_CONTENTS, {
                    "apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshotContent",
                    "metadata": {"name": content}, "spec": {
                    "driver": DRIVER, "deletionPolicy": cls["deletionPolicy"],
                    "source": {"volumeHandle": pvc["spec"]["volumeName"]},
                    "volumeSnapshotClassName": cls["metadata"]["name"],
                    "volumeSnapshotRef": {"namespace": meta["namespace"], "name": meta["name"], "uid": meta["uid"]}}})
            else:  # pre-provisioned: the content names the snapshot handle; binding records the uid
                content = source["volumeSnapshotContentName"]
                handle = self.kube.get(VOLUME_SNAPSHOT_CONTENTS, None, content)["spec"]["source"]["snapshotHandle"]
                self.kube.patch(VOLUME_SNAPSHOT_CONTENTS, None, content,
                                {"spec": {"volumeSnapshotRef": {"uid": meta["uid"]}}})
            patch_status(self.kube, VOLUME_SNAPSHOT_CONTENTS, None, content,
                         {"readyToUse": True, "snapshotHandle": handle, "restoreSize": 1 << 30})
            patch_status(self.kube, VOLUME_SNAPSHOTS, meta["namespace"], meta["name"],
                         {"readyToUse": True, "boundVolumeSnapshotContentName": content, "restoreSize": "1Gi"})

    def _contents(self) -> None:
        # Contents first: one made a moment later may belong to a snapshot also made meanwhile.
        contents = self._list(VOLUME_SNAPSHOT_CONTENTS, None)
        snapshots = {o["metadata"]["uid"] for o in self._list(VOLUME_SNAPSHOTS, None)}
        for vsc in contents:
            ref = vsc["spec"]["volumeSnapshotRef"]
            # Only a content that was bound to a snapshot since deleted: a new static one waits.
            if not ref.get("uid") or ref["uid"] in snapshots or vsc["spec"]["deletionPolicy"] != "Delete":
                continue
            self.kube.delete(VOLUME_SNAPSHOT_CONTENTS, None, vsc["metadata"]["name"])
            handle = (vsc.get("status") or {}).get("snapshotHandle")
            snapshot = self.root / "snapshots" / (handle or "-")
            if handle and snapshot.is_symlink():
                snapshot.unlink()
            elif handle:
                shutil.rmtree(snapshot, ignore_errors=True)

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




def snapshot_classes(kube: Kube) -> None:
    """The class Velero picks for DRIVER (labelled), and a labelled one of another driver."""
    for name, driver in (("csi-snap", DRIVER), ("other-driver", "other.example.com")):
        kube.create(VOLUME_SNAPSHOT_CLASSES, None, {
            "apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshotClass",
            "metadata": {"name": name, "labels": {"velero.io/csi-volumesnapshot-class": "true"}},
            "driver": driver, "deletionPolicy": "Delete"})
