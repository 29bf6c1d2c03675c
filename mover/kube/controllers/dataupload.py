"""DataUpload controller (node agent): move the data of one CSI snapshot into the source
namespace's restic repository.

Phases, as Velero's: New -> Accepted (one agent claims it, waits up to
``spec.operationTimeout`` for the snapshot to be ready and exposes it: backup snapshot, claim
and pod in the mover's namespace) -> Prepared (the agent of the node the exposer pod was
scheduled on takes it) -> InProgress (``status.progress`` written every second) -> Completed
(``snapshotID``) / Failed / Canceled (``spec.cancel``, or the object deleted; Canceling while
a running upload stops), each with a message. Whatever the end, the exposer's objects and the
source snapshot are removed first. The parent snapshot is the latest of the same claim, so an
unchanged volume is not read again; a block volume is stored as one file, its device's bytes,
read whole every time (its chunks deduplicate against the parent's).
"""

from __future__ import annotations

import logging
from datetime import timedelta

from mover.archiver.pipeline import Cancelled
from mover.errors import RepoError
from mover.golang.duration import parse_duration
from mover.kube.datapath import ATTEMPT_ANNOTATION, MAX_ATTEMPTS, Agent, VolumeController, attempt, volume_path
from mover.kube.exposer import (
    clean_up,
    expose,
    exposes_device,
    exposure_of,
    moved,
    reclaim_backup_volume,
    snapshot_ready,
)
from mover.kube.framework.client import KubeError, Obj
from mover.kube.framework.controller import Context
from mover.kube.repositories import open_repository
from mover.kube.resources import BSLS, DATA_UPLOADS, PODS, PVCS
from mover.velero import labels
from mover.velero.datamovement import DATA_MOVER, FINAL_PHASES, DataUpload, snapshot_tags
from mover.velero.nodeagentconfig import NodeAgentConfig
from mover.velero.objects import decode, format_time

log = logging.getLogger("mover.kube")
WAIT = 0.5  # seconds between looks at a snapshot or an exposer pod that is not ready yet
DEFAULT_TIMEOUT = timedelta(minutes=10)  # Velero's --csi-snapshot-timeout, for a spec without one


