"""What the node agent's two controllers share: where a pod volume's files are on this node,
the bound on concurrent volume transfers, their status writes, and a reporter that writes a transfer's progress
while it runs and notices when it is no longer wanted.

The kubelet keeps a pod's volumes at ``<kubelet-root>/pods/<pod-uid>/volumes/<plugin>/<dir>``:
``<dir>`` is the persistent volume's name for a claim, the volume's name otherwise; CSI
volumes keep their files one level down, in ``mount``.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Self

from mover.archiver.pipeline import Archiver
from mover.errors import RepoError
from mover.kube.framework.client import Kube, KubeError, Obj
from mover.kube.framework.controller import Context, Controller
from mover.kube.framework.status import patch_status
from mover.kube.resources import PVCS
from mover.kube.storage import StoreCache
from mover.progress import Counters, human_bytes
from mover.repo.lock import Lock
from mover.repo.repository import Repository
from mover.velero.objects import format_time
from mover.velero.podvolumes import SNAPSHOT_HOST, claim_name, volume_dir_name
from mover.view.snapshot import Snapshot

PROGRESS_EVERY = 1.0  # seconds between progress writes (Velero's objects promise at most 2)
CSI_PLUGIN = "kubernetes.io~csi"
MAX_ATTEMPTS = 3  # runs of one volume cut short by agent restarts before it is marked Failed
ATTEMPT_ANNOTATION = "mover.kbrowse.io/attempt"

log = logging.getLogger("mover.kube")


@dataclass
class Agent:
    """One node agent: its node, the kubelet directory it sees, and its shared resources."""

    node: str
    kubelet_root: str
    concurrency: int = 1
    stores: StoreCache = field(default_factory=StoreCache)
    slots: threading.BoundedSemaphore = field(init=False)

    def __post_init__(self) -> None:
        self.slots = threading.BoundedSemaphore(self.concurrency)


def volume_path(kube: Kube, kubelet_root: str, pod: Obj, volume: str) -> str:
    """The directory holding ``pod``'s volume ``volume`` on this node; RepoError if it is not there."""
    meta = pod["metadata"]
    claim = claim_name(pod, volume)
    pvc = None
    if claim:
        try:
            pvc = kube.get(PVCS, meta["namespace"], claim)
        except KubeError as exc:
            raise RepoError(f"claim {meta['namespace']}/{claim} of volume {volume}: {exc.message}") from None
    dirname = volume_dir_name(pod, volume, pvc)
    if not dirname:
        raise RepoError(f"claim {meta['namespace']}/{claim} of volume {volume} is not bound to a volume")
    volumes = os.path.join(kubelet_root, "pods", meta.get("uid", ""), "volumes")
    try:
        plugins = sorted(os.listdir(volumes))
    except OSError:
        plugins = []
    for plugin in plugins:
        path = os.path.join(volumes, plugin, dirname)
        if os.path.isdir(path):
            return os.path.join(path, "mount") if plugin == CSI_PLUGIN else path
    raise RepoError(f"volume {volume} of pod {meta['namespace']}/{meta['name']} is not on this node: no "
                    f"{os.path.join(volumes, '*', dirname)}")


class VolumeController(Controller):
    """What the agent's controllers do alike: write their object's status, upload a volume."""

    what = "volume backup"  # the object, in log lines

    def __init__(self, ctx: Context, agent: Agent) -> None:
        super().__init__(ctx)
        self.agent = agent

    def _patch(self, name: str, status: dict[str, Any], rv: str | None = None) -> Obj:
        return patch_status(self.ctx.kube, self.resource, self.ctx.namespace, name, status, rv)

    def _finish(self, name: str, phase: str, message: str = "", **status: Any) -> None:
        self._patch(name, {"phase": phase, "message": message or None,
                           "completionTimestamp": format_time(self.ctx.clock()), **status})


    def _upload(self, name: str, repo: Repository, path: str, tags: dict[str, str]) -> tuple[Snapshot, dict]:
        """Back ``path`` up into ``repo`` as a snapshot tagged ``tags``, its parent the latest
        of the same volume; progress written while it runs. Raises Cancelled when the object is
        cancelled or deleted, or the agent stops."""
        counters, cancel = Counters(), threading.Event()

        def unwanted() -> bool:
            cached = self.ctx.cached(self.resource, name)
            return cached is None or bool(cached["spec"].get("cancel"))

        with Lock(repo, exclusive=False).acquire(confirm_before_write=True):
            parent = latest_of_same_volume(repo, tags)
            archiver = Archiver(repo, counters, cancel=cancel, warn=lambda m: log.warning("%s %s: %s", self.what, name, m))
            with Reporter(lambda status: self._patch(name, status), counters, unwanted, cancel,
                          self.ctx.stop) as reporter:
                result = archiver.backup([path], host=SNAPSHOT_HOST, parent=parent, contents_at_root=True,
                                         tags=[f"{k}={v}" for k, v in sorted(tags.items())])
            stats = result.stats
            log.info("%s %s: snapshot %s of %s, %s in %.1fs (parent %s; files: %d new, %d changed, "
                     "%d unmodified)", self.what, name, result.snapshot.short_id, path, human_bytes(counters.bytes),
                     counters.elapsed(), parent.short_id if parent else "none", stats.files_new,
                     stats.files_changed, stats.files_unmodified)
            # What this backup added to the repository: nothing, for a volume that did not change.
            return result.snapshot, {**reporter.final(), "incrementalBytes": stats.data_added}


def latest_of_same_volume(repo: Repository, tags: dict[str, str]) -> Snapshot | None:
    """The parent: the latest snapshot of the same claim, or of the same pod volume."""
    keys = ("pvc-uid",) if tags.get("pvc-uid") else ("ns", "pod", "volume")
    wanted = {f"{k}={tags.get(k, '')}" for k in keys}
    same = [s for s in repo.snapshots() if wanted <= set(s.tags)]
    return max(same, key=lambda s: (s.time, s.id)) if same else None


def attempt(obj: Obj) -> int:
    """Which run of the object the next one is (1 for the first)."""
    return int((obj["metadata"].get("annotations") or {}).get(ATTEMPT_ANNOTATION, "1")) + 1


class Reporter:
    """While a transfer runs: its progress written every PROGRESS_EVERY seconds, and
    ``cancel`` set as soon as ``unwanted()`` says the object was cancelled or deleted."""

    def __init__(self, write: Callable[[dict[str, Any]], object], counters: Counters,
                 unwanted: Callable[[], bool], cancel: threading.Event, stop: threading.Event) -> None:
        self._write = write
        self._counters = counters
        self._unwanted = unwanted
        self.cancel = cancel
        self._stop = stop
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="progress", daemon=True)

    def progress(self) -> dict[str, int]:
        c = self._counters
        return {"totalBytes": max(c.total_bytes, c.bytes), "bytesDone": c.bytes}

    def final(self) -> dict[str, int]:
        """The finished transfer's: the total is what was moved (the scan's estimate also
        counts the sizes of links and other entries without content)."""
        return {"totalBytes": self._counters.bytes, "bytesDone": self._counters.bytes}

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()

    def _loop(self) -> None:
        while not self._done.wait(PROGRESS_EVERY):
            if self._unwanted() or self._stop.is_set():
                self.cancel.set()
            try:
                self._write({"progress": self.progress()})
            except KubeError:
                pass  # the next tick tries again; the final status is written by the caller
