"""What the node agent's controllers share: where a pod volume's files (or device) are on this
node, the bound on concurrent volume transfers, their status writes, the restore of a snapshot
into a volume, and a reporter that writes a transfer's progress while it runs and notices when
it is no longer wanted.

The kubelet keeps a pod's volumes at ``<kubelet-root>/pods/<pod-uid>/volumes/<plugin>/<dir>``:
``<dir>`` is the persistent volume's name for a claim, the volume's name otherwise; CSI
volumes keep their files one level down, in ``mount``. A block volume (``volumeMode: Block``)
is the device at ``<kubelet-root>/pods/<pod-uid>/volumeDevices/<plugin>/<pv>``.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Self

from mover.archiver.pipeline import Archiver
from mover.errors import RepoError
from mover.kube.framework.client import Kube, KubeError, Obj
from mover.kube.framework.controller import Context, Controller
from mover.kube.framework.status import patch_status
from mover.kube.repositories import open_repository
from mover.kube.resources import BSLS, PVCS
from mover.kube.storage import StoreCache
from mover.progress import Counters, human_bytes
from mover.repo.lock import Lock
from mover.repo.repository import Repository
from mover.repo.view import RepositoryView
from mover.velero.objects import format_time
from mover.velero.podvolumes import SNAPSHOT_HOST, claim_name, latest_of_same_volume, volume_dir_name
from mover.view.protocol import RestoreResult, SnapshotView
from mover.view.snapshot import Snapshot

log = logging.getLogger("mover.kube")
PROGRESS_EVERY = 1.0  # seconds between progress writes (Velero's objects promise at most 2)
CANCEL_CHECK_EVERY = 0.1  # seconds between looks at whether the transfer is still wanted
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


def volume_path(kube: Kube, kubelet_root: str, pod: Obj, volume: str, block: bool = False) -> str:
    """The directory holding ``pod``'s volume ``volume`` on this node, or with ``block`` the
    device the kubelet mapped for it (``volumeDevices/<plugin>/<pv>``); RepoError if it is not there."""
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
    volumes = os.path.join(kubelet_root, "pods", meta.get("uid", ""), "volumeDevices" if block else "volumes")
    try:
        plugins = sorted(os.listdir(volumes))
    except OSError:
        plugins = []
    for plugin in plugins:
        path = os.path.join(volumes, plugin, dirname)
        if block and os.path.exists(path) and not os.path.isdir(path):
            return path
        if not block and os.path.isdir(path):
            return os.path.join(path, "mount") if plugin == CSI_PLUGIN else path
    raise RepoError(f"volume {volume} of pod {meta['namespace']}/{meta['name']} is not on this node: no "
                    f"{os.path.join(volumes, '*', dirname)}")


class VolumeController(Controller):
    """What the agent's controllers do alike: write their object's status, upload a volume."""

    what = "volume backup"  # the object, in log lines
    # Velero's data movers go through Canceling (the cancel seen, the data path stopping) to Canceled.
    shows_canceling = False

    def __init__(self, ctx: Context, agent: Agent) -> None:
        super().__init__(ctx)
        self.agent = agent

    def _patch(self, name: str, status: dict[str, Any], rv: str | None = None) -> Obj:
        return patch_status(self.ctx.kube, self.resource, self.ctx.namespace, name, status, rv)

    def _finish(self, name: str, phase: str, message: str = "", **status: Any) -> None:
        self._patch(name, {"phase": phase, "message": message or None,
                           "completionTimestamp": format_time(self.ctx.clock()), **status})

    def _failure(self, name: str, exc: Exception) -> str:
        """The one line a failed transfer ends with (logged here): the API's message, not its dump."""
        message = getattr(exc, "message", None) or str(exc)
        log.warning("%s %s failed: %s", self.what, name, message)
        return message

    def _reporter(self, name: str, counters: Counters, cancel: threading.Event) -> Reporter:
        """The Reporter of the object ``name``'s transfer: it is unwanted once cancelled or deleted;
        with ``shows_canceling``, a cancel request seen is written as the phase Canceling."""

        def unwanted() -> bool:
            cached = self.ctx.cached(self.resource, name)
            return cached is None or bool(cached["spec"].get("cancel"))

        def canceling() -> None:
            if self.ctx.cached(self.resource, name) is not None:  # a deleted object has no phase to write
                self._patch(name, {"phase": "Canceling"})

        return Reporter(lambda status: self._patch(name, status), counters, unwanted, cancel, self.ctx.stop,
                        canceling if self.shows_canceling else None)

    def _restore_volume(self, name: str, spec: dict[str, Any], path: str, block: bool = False) -> dict[str, int] | None:
        """Restore the object's snapshot (``spec``: backupStorageLocation, sourceNamespace,
        snapshotID) into the directory ``path``, or with ``block`` its one file onto the device
        ``path``, writing the object's progress meanwhile. The final progress; None when the
        object was cancelled or deleted; RepoError for what went wrong (also an agent stop)."""
        location = spec.get("backupStorageLocation", "")
        bsl = self.ctx.kube.get_or_none(BSLS, self.ctx.namespace, location)
        if bsl is None:
            raise RepoError(f"backup storage location {location} not found")
        counters, cancel = Counters(), threading.Event()
        view = RepositoryView(open_repository(self.ctx.kube, self.agent.stores, bsl, spec.get("sourceNamespace", "")))
        try:
            with view.read_lock():
                snap = view.find_snapshot(spec.get("snapshotID", ""))
                with self._reporter(name, counters, cancel) as reporter:
                    if block:
                        result = write_device(view, snap, path, counters, cancel)
                    else:
                        result = view.restore(view.root(snap), path, counters, cancel=cancel)
        finally:
            view.close()
        if result.cancelled and self.ctx.stop.is_set():
            raise RepoError("the node agent stopped while restoring this volume")
        if result.cancelled:
            return None
        if result.errors:
            raise RepoError(f"{len(result.errors)} entries could not be restored: {'; '.join(result.errors[:3])}")
        log.info("%s %s: snapshot %s into %s, %s in %.1fs", self.resource.kind, name, snap.short_id, path,
                 human_bytes(counters.bytes), counters.elapsed())
        return reporter.final()


    def _upload(self, name: str, repo: Repository, path: str, tags: dict[str, str],
                device_file: str = "") -> tuple[Snapshot, dict]:
        """Back ``path`` up into ``repo`` as a snapshot tagged ``tags``, its parent the latest
        of the same volume; with ``device_file``, ``path`` is a block device, stored as the one
        file of that name. Progress written while it runs. Raises Cancelled when the object is
        cancelled or deleted, or the agent stops."""
        counters, cancel = Counters(), threading.Event()
        with Lock(repo, exclusive=False).acquire(confirm_before_write=True):
            parent = latest_of_same_volume(repo.snapshots(), tags)
            archiver = Archiver(repo, counters, cancel=cancel, warn=lambda m: log.warning("%s %s: %s", self.what, name, m))
            common: dict[str, Any] = {"host": SNAPSHOT_HOST, "parent": parent,
                                      "tags": [f"{k}={v}" for k, v in sorted(tags.items())]}
            with self._reporter(name, counters, cancel) as reporter:
                if device_file:
                    result = archiver.backup_device(path, device_file, **common)
                else:
                    result = archiver.backup([path], contents_at_root=True, **common)
            stats = result.stats
            log.info("%s %s: snapshot %s of %s, %s in %.1fs (parent %s; files: %d new, %d changed, "
                     "%d unmodified)", self.what, name, result.snapshot.short_id, path, human_bytes(counters.bytes),
                     counters.elapsed(), parent.short_id if parent else "none", stats.files_new,
                     stats.files_changed, stats.files_unmodified)
            # What this backup added to the repository: nothing, for a volume that did not change.
            return result.snapshot, {**reporter.final(), "incrementalBytes": stats.data_added}