class DataUploadController(VolumeController):
    resource = DATA_UPLOADS
    what = "data upload"
    shows_canceling = True

    def __init__(self, ctx: Context, agent: Agent, config: NodeAgentConfig) -> None:
        super().__init__(ctx, agent)
        self.config = config

    def reconcile(self, name: str, obj: Obj | None) -> float | None:
        if obj is None or (obj.get("status") or {}).get("phase") in FINAL_PHASES:
            return None
        fresh = self.ctx.kube.get_or_none(DATA_UPLOADS, self.ctx.namespace, name)
        if fresh is None:
            return None
        du = decode(DataUpload, fresh)
        phase = du.status.phase or "New"
        if du.spec.data_mover not in ("", DATA_MOVER) or phase in FINAL_PHASES:
            return None
        mine = phase == "New" or du.status.accepted_by_node == self.agent.node or du.status.node == self.agent.node
        if du.spec.cancel:
            if mine:
                self._end(du, "Canceled", "the data upload was canceled")
            return None
        if phase == "New":
            fresh = self._patch(name, {"phase": "Accepted", "acceptedByNode": self.agent.node,
                                       "acceptedTimestamp": format_time(self.ctx.clock())},
                                fresh["metadata"]["resourceVersion"])
            du, phase = decode(DataUpload, fresh), "Accepted"
        if phase == "Accepted":
            return self._prepare(du, fresh)
        if du.status.node == self.agent.node:  # Prepared or InProgress, but no worker holds it
            self._resume(du, fresh)
        return None

    def _prepare(self, du: DataUpload, obj: Obj) -> float | None:
        """Accepted: expose the snapshot (the accepting agent), then take the upload on the
        node the exposer pod runs on."""
        kube, where = self.ctx.kube, exposure_of(du)
        mine = du.status.accepted_by_node == self.agent.node
        timeout = _timeout(du)
        late = du.status.accepted_timestamp is not None and self.ctx.clock() - du.status.accepted_timestamp > timeout
        try:
            pod = kube.get_or_none(PODS, where.namespace, where.name)
            if pod is None and mine:
                if not moved(kube, where):
                    ready, error = snapshot_ready(kube, where)
                    if not ready:
                        if late:
                            raise RepoError(f"volume snapshot {where.source_namespace}/{where.source_snapshot} was "
                                            f"not ready to use in {_text(timeout)}: "
                                            f"{error or 'the snapshot controller reported no error'}")
                        return WAIT
                pvc = kube.get_or_none(PVCS, du.spec.source_namespace, du.spec.source_pvc)
                if pvc is None:
                    raise RepoError(f"source claim {du.spec.source_namespace}/{du.spec.source_pvc} does not exist")
                expose(kube, du, pvc, self.config)
                pod = kube.get_or_none(PODS, where.namespace, where.name)
            if pod is None:
                return WAIT  # the accepting agent is still exposing it
            status = pod.get("status") or {}
            if status.get("phase") in ("Failed", "Succeeded"):
                raise RepoError(f"exposer pod {where.namespace}/{where.name} ended ({status.get('phase')}): "
                                f"{status.get('message') or status.get('reason') or 'no reason given'}")
            if (pod.get("spec") or {}).get("nodeName") == self.agent.node and status.get("phase") == "Running":
                reclaim_backup_volume(kube, where)
                claimed = self._patch(du.metadata.name, {"phase": "Prepared", "node": self.agent.node},
                                      obj["metadata"]["resourceVersion"])
                self._run(decode(DataUpload, claimed), pod)
                return None
            if mine and late:
                raise RepoError(f"exposer pod {where.namespace}/{where.name} was not running on a node in "
                                f"{_text(timeout)}")
        except (RepoError, KubeError) as exc:
            if isinstance(exc, KubeError) and exc.conflict:
                raise  # another agent took it: look again once the cache caught up
            if mine:
                self._end(du, "Failed", self._failure(du.metadata.name, exc))
            return None
        return WAIT

    def _resume(self, du: DataUpload, obj: Obj) -> None:
        name, run = du.metadata.name, attempt(obj)
        if run > MAX_ATTEMPTS:
            self._end(du, "Failed", f"the node agent stopped {MAX_ATTEMPTS} times while moving this volume's data")
            return
        pod = self.ctx.kube.get_or_none(PODS, du.metadata.namespace, name)
        if pod is None:
            self._end(du, "Failed", f"exposer pod {du.metadata.namespace}/{name} is gone")
            return
        log.info("data upload %s was cut short by a node agent restart; running it again (attempt %d)", name, run)
        updated = self.ctx.kube.patch(DATA_UPLOADS, self.ctx.namespace, name, {"metadata": {
            "resourceVersion": obj["metadata"]["resourceVersion"], "annotations": {ATTEMPT_ANNOTATION: str(run)}}})
        self._run(decode(DataUpload, updated), pod)

    def _run(self, du: DataUpload, pod: Obj) -> None:
        name = du.metadata.name
        with self.agent.slots:
            try:
                block = exposes_device(pod)
                path = volume_path(self.ctx.kube, self.agent.kubelet_root, pod, name, block)
                location = du.spec.backup_storage_location
                bsl = self.ctx.kube.get_or_none(BSLS, self.ctx.namespace, location)
                if bsl is None:
                    raise RepoError(f"backup storage location {location} not found")
                self._patch(name, {"phase": "InProgress", "startTimestamp": format_time(self.ctx.clock()),
                                   "path": path})
                repo = open_repository(self.ctx.kube, self.agent.stores, bsl, du.spec.source_namespace)
                try:
                    tags = snapshot_tags(du, du.metadata.labels.get(labels.PVC_UID, ""))
                    # A block volume is its device's bytes, one file named after the source claim.
                    snapshot, progress = self._upload(name, repo, path, tags, du.spec.source_pvc if block else "")
                finally:
                    repo.close()
            except Cancelled:
                if self.ctx.stop.is_set():
                    log.info("node agent stopping: data upload %s will run again", name)
                else:
                    self._end(du, "Canceled", "the data upload was canceled")
                return
            except (RepoError, OSError, KubeError) as exc:
                message = self._failure(name, exc)
                self._end(du, "Failed", message)
                return
            self._end(du, "Completed", snapshotID=snapshot.short_id, progress=progress)

    def _end(self, du: DataUpload, phase: str, message: str = "", **status: object) -> None:
        """Remove the exposer's objects, then write the final phase (unless the object is gone)."""
        problems = clean_up(self.ctx.kube, exposure_of(du))
        for problem in problems:
            log.warning("data upload %s: %s", du.metadata.name, problem)
        if self.ctx.kube.get_or_none(DATA_UPLOADS, self.ctx.namespace, du.metadata.name) is not None:
            self._finish(du.metadata.name, phase, message, **status)


def _timeout(du: DataUpload) -> timedelta:
    try:
        return timedelta(microseconds=parse_duration(du.spec.operation_timeout) // 1000) \
            if du.spec.operation_timeout else DEFAULT_TIMEOUT
    except ValueError:
        return DEFAULT_TIMEOUT


def _text(delta: timedelta) -> str:
    return f"{delta.total_seconds():g}s"
