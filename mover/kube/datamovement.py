"""The server's side of CSI snapshot data movement (a Backup with ``snapshotMoveData``): for
each backed-up claim on a CSI volume that no pod volume backup takes, a VolumeSnapshot of the
claim and a DataUpload that a node agent carries out; then wait for them. Velero's CSI plugin
does this; the node agents expose the snapshot and move the data.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from mover.errors import RepoError
from mover.kube.exposer import volume_snapshot
from mover.kube.framework.client import KubeError, Obj
from mover.kube.framework.controller import Context
from mover.kube.oplog import OperationLog
from mover.kube.podvolumes import BackupVolumes, wait_all
from mover.kube.repositories import ensure_repository
from mover.kube.resources import DATA_UPLOADS, PVS, VOLUME_SNAPSHOT_CLASSES, VOLUME_SNAPSHOTS
from mover.velero.datadownload import DEFAULT_OPERATION_TIMEOUT, timeout_seconds
from mover.velero.datamovement import (
    DATA_MOVER,
    FINAL_PHASES,
    SNAPSHOT_TYPE_CSI,
    CSISnapshotSpec,
    DataUpload,
    DataUploadSpec,
    new_data_upload,
    snapshot_class,
)
from mover.velero.objects import decode


class DataUploads(BackupVolumes):
    """The data uploads of one Backup."""

    def __init__(self, ctx: Context, backup: Obj, bsl: Obj, log: OperationLog) -> None:
        super().__init__(ctx, backup, bsl, log)
        self.volumes: dict[str, str] = {}  # persistent volume by data upload
        self.snapshots: dict[str, tuple[str, str]] = {}  # source snapshot (namespace, name) by data upload
        self.started = time.monotonic()  # Velero counts an item operation's timeout from its start

    def start(self, pvcs: list[Obj], taken: set[tuple[str, str]]) -> None:
        """Snapshot each claim of ``pvcs`` on a CSI volume, except the ``taken`` ones (namespace,
        name: their pod volumes are backed up file by file), and hand it to the node agents.
        Those of an earlier run of this very backup are taken over, not made twice."""
        earlier = {(o["spec"].get("sourceNamespace"), o["spec"].get("sourcePVC")): o
                   for o in self.earlier(DATA_UPLOADS)}
        classes: list[Obj] | None = None
        spec = self.backup.get("spec") or {}
        for pvc in pvcs:
            meta = pvc["metadata"]
            key = (meta["namespace"], meta["name"])
            bound = (pvc.get("spec") or {}).get("volumeName")
            pv = self.ctx.kube.get_or_none(PVS, None, bound) if bound else None
            driver = (((pv or {}).get("spec") or {}).get("csi") or {}).get("driver")
            if key in taken or not driver:
                continue
            if key in earlier:
                du = decode(DataUpload, earlier[key])
                self._track(du.metadata.name, bound or "", key[0],
                            du.spec.csi_snapshot.volume_snapshot if du.spec.csi_snapshot else "")
                continue
            where = {"namespace": meta["namespace"]}
            try:
                if classes is None:
                    classes = self.ctx.kube.list(VOLUME_SNAPSHOT_CLASSES)["items"]
                chosen = snapshot_class(self.backup, pvc, driver, classes)
                ensure_repository(self.ctx, meta["namespace"], self.bsl)
                vs = self.ctx.kube.create(VOLUME_SNAPSHOTS, meta["namespace"], volume_snapshot(self.backup, pvc, chosen))
            except (RepoError, KubeError) as exc:
                self.log.error(f"error moving the data of claim {meta['namespace']}/{meta['name']}: "
                               f"{getattr(exc, 'message', None) or exc}", **where)
                continue
            try:
                body = new_data_upload(self.backup, pvc, DataUploadSpec(
                    snapshot_type=SNAPSHOT_TYPE_CSI,
                    csi_snapshot=CSISnapshotSpec(volume_snapshot=vs["metadata"]["name"], snapshot_class=chosen,
                                                 storage_class=(pvc.get("spec") or {}).get("storageClassName") or "",
                                                 driver=driver),
                    source_pvc=meta["name"], source_namespace=meta["namespace"],
                    backup_storage_location=spec.get("storageLocation", ""), data_mover=DATA_MOVER,
                    operation_timeout=spec.get("csiSnapshotTimeout") or "10m0s"))
                created = self.ctx.kube.create(DATA_UPLOADS, self.ctx.namespace, body)
            except KubeError as exc:
                self._forget_snapshot(meta["namespace"], vs["metadata"]["name"])
                self.log.error(f"error moving the data of claim {meta['namespace']}/{meta['name']}: "
                               f"{exc.message}", **where)
                continue
            self.log.info(f"Created data upload {created['metadata']['name']} for claim "
                          f"{meta['namespace']}/{meta['name']} (volume snapshot {vs['metadata']['name']})", **where)
            self._track(created["metadata"]["name"], bound or "", meta["namespace"], vs["metadata"]["name"])

    def _track(self, name: str, volume: str, namespace: str, snapshot: str) -> None:
        self.names.append(name)
        self.volumes[name] = volume
        self.snapshots[name] = (namespace, snapshot)

    def _forget_snapshot(self, namespace: str, name: str) -> None:
        """The snapshot of a claim no data upload carries: it would only hold storage (its
        content goes with it, or stays, as the content's deletion policy says)."""
        try:
            self.ctx.kube.delete(VOLUME_SNAPSHOTS, namespace, name)
        except KubeError as exc:
            if not exc.not_found:
                self.log.warning(f"cannot delete volume snapshot {namespace}/{name}: {exc.message}",
                                 namespace=namespace)

    def release(self) -> None:
        """Delete the source snapshots of the data uploads no node agent took: those gone (the
        backup's deletion takes its uploads along) or still New. An agent that took one removes
        its snapshots itself when it sees the cancel or the upload gone."""
        for name, (namespace, snapshot) in self.snapshots.items():
            obj = self.ctx.kube.get_or_none(DATA_UPLOADS, self.ctx.namespace, name)
            if snapshot and (obj is None or (obj.get("status") or {}).get("phase", "New") == "New"):
                self._forget_snapshot(namespace, snapshot)

    def wait(self, wanted: Callable[[], bool]) -> list[tuple[DataUpload, Obj]]:
        """The finished DataUploads, each also as the API returned it (the backup keeps those for
        its restores); each one that did not complete is an error of the backup. One still
        unfinished when the backup's itemOperationTimeout has passed since it was started is
        canceled, as Velero does with an asynchronous item operation."""
        text = (self.backup.get("spec") or {}).get("itemOperationTimeout") or DEFAULT_OPERATION_TIMEOUT
        remaining = max(0.0, timeout_seconds(text) - (time.monotonic() - self.started))
        finished = wait_all(self.ctx, DATA_UPLOADS, self.names, wanted, remaining, cancel_late=True)
        late = False
        done = []
        for name, obj in zip(self.names, finished, strict=True):
            if obj is None:
                self.log.error(f"data upload {name} was deleted before it finished")
                continue
            du = decode(DataUpload, obj)
            done.append((du, obj))
            if du.status.phase not in FINAL_PHASES:
                late = True
                self.log.error(f"data upload {name} of claim {du.spec.source_namespace}/{du.spec.source_pvc} did "
                               f"not finish within the backup's itemOperationTimeout of {text} (it was "
                               f"{du.status.phase or 'New'}): canceled", namespace=du.spec.source_namespace)
            elif du.status.phase != "Completed":
                self.log.error(f"data upload {name} of claim {du.spec.source_namespace}/{du.spec.source_pvc} "
                               f"{du.status.phase.lower()}: {du.status.message or 'no reason given'}",
                               namespace=du.spec.source_namespace)
        if late or len(done) < len(self.names):  # an upload canceled late, or deleted (by hand, say)
            self.release()
        return done
