"""PodVolumeRestore controller (node agent): restore one backed-up volume into the volume of a
restored pod on this node, then write ``.velero/<restore-uid>`` in it, which lets the pod's
restore-wait init container (and so the pod) go on.

The restore starts once the pod is on this node and its restore-wait init container runs (the
kubelet has set its volumes up by then). Phases: New -> InProgress -> Completed / Failed /
Canceled, with ``status.node`` and ``status.progress`` (every second). A restore found
InProgress that no worker holds was cut short by an agent restart; half of its files may be
written, so it is marked Failed with the reason (as Velero does) rather than run over them.
"""

from __future__ import annotations

import logging
import os

from mover.errors import RepoError
from mover.kube.datapath import VolumeController, volume_path
from mover.kube.framework.client import KubeError, Obj
from mover.kube.resources import POD_VOLUME_RESTORES, PODS
from mover.velero import labels
from mover.velero.objects import format_time
from mover.velero.podvolumes import FINAL_PHASES, MARKER_DIR, init_container_running

log = logging.getLogger("mover.kube")
WAIT_FOR_POD = 1.0  # seconds between looks at a pod that is not ready for its restore yet


class PodVolumeRestoreController(VolumeController):
    resource = POD_VOLUME_RESTORES
    what = "pod volume restore"

    def reconcile(self, name: str, obj: Obj | None) -> float | None:
        if obj is None or (obj.get("status") or {}).get("phase") in FINAL_PHASES:
            return None
        ref = (obj.get("spec") or {}).get("pod") or {}
        pod = self.ctx.kube.get_or_none(PODS, ref.get("namespace"), ref.get("name", ""))
        if pod is None or pod["metadata"].get("uid") != ref.get("uid"):
            return WAIT_FOR_POD  # the restore's pod may not be visible yet; the restore itself times out
        node = (pod.get("spec") or {}).get("nodeName")
        if not node:
            return WAIT_FOR_POD  # not scheduled yet
        if node != self.agent.node:
            return None  # the agent of that node restores it
        fresh = self.ctx.kube.get_or_none(POD_VOLUME_RESTORES, self.ctx.namespace, name)
        if fresh is None:
            return None
        phase = (fresh.get("status") or {}).get("phase") or "New"
        if fresh["spec"].get("cancel") and phase in ("New", "InProgress"):
            self._finish(name, "Canceled", "the pod volume restore was canceled")
        elif phase == "InProgress":
            self._finish(name, "Failed", "found a podvolumerestore with status InProgress during the node agent "
                                         "starting, mark it as Failed: the node agent stopped while restoring it")
        elif phase == "New":
            if not init_container_running(pod):
                return WAIT_FOR_POD
            claimed = self._patch(name, {"phase": "InProgress", "node": self.agent.node,
                                         "startTimestamp": format_time(self.ctx.clock())},
                                  fresh["metadata"]["resourceVersion"])
            self._run(claimed, pod)
        return None

    def _run(self, obj: Obj, pod: Obj) -> None:
        name, spec = obj["metadata"]["name"], obj["spec"]
        restore_uid = (obj["metadata"].get("labels") or {}).get(labels.RESTORE_UID, "")
        with self.agent.slots:
            try:
                path = volume_path(self.ctx.kube, self.agent.kubelet_root, pod, spec.get("volume", ""))
                progress = self._restore_volume(name, spec, path)
                if progress is None:
                    if self.ctx.kube.get_or_none(POD_VOLUME_RESTORES, self.ctx.namespace, name) is not None:
                        self._finish(name, "Canceled", "the pod volume restore was canceled")
                    return
                write_marker(path, restore_uid)
            except (RepoError, OSError, KubeError) as exc:
                message = self._failure(name, exc)
                self._finish(name, "Failed", message)
                return
            # Written while the slot is held: a finished volume never looks like a running one.
            self._finish(name, "Completed", progress=progress)


def write_marker(volume: str, restore_uid: str) -> None:
    """``<volume>/.velero/<restore-uid>``: what the restore-wait init container waits for."""
    marker_dir = os.path.join(volume, MARKER_DIR)
    os.makedirs(marker_dir, exist_ok=True)
    with open(os.path.join(marker_dir, restore_uid), "w"):
        pass