def write_device(view: SnapshotView, snap: Snapshot, device: str, counters: Counters,
                 cancel: threading.Event) -> RestoreResult:
    """Write the one file of a block volume's snapshot onto ``device``, from its first byte,
    in place (a device is neither truncated nor replaced); RepoError when the snapshot is not
    one file or the device is too small for it."""
    entries = view.list_dir(view.root(snap))
    if len(entries) != 1 or entries[0].type != "file":
        raise RepoError(f"snapshot {snap.short_id} holds {len(entries)} entries, not the one device file of a "
                        "block volume: restore it onto a file-system volume")
    node = entries[0]
    counters.add_total(1, node.size)
    counters.scanning = False
    result = RestoreResult()
    try:
        fd = os.open(device, os.O_WRONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise RepoError(f"cannot open the device {device}: {exc.strerror}") from None
    try:
        size = os.lseek(fd, 0, os.SEEK_END)
        if size < node.size:
            raise RepoError(f"the device {device} has {size} bytes, fewer than the {node.size} of snapshot "
                            f"{snap.short_id}: restore onto a volume at least that large")
        offset = 0
        for chunk in view.iter_content(node):
            if cancel.is_set():
                result.cancelled = True
                return result
            offset += os.pwrite(fd, chunk, offset)
            counters.done(nbytes=len(chunk))
        os.fsync(fd)
    except OSError as exc:
        raise RepoError(f"cannot write the device {device}: {exc.strerror}") from None
    finally:
        os.close(fd)
    counters.done(files=1)
    result.files, result.bytes = 1, offset
    return result


def attempt(obj: Obj) -> int:
    """Which run of the object the next one is (1 for the first)."""
    return int((obj["metadata"].get("annotations") or {}).get(ATTEMPT_ANNOTATION, "1")) + 1


class Reporter:
    """While a transfer runs: its progress written every PROGRESS_EVERY seconds, and
    ``cancel`` set as soon as ``unwanted()`` says the object was cancelled or deleted."""

    def __init__(self, write: Callable[[dict[str, Any]], object], counters: Counters,
                 unwanted: Callable[[], bool], cancel: threading.Event, stop: threading.Event,
                 on_unwanted: Callable[[], object] | None = None) -> None:
        self._write = write
        self._counters = counters
        self._unwanted = unwanted
        self.cancel = cancel
        self._stop = stop
        self._on_unwanted = on_unwanted  # called once, when the object is first seen unwanted
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
        # A cancel is looked for more often than progress is written: reading the informer's
        # cache is free, and a volume moving at disk speed goes far in one progress interval.
        last = time.monotonic()
        while not self._done.wait(CANCEL_CHECK_EVERY):
            if not self.cancel.is_set() and self._unwanted():
                self.cancel.set()
                if self._on_unwanted is not None:
                    try:
                        self._on_unwanted()
                    except KubeError:
                        pass  # the final status follows all the same
            if self._stop.is_set():
                self.cancel.set()
            if time.monotonic() - last < PROGRESS_EVERY:
                continue
            last = time.monotonic()
            try:
                self._write({"progress": self.progress()})
            except KubeError:
                pass  # the next tick tries again; the final status is written by the caller
