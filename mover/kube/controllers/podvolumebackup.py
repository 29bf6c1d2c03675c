"""PodVolumeBackup controller (node agent): back up one pod volume of a pod on this node into
its namespace's restic repository.

Phases: New -> InProgress -> Completed (``snapshotID`` set) / Failed / Canceled (``spec.cancel``,
or the object deleted, e.g. with its Backup), each with a message. ``status.progress`` is
written every second while the data moves. The parent snapshot is the latest of the same
claim (tag ``pvc-uid``), or of the same pod volume for volumes without a claim, so an
unchanged volume's files are not read again.

An InProgress object no worker of this agent holds was cut short by an agent that stopped or
was killed: it runs again (a repository keeps only unreferenced packs of the cut run, which
restic's check accepts) up to MAX_ATTEMPTS times, then is marked Failed with the reason.
"""

from __future__ import annotations

import logging

from mover.archiver.pipeline import Cancelled
from mover.errors import RepoError
from mover.kube.datapath import (
    ATTEMPT_ANNOTATION,
    MAX_ATTEMPTS,
    VolumeController,
    attempt,
    volume_path,
)
from mover.kube.framework.client import KubeError, Obj
from mover.kube.repositories import open_repository
from mover.kube.resources import BSLS, POD_VOLUME_BACKUPS, PODS
from mover.velero.objects import format_time
from mover.velero.podvolumes import FINAL_PHASES

log = logging.getLogger("mover.kube")


class PodVolumeBackupController(VolumeController):
    resource = POD_VOLUME_BACKUPS
    what = "pod volume backup"

    def reconcile(self, name: str, obj: Obj | None) -> float | None:
        if obj is None or (obj.get("spec") or {}).get("node") != self.agent.node:
            return None
        if (obj.get("status") or {}).get("phase") in FINAL_PHASES:
            return None
        fresh = self.ctx.kube.get_or_none(POD_VOLUME_BACKUPS, self.ctx.namespace, name)
        if fresh is None:
            return None
        phase = (fresh.get("status") or {}).get("phase") or "New"
        if fresh["spec"].get("cancel") and phase in ("New", "InProgress"):
            self._finish(name, "Canceled", "the pod volume backup was canceled")
        elif phase == "New":
            claimed = self._patch(name, {"phase": "InProgress", "startTimestamp": format_time(self.ctx.clock())},
                                  fresh["metadata"]["resourceVersion"])
            self._run(claimed)
        elif phase == "InProgress":
            self._resume(fresh)
        return None

    def _resume(self, obj: Obj) -> None:
        name, run = obj["metadata"]["name"], attempt(obj)
        if run > MAX_ATTEMPTS:
            self._finish(name, "Failed", f"found a podvolumebackup with status InProgress during the node agent "
                                         f"starting, mark it as Failed: the node agent stopped {MAX_ATTEMPTS} "
                                         "times while backing up this volume")
            return
        log.info("pod volume backup %s was cut short by a node agent restart; running it again (attempt %d)",
                 name, run)
        updated = self.ctx.kube.patch(POD_VOLUME_BACKUPS, self.ctx.namespace, name, {"metadata": {
            "resourceVersion": obj["metadata"]["resourceVersion"], "annotations": {ATTEMPT_ANNOTATION: str(run)}}})
        self._run(updated)

    def _run(self, obj: Obj) -> None:
        name, spec = obj["metadata"]["name"], obj["spec"]
        ref = spec.get("pod") or {}
        with self.agent.slots:
            try:
                pod = self.ctx.kube.get_or_none(PODS, ref.get("namespace"), ref.get("name", ""))
                if pod is None or pod["metadata"].get("uid") != ref.get("uid"):
                    raise RepoError(f"pod {ref.get('namespace')}/{ref.get('name')} not found")
                path = volume_path(self.ctx.kube, self.agent.kubelet_root, pod, spec.get("volume", ""))
                location = spec.get("backupStorageLocation", "")
                bsl = self.ctx.kube.get_or_none(BSLS, self.ctx.namespace, location)
                if bsl is None:
                    raise RepoError(f"backup storage location {location} not found")
                self._patch(name, {"path": path})
                repo = open_repository(self.ctx.kube, self.agent.stores, bsl, ref["namespace"])
                try:
                    snapshot, progress = self._upload(name, repo, path, spec.get("tags") or {})
                finally:
                    repo.close()
            except Cancelled:
                if self.ctx.stop.is_set():
                    log.info("node agent stopping: pod volume backup %s will run again", name)
                elif self.ctx.kube.get_or_none(POD_VOLUME_BACKUPS, self.ctx.namespace, name) is not None:
                    self._finish(name, "Canceled", "the pod volume backup was canceled")
                return
            except (RepoError, OSError, KubeError) as exc:
                message = self._failure(name, exc)
                self._finish(name, "Failed", message)
                return
            # Written while the slot is held: a finished volume never looks like a running one.
            self._finish(name, "Completed", snapshotID=snapshot.short_id, progress=progress)
