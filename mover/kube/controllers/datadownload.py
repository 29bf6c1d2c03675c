"""DataDownload controller (node agent): restore one data-moved volume (Velero's
``pkg/controller/data_download_controller.go`` with ``pkg/exposer/generic_restore.go``).

Phases: New -> Accepted (an agent claims it and exposes it: a restore PVC shaped like the
target claim and a restore pod mounting it, both in the agent's namespace and owned by the
DataDownload) -> Prepared (the agent of the node the pod runs on takes it) -> InProgress (that
agent writes the snapshot into the volume, progress every second) -> Completed, once the
volume is handed to the target claim; or Failed / Canceled (Canceling while a running restore
stops). The helpers are removed whatever the end. A DataDownload found InProgress that no
worker holds was cut short by an agent restart: it is failed with the reason, as Velero does,
since the volume is half written.
"""

from __future__ import annotations

import logging
import time

from mover.errors import RepoError
from mover.kube.datapath import Agent, VolumeController, volume_path
from mover.kube.framework.client import KubeError, Obj
from mover.kube.framework.controller import Context
from mover.kube.resources import DATA_DOWNLOADS, PODS, PVCS, PVS
from mover.velero.datadownload import (
    DYNAMIC_PV_RESTORE,
    FINAL_PHASES,
    RESTORE_VOLUME,
    is_block,
    restore_pod,
    restore_pvc,
    timeout_seconds,
)
from mover.velero.objects import format_time, parse_time
from mover.velero.podvolumes import RESTORE_HELPER_IMAGE

log = logging.getLogger("mover.kube")
WAIT = 1.0  # seconds between looks at a download whose pod is not running yet
POLL = 0.2  # seconds between looks at helpers going away and at the volume's binding
PREPARE_TIMEOUT = 30 * 60.0  # Velero's --data-mover-prepare-timeout
CANCELED = "the data download was canceled"


