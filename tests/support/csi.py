"""The actors of a cluster with CSI snapshots, played on the Kubernetes API double through the
API only: the snapshot controller (VolumeSnapshots get a VolumeSnapshotContent and become
ready; a content whose snapshot is gone is deleted with its storage snapshot, unless
retained), the CSI provisioner (a claim gets a volume: empty, or holding the data of the
snapshot it names), the PV binder (a volume goes to the claim its claimRef names when the
claim's selector matches it; a volume whose claim is gone is deleted or released as its
policy says), the scheduler and the kubelet (pods in the mover's namespace are put on NODE
once their claims are bound; a volume is at ``<kubelet-root>/pods/<uid>/volumes/kubernetes.io~csi/<pv>/mount``,
a block volume's device at ``.../volumeDevices/kubernetes.io~csi/<pv>``; they run).
The "storage" is a directory per volume (a file per block volume) and per snapshot."""

from __future__ import annotations

import shutil
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
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
    """The snapshot controller, CSI provisioner and PV binder, scheduler and kubelet of one
    node, in one loop. Every claim and pod of the server's namespace, every volume, snapshot
    and content is kept as last seen, to show the helpers came and went."""

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
        self.schedule = True  # False: no node has room for a pod
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self.errors: list[str] = []

    def volume(self, pv: str) -> Path:
        """The storage of volume ``pv``: a folder, or for a block volume a file."""
        return self.root / "volumes" / pv

    def disk_of(self, namespace: str, claim: str) -> Path:
        return self.volume(self.kube.get(PVCS, namespace, claim)["spec"]["volumeName"])

    def claim(self, ns: str, name: str, storage_class: str, mode: str = "ReadWriteOnce", size: str = "1Gi",
              block: bool = False) -> Path:
        """A bound claim on a CSI volume, as a provisioner leaves it; returns the volume's data:
        a folder, or with ``block`` the device (a file of ``size`` bytes, zeros)."""
        pv, volume_mode = f"pv-{ns}-{name}", "Block" if block else "Filesystem"
        pvc = self.kube.create(PVCS, ns, {"metadata": {"name": name}, "spec": {
            "accessModes": [mode], "volumeName": pv, "storageClassName": storage_class, "volumeMode": volume_mode,
            "resources": {"requests": {"storage": size}}}})
        if block:
            with open(self.volume(pv), "xb") as f:
                f.truncate(_bytes(size))
        else:
            self.volume(pv).mkdir()
        self.kube.create(PVS, None, {"metadata": {"name": pv}, "spec": {
            "capacity": {"storage": size}, "accessModes": [mode], "persistentVolumeReclaimPolicy": "Delete",
            "storageClassName": storage_class, "volumeMode": volume_mode, "csi": {"driver": DRIVER, "volumeHandle": pv},
            "claimRef": {"namespace": ns, "name": name, "uid": pvc["metadata"]["uid"]}}})
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
            except KubeError as exc:  # an object changed under us: the next round sees the new state
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
            where = o["metadata"].get("namespace", "")
            if res not in (PVCS, PODS) or where == NS:
                self.seen[(res.kind, f"{where}/{o['metadata']['name']}")] = o
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
        claims = self._list(PVCS, None)  # read before the volumes: see _bind
        for pvc in claims:
            spec = pvc["spec"]
            if not spec.get("volumeName") and not spec.get("selector") and not pvc["metadata"].get(
                    "deletionTimestamp"):
                self._provision(pvc)
        by_key = {(c["metadata"]["namespace"], c["metadata"]["name"]): c for c in claims}
        for pv in self._list(PVS, None):
            self._bind(pv, by_key)

    def _provision(self, pvc: Obj) -> None:
        """A new volume for ``pvc``: a clone of the snapshot it names, or empty (a folder, or a
        file of the claim's size for a block volume)."""
        meta, spec = pvc["metadata"], pvc["spec"]
        pv = f"pvc-{meta['uid']}"
        storage = self.volume(pv)
        source = spec.get("dataSource") or {}
        if source.get("kind") == "VolumeSnapshot":
            vs = self.kube.get(VOLUME_SNAPSHOTS, meta["namespace"], source["name"])
            bound = (vs.get("status") or {}).get("boundVolumeSnapshotContentName")
            if not (vs.get("status") or {}).get("readyToUse") or not bound:
                return  # a provisioner clones a snapshot only once it is ready: the next round
            content = self.kube.get(VOLUME_SNAPSHOT_CONTENTS, None, bound)
            if not (content.get("status") or {}).get("snapshotHandle"):
                return
            if not storage.is_symlink():  # a clone of the snapshot: its files, as the storage system shows them
                storage.symlink_to(self.root / "snapshots" / content["status"]["snapshotHandle"])
        elif spec.get("volumeMode") == "Block":
            with open(storage, "ab") as f:
                f.truncate(_bytes(spec["resources"]["requests"]["storage"]))
        else:
            storage.mkdir(exist_ok=True)
        self._create(PVS, {"metadata": {"name": pv}, "spec": {
            "capacity": {"storage": spec["resources"]["requests"]["storage"]}, "accessModes": spec["accessModes"],
            "volumeMode": spec.get("volumeMode", "Filesystem"), "persistentVolumeReclaimPolicy": "Delete",
            "storageClassName": spec.get("storageClassName"), "csi": {"driver": DRIVER, "volumeHandle": pv},
            "claimRef": {"kind": "PersistentVolumeClaim", "namespace": meta["namespace"], "name": meta["name"],
                         "uid": meta["uid"]}}})

    def _bind(self, pv: Obj, claims: dict[tuple[str, str], Obj]) -> None:
        """The PV controller: bind a volume to the claim its claimRef names (when the claim's
        selector matches it), release or delete a volume whose claim is gone."""
        name, ref = pv["metadata"]["name"], pv["spec"].get("claimRef") or {}
        if not ref:
            return
        claim = claims.get((ref.get("namespace"), ref.get("name")))
        if claim is not None and claim["metadata"]["uid"] == ref.get("uid"):
            bound_to = claim["spec"].get("volumeName")
            wanted = ((claim["spec"].get("selector") or {}).get("matchLabels") or {}).items()
            if not bound_to and wanted <= (pv["metadata"].get("labels") or {}).items():
                self.kube.patch(PVCS, ref["namespace"], ref["name"], {"spec": {"volumeName": name}})
                bound_to = name
            if bound_to == name:
                if phase(claim) != "Bound":
                    patch_status(self.kube, PVCS, ref["namespace"], ref["name"], {"phase": "Bound"})
                if phase(pv) != "Bound":
                    patch_status(self.kube, PVS, None, name, {"phase": "Bound"})
        elif pv["spec"].get("persistentVolumeReclaimPolicy") == "Delete":
            self.kube.delete(PVS, None, name)
            storage = self.volume(name)
            if storage.is_dir() and not storage.is_symlink():  # kept aside: a test may compare with it
                storage.rename(self.volume(f"deleted-{name}"))
            else:
                storage.unlink(missing_ok=True)
        elif phase(pv) != "Released":
            patch_status(self.kube, PVS, None, name, {"phase": "Released"})

    def _pods(self) -> None:
        for pod in self._list(PODS, NS):
            if pod["spec"].get("nodeName") or not self.schedule:
                continue
            volumes = {}
            for volume in pod["spec"].get("volumes") or []:
                claim = self.kube.get_or_none(PVCS, NS, volume["persistentVolumeClaim"]["claimName"])
                if claim is None or phase(claim) != "Bound":
                    break  # unschedulable until its claims are bound
                volumes[volume["name"]] = claim["spec"]["volumeName"]
            else:
                self._start(pod, volumes)

    def _start(self, pod: Obj, volumes: dict[str, str]) -> None:
        """Put ``pod`` on NODE and link each volume where the kubelet would mount it: a volume's
        directory, or a block volume's device."""
        pod = self.kube.patch(PODS, NS, pod["metadata"]["name"], {"spec": {"nodeName": NODE}})
        base = self.kubelet / "pods" / pod["metadata"]["uid"]
        devices = {d["name"] for c in pod["spec"]["containers"] for d in c.get("volumeDevices") or []}
        for volume, pv in volumes.items():
            if volume in devices:
                link = base / "volumeDevices" / CSI / pv
                link.parent.mkdir(parents=True, exist_ok=True)
            else:
                (base / "volumes" / CSI / pv).mkdir(parents=True, exist_ok=True)
                link = base / "volumes" / CSI / pv / "mount"
            if not link.is_symlink():
                link.symlink_to(self.volume(pv).resolve())
        patch_status(self.kube, PODS, NS, pod["metadata"]["name"], {"phase": "Running"})


def _bytes(quantity: str) -> int:
    units = {"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30}
    return int(quantity[:-2]) * units[quantity[-2:]] if quantity[-2:] in units else int(quantity)


@contextmanager
def running_cluster(kube: Kube, root: Path, copy: bool = True) -> Iterator[Cluster]:
    """The snapshot CRDs and classes installed, the cluster's actors running until the end."""
    install_snapshot_crds(kube)
    snapshot_classes(kube)
    cluster = Cluster(kube, root, copy).start()
    try:
        yield cluster
    finally:
        cluster.stop()


def snapshot_classes(kube: Kube) -> None:
    """The class Velero picks for DRIVER (labelled), and a labelled one of another driver."""
    for name, driver in (("csi-snap", DRIVER), ("other-driver", "other.example.com")):
        kube.create(VOLUME_SNAPSHOT_CLASSES, None, {
            "apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshotClass",
            "metadata": {"name": name, "labels": {"velero.io/csi-volumesnapshot-class": "true"}},
            "driver": driver, "deletionPolicy": "Delete"})