class DataDownloadController(VolumeController):
    resource = DATA_DOWNLOADS
    what = "data download"
    shows_canceling = True

    def __init__(self, ctx: Context, agent: Agent, image: str = RESTORE_HELPER_IMAGE,
                 prepare_timeout: float = PREPARE_TIMEOUT) -> None:
        super().__init__(ctx, agent)
        self.image = image  # the restore pod's: it only holds the volume on a node
        self.prepare_timeout = prepare_timeout

    def reconcile(self, name: str, obj: Obj | None) -> float | None:
        if obj is None or (obj.get("status") or {}).get("phase") in FINAL_PHASES:
            return None
        fresh = self.ctx.kube.get_or_none(DATA_DOWNLOADS, self.ctx.namespace, name)
        if fresh is None:
            return None
        status, cancel = fresh.get("status") or {}, bool(fresh["spec"].get("cancel"))
        phase = status.get("phase") or "New"
        accepted_here = status.get("acceptedByNode") == self.agent.node
        if phase == "New":
            if cancel:
                self._end(name, "Canceled", CANCELED)
                return None
            return self._accept(fresh)
        if phase == "Accepted":
            if cancel:
                if accepted_here:
                    self._end(name, "Canceled", CANCELED)
                return None
            return self._prepare(fresh, accepted_here)
        if status.get("node") != self.agent.node:
            return None  # the agent of the restore pod's node has it
        if phase == "Prepared":
            if cancel:
                self._end(name, "Canceled", CANCELED)
                return None
            self._run(fresh)
        elif phase == "Canceling":  # the agent stopped while the canceled restore stopped
            self._end(name, "Canceled", CANCELED)
        elif phase == "InProgress":
            self._end(name, "Failed", "found a datadownload with status InProgress during the node agent starting, "
                                      "mark it as Failed: the node agent stopped while restoring it")
        return None

    # New -> Accepted: expose the volume

    def _accept(self, obj: Obj) -> float | None:
        name = obj["metadata"]["name"]
        try:
            accepted = self._patch(name, {"phase": "Accepted", "acceptedByNode": self.agent.node,
                                          "acceptedTimestamp": format_time(self.ctx.clock())},
                                   obj["metadata"]["resourceVersion"])
        except KubeError as exc:
            if exc.conflict or exc.not_found:
                return None  # another agent took it, or it is gone
            raise
        return self._expose(accepted)

    def _expose(self, obj: Obj) -> float | None:
        """Create the restore PVC and pod (those already there are kept)."""
        name, target = obj["metadata"]["name"], obj["spec"].get("targetVolume") or {}
        try:
            claim = self.ctx.kube.get_or_none(PVCS, target.get("namespace"), target.get("pvc", ""))
            if claim is None:
                raise RepoError(f"target claim {target.get('namespace')}/{target.get('pvc')} not found")
            for res, body in ((PVCS, restore_pvc(obj, claim)), (PODS, restore_pod(obj, is_block(claim), self.image))):
                try:
                    self.ctx.kube.create(res, self.ctx.namespace, body)
                except KubeError as exc:
                    if not exc.already_exists:
                        raise
        except (RepoError, KubeError) as exc:
            self._end(name, "Failed", f"error exposing the volume: {getattr(exc, 'message', None) or exc}")
            return None
        log.info("data download %s: restore pod and claim %s/%s created", name, self.ctx.namespace, name)
        return WAIT

    # Accepted -> Prepared: the restore pod runs on this node

    def _prepare(self, obj: Obj, accepted_here: bool) -> float | None:
        name = obj["metadata"]["name"]
        pod = self.ctx.kube.get_or_none(PODS, self.ctx.namespace, name)
        spec, status = (pod or {}).get("spec") or {}, (pod or {}).get("status") or {}
        if pod is not None and spec.get("nodeName") == self.agent.node and status.get("phase") == "Running":
            try:
                prepared = self._patch(name, {"phase": "Prepared", "node": self.agent.node},
                                       obj["metadata"]["resourceVersion"])
            except KubeError as exc:
                if exc.conflict or exc.not_found:
                    return None
                raise
            self._run(prepared)
            return None
        if pod is None and accepted_here:
            return self._expose(obj)  # this agent stopped while it exposed the volume
        if status.get("phase") == "Failed" and accepted_here:
            self._end(name, "Failed", f"the restore pod {self.ctx.namespace}/{name} failed: "
                                      f"{status.get('message') or status.get('reason') or 'no reason given'}")
            return None
        accepted = parse_time((obj.get("status") or {}).get("acceptedTimestamp"))
        if accepted_here and accepted is not None and \
                (self.ctx.clock() - accepted).total_seconds() > self.prepare_timeout:
            where = "not scheduled" if pod is None or not spec.get("nodeName") else \
                f"on node {spec['nodeName']} in phase {status.get('phase') or 'Pending'}"
            self._end(name, "Failed", f"timed out after {self.prepare_timeout:.0f}s waiting for the restore pod "
                                      f"{self.ctx.namespace}/{name} to run: it is {where}")
            return None
        return WAIT

    # Prepared -> InProgress -> Completed | Failed | Canceled

    def _run(self, obj: Obj) -> None:
        name, spec = obj["metadata"]["name"], obj["spec"]
        target = spec.get("targetVolume") or {}
        with self.agent.slots:
            try:
                self._patch(name, {"phase": "InProgress", "startTimestamp": format_time(self.ctx.clock())},
                            obj["metadata"]["resourceVersion"])
            except KubeError as exc:
                if exc.conflict or exc.not_found:
                    return  # changed meanwhile (canceled, say): the next reconcile sees how
                raise
            try:
                claim = self.ctx.kube.get(PVCS, target.get("namespace"), target.get("pvc", ""))
                pod = self.ctx.kube.get(PODS, self.ctx.namespace, name)
                block = is_block(claim)
                path = volume_path(self.ctx.kube, self.agent.kubelet_root, pod, RESTORE_VOLUME, block)
                progress = self._restore_volume(name, spec, path, block)
                if progress is None:
                    self._remove_helpers(name, 60.0)
                    if self.ctx.kube.get_or_none(DATA_DOWNLOADS, self.ctx.namespace, name) is not None:
                        self._finish(name, "Canceled", CANCELED)
                    return
                self._rebind(name, claim, timeout_seconds(spec.get("operationTimeout")))
            except (RepoError, OSError, KubeError) as exc:
                message = self._failure(name, exc)
                self._end(name, "Failed", message)
                return
            self._finish(name, "Completed", progress=progress)

    def _rebind(self, name: str, claim: Obj, timeout: float) -> None:
        """Hand the restored volume to the target claim (Velero's RebindVolume): keep it past
        the restore PVC's deletion (reclaim policy Retain), remove the helpers, point the
        volume's claimRef at the claim with the label its selector asks for, put the policy
        back, and wait until the claim is bound to it."""
        kube, ns = self.ctx.kube, self.ctx.namespace
        deadline = time.monotonic() + timeout
        volume = (kube.get(PVCS, ns, name).get("spec") or {}).get("volumeName")
        if not volume:
            raise RepoError(f"restore claim {ns}/{name} is not bound to a volume")
        policy = (kube.get(PVS, None, volume).get("spec") or {}).get("persistentVolumeReclaimPolicy") or "Delete"
        kube.patch(PVS, None, volume, {"spec": {"persistentVolumeReclaimPolicy": "Retain"}})
        self._remove_helpers(name, timeout)
        meta = claim["metadata"]
        selector = (((claim.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}).get(DYNAMIC_PV_RESTORE)
        patch: Obj = {"spec": {"persistentVolumeReclaimPolicy": policy, "claimRef": {
            "apiVersion": "v1", "kind": "PersistentVolumeClaim", "namespace": meta["namespace"], "name": meta["name"],
            "uid": meta.get("uid"), "resourceVersion": None, "fieldPath": None}}}
        if selector:
            patch["metadata"] = {"labels": {DYNAMIC_PV_RESTORE: selector}}
        kube.patch(PVS, None, volume, patch)
        label = f"{meta['namespace']}/{meta['name']}"
        while True:
            pv = kube.get(PVS, None, volume)
            current = kube.get_or_none(PVCS, meta["namespace"], meta["name"]) or {}
            if (pv.get("status") or {}).get("phase") == "Bound" and \
                    (current.get("spec") or {}).get("volumeName") == volume:
                log.info("data download %s: volume %s handed to claim %s", name, volume, label)
                return
            if time.monotonic() > deadline:
                raise RepoError(f"volume {volume} was restored but not bound to claim {label} within "
                                f"{timeout:.0f}s (it is {(pv.get('status') or {}).get('phase') or 'Pending'})")
            if self.ctx.stop.wait(POLL):
                raise RepoError(f"the node agent stopped while handing volume {volume} to claim {label}")

    def _remove_helpers(self, name: str, timeout: float) -> None:
        """Delete the restore pod, then its claim, and wait until both are gone."""
        kube, ns = self.ctx.kube, self.ctx.namespace
        deadline = time.monotonic() + timeout
        for res in (PODS, PVCS):
            try:
                kube.delete(res, ns, name)
            except KubeError as exc:
                if not exc.not_found:
                    raise
            while kube.get_or_none(res, ns, name) is not None:
                if time.monotonic() > deadline:
                    raise RepoError(f"{res.kind} {ns}/{name} was not deleted within {timeout:.0f}s")
                time.sleep(POLL)

    def _end(self, name: str, phase: str, message: str) -> None:
        """A final phase, with the helpers removed first (they never outlive the download)."""
        try:
            self._remove_helpers(name, 60.0)
        except (RepoError, KubeError) as exc:
            message += f"; the restore pod or claim {self.ctx.namespace}/{name} may be left: " \
                       f"{getattr(exc, 'message', None) or exc}"
        try:
            self._finish(name, phase, message)
        except KubeError as exc:
            if not exc.not_found:
                raise

