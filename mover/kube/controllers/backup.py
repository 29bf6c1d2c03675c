"""Backup controller: validate a new Backup, collect its objects, write it to its storage
location in Velero's layout, and keep its status current.

Phases: New -> FailedValidation, or New -> InProgress -> Completed / PartiallyFailed (some
items failed) / Failed (the backup as a whole failed; ``failureReason`` says why). Progress
(``totalItems``/``itemsBackedUp``) is reported while the backup runs. The volumes of backed-up
pods chosen for file-system backup go to the node agents as PodVolumeBackups; the backup
waits for them (a failed one is an error: PartiallyFailed), and deleting the backup meanwhile
cancels them.

A Backup found InProgress when no worker of this process holds it was left behind by a
server that stopped mid-way. It is run again from the start (its objects are read afresh)
up to ``MAX_ATTEMPTS`` times, then marked Failed with the reason: never InProgress forever.
If the earlier run had already uploaded the backup, that upload is adopted instead.
"""

from __future__ import annotations

import gzip
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from mover.errors import RepoError
from mover.golang.duration import format_duration, parse_duration
from mover.kube.datamovement import DataUploads
from mover.kube.framework.client import KubeError, Obj
from mover.kube.framework.controller import Context, Controller
from mover.kube.framework.status import patch_status
from mover.kube.items.actions import ItemAction, default_actions
from mover.kube.items.collect import Collector, uses_scoped_filters
from mover.kube.oplog import OperationLog
from mover.kube.podvolumes import Abandoned, Stopped, VolumeBackups
from mover.kube.resources import (
    BACKUP_REPOSITORIES,
    BACKUPS,
    BSLS,
    DATA_UPLOADS,
    POD_VOLUME_BACKUPS,
    ResourceIndex,
)
from mover.kube.storage import StoreCache
from mover.velero import datamovement, layout
from mover.velero import labels as velero_labels
from mover.velero.bsl import BucketView
from mover.velero.filters import IncludesExcludes, selector_problems
from mover.velero.objects import (
    Backup,
    BackupSpec,
    PodVolumeBackup,
    decode,
    format_time,
)
from mover.velero.objectstore import ObjectStore
from mover.velero.podvolumes import volume_info
from mover.velero.tarball import FORMAT_VERSION, BackedUpItem
from mover.velero.writer import BackupRecord, write_backup

DEFAULT_TTL = timedelta(hours=720)
ATTEMPT_ANNOTATION = "mover.kbrowse.io/attempt"
MAX_ATTEMPTS = 3
# On a Backup the bucket sync created: its status arrives in a second write (the status
# subresource drops status on create), and this controller must not run it meanwhile.
SYNCED_ANNOTATION = "mover.kbrowse.io/synced-from-bucket"
PROGRESS_EVERY = 1.0  # seconds between progress updates


class Interrupted(Exception):
    """The server is stopping: leave the backup InProgress for the next server to resume."""


@dataclass
class BackupSettings:
    default_location: str = "default"
    default_ttl: timedelta = DEFAULT_TTL
    actions: list[ItemAction] = field(default_factory=default_actions)
    # Velero's --fs-backup-timeout: how long a backup waits for its pod volume backups.
    pod_volume_timeout: timedelta = timedelta(hours=4)
    # Velero's --default-snapshot-move-data: for backups that leave spec.snapshotMoveData out.
    default_snapshot_move_data: bool = False


def validation_errors(spec: BackupSpec) -> list[str]:
    """Problems with the spec itself, worded as Velero words them."""
    errors = []
    for what, inc, exc in (("namespace", spec.included_namespaces, spec.excluded_namespaces),
                           ("resource", spec.included_resources, spec.excluded_resources),
                           ("cluster-scoped resource", spec.included_cluster_scoped_resources,
                            spec.excluded_cluster_scoped_resources),
                           ("namespace-scoped resource", spec.included_namespace_scoped_resources,
                            spec.excluded_namespace_scoped_resources)):
        for item in IncludesExcludes.of(inc, exc).overlap():
            errors.append(f"Invalid included/excluded {what} lists: excludes list cannot contain an item in "
                          f"the includes list: {item}")
    old = bool(spec.included_resources or spec.excluded_resources) or spec.include_cluster_resources is not None
    if old and uses_scoped_filters(spec):
        errors.append("include-resources, exclude-resources and include-cluster-resources are old filter "
                      "parameters; include-cluster-scoped-resources, exclude-cluster-scoped-resources, "
                      "include-namespace-scoped-resources and exclude-namespace-scoped-resources are new "
                      "filter parameters. They cannot be used together")
    if spec.label_selector and spec.or_label_selectors:
        errors.append("encountered labelSelector as well as orLabelSelectors in backup spec, only one can be "
                      "specified")
    for selector in [spec.label_selector, *spec.or_label_selectors]:
        errors += [f"invalid label selector: {p}" for p in selector_problems(selector)]
    if spec.ttl:
        try:
            parse_duration(spec.ttl)
        except ValueError:
            errors.append(f"invalid ttl {spec.ttl!r}: expected a duration such as 720h")
    return errors


class BackupController(Controller):
    resource = BACKUPS
    reads = (BSLS, POD_VOLUME_BACKUPS, DATA_UPLOADS, BACKUP_REPOSITORIES)

    def __init__(self, ctx: Context, stores: StoreCache, settings: BackupSettings) -> None:
        super().__init__(ctx)
        self.stores = stores
        self.settings = settings

    def reconcile(self, name: str, obj: Obj | None) -> float | None:
        if obj is None or (obj.get("status") or {}).get("phase", "New") not in ("New", "InProgress"):
            return None
        # The cache may lag behind this worker's own last write: decide on the live object.
        fresh = self.ctx.kube.get_or_none(BACKUPS, self.ctx.namespace, name)
        phase = ((fresh or {}).get("status") or {}).get("phase", "New")
        if fresh is None or fresh["metadata"].get("deletionTimestamp"):
            return None
        if phase == "New":
            if SYNCED_ANNOTATION in (fresh["metadata"].get("annotations") or {}):
                return None  # made by the bucket sync, whose status write follows
            return self._start(fresh)
        if phase == "InProgress":
            self._resume(fresh)
        return None

    # New -> FailedValidation | InProgress

    def _location(self, spec: BackupSpec) -> tuple[str, Obj | None]:
        wanted = spec.storage_location
        if not wanted:
            defaults = [b for b in self.ctx.cached_all(BSLS) if (b.get("spec") or {}).get("default")]
            wanted = defaults[0]["metadata"]["name"] if defaults else self.settings.default_location
        return wanted, self.ctx.kube.get_or_none(BSLS, self.ctx.namespace, wanted)

    def _start(self, obj: Obj) -> float | None:
        name, spec = obj["metadata"]["name"], decode(Backup, obj).spec
        errors = validation_errors(spec)
        location, bsl = self._location(spec)
        if bsl is None:
            errors.append(f"an existing backup storage location was not specified at backup creation time and the "
                          f"default '{location}' was not found. Please address this issue (see `velero "
                          f"backup-location -h` for options) and create a new backup")
        else:
            bsl_spec, bsl_status = bsl.get("spec") or {}, bsl.get("status") or {}
            if bsl_spec.get("accessMode") == "ReadOnly":
                errors.append(f"backup can't be created because backup storage location {location} is currently "
                              "in read-only mode")
            if not errors and not bsl_status.get("phase"):
                return 1.0  # not validated yet: wait for the location controller's verdict
            if bsl_status.get("phase") == "Unavailable":
                errors.append(f"backup can't be created because BackupStorageLocation {location} is in "
                              f"Unavailable status. {bsl_status.get('message', '')}".strip())
        rv = obj["metadata"]["resourceVersion"]
        if errors:
            patch_status(self.ctx.kube, BACKUPS, self.ctx.namespace, name,
                         {"phase": "FailedValidation", "validationErrors": errors}, rv)
            return None
        assert bsl is not None  # a missing location is one of the errors
        ttl = spec.ttl or format_duration(int(self.settings.default_ttl.total_seconds()) * 10**9)
        version = self.ctx.kube.server_version()
        updated = self.ctx.kube.patch(BACKUPS, self.ctx.namespace, name, {
            "metadata": {
                "resourceVersion": rv,
                "labels": {velero_labels.STORAGE_LOCATION: location},
                "annotations": {"velero.io/source-cluster-k8s-gitversion": version.get("gitVersion", ""),
                                "velero.io/source-cluster-k8s-major-version": version.get("major", ""),
                                "velero.io/source-cluster-k8s-minor-version": version.get("minor", "")},
            },
            "spec": {"storageLocation": location, "ttl": ttl,
                     **_server_defaults(spec, self.settings.default_snapshot_move_data)},
        })
        now = self.ctx.clock()
        claimed = patch_status(self.ctx.kube, BACKUPS, self.ctx.namespace, name, {
            "phase": "InProgress",
            "version": 1,
            "formatVersion": FORMAT_VERSION,
            "startTimestamp": format_time(now),
            "expiration": format_time(now + timedelta(microseconds=parse_duration(ttl) // 1000)),
        }, updated["metadata"]["resourceVersion"])
        self._run(claimed, bsl)
        return None

    # InProgress, left behind by a server that stopped

    def _resume(self, obj: Obj) -> None:
        name = obj["metadata"]["name"]
        attempt = int((obj["metadata"].get("annotations") or {}).get(ATTEMPT_ANNOTATION, "1")) + 1
        location = (obj.get("spec") or {}).get("storageLocation", "")
        bsl = self.ctx.kube.get_or_none(BSLS, self.ctx.namespace, location)
        if bsl is not None and self._adopt(obj, bsl):
            return
        if attempt > MAX_ATTEMPTS or bsl is None:
            why = (f"the server stopped {MAX_ATTEMPTS} times while running this backup" if bsl is not None
                   else f"backup storage location {location} no longer exists")
            self._finish(obj, "Failed", failure=f"found a backup with status InProgress during the server "
                                                f"starting, mark it as Failed: {why}")
            return
        updated = self.ctx.kube.patch(BACKUPS, self.ctx.namespace, name, {"metadata": {
            "resourceVersion": obj["metadata"]["resourceVersion"],
            "annotations": {ATTEMPT_ANNOTATION: str(attempt)}}})
        self._run(updated, bsl)

    def _adopt(self, obj: Obj, bsl: Obj) -> bool:
        """The previous run of this very backup (same uid) uploaded it and stopped before
        recording that: take the status from the upload. An upload it left half done is
        removed, so the backup can run again."""
        name = obj["metadata"]["name"]
        try:
            store = self.stores.open(self.ctx.kube, bsl)
            stored = BucketView(store).backup(name).raw
        except RepoError:
            return False
        if stored.get("metadata", {}).get("uid") != obj["metadata"]["uid"]:
            return False
        # The writer uploads the volume info last of the backup's own files.
        if not store.exists(layout.backup_file_key(name, layout.VOLUME_INFO)):
            for key in list(store.list(layout.backup_dir(name) + "/")):
                store.delete(key)
            return False
        patch_status(self.ctx.kube, BACKUPS, self.ctx.namespace, name, stored.get("status") or {})
        return True

    # InProgress -> Completed | PartiallyFailed | Failed

    def _run(self, obj: Obj, bsl: Obj) -> None:
        name = obj["metadata"]["name"]
        log = OperationLog(self.ctx.clock, backup=f"{self.ctx.namespace}/{name}")
        log.info("Setting up backup store to check for backup existence")
        try:
            store = self.stores.open(self.ctx.kube, bsl)
            if store.exists(layout.backup_metadata_key(name)):
                raise RepoError(f"backup {name} already exists in object storage")
        except RepoError as exc:
            self._finish(obj, "Failed", log, failure=str(exc))
            return
        try:
            items = self._collect(obj, log)
            volumes, uploads = self._back_up_volumes(obj, bsl, items, log)
            final = self._finish(obj, "PartiallyFailed" if log.errors else "Completed", log, items=len(items),
                                 write=False)
            backup = decode(Backup, final)
            backup.metadata.namespace = self.ctx.namespace
            # The finished DataUploads go in the tarball, as Velero's finalizer puts them: a
            # restore finds each moved volume's snapshot there.
            moved = [BackedUpItem(DATA_UPLOADS.plural, o) for _, _, o in uploads]
            write_backup(store, BackupRecord(backup=backup, items=items + moved, log=log.text(), results=log.results(),
                                             pod_volume_backups=volumes,
                                             volume_infos=[volume_info(v) for v in volumes] +
                                             [datamovement.volume_info(du, pv) for du, pv, _ in uploads]))
            self._patch(name, final["status"])
        except (Interrupted, Stopped):
            log.info("server stopping; the backup will be resumed")
        except Abandoned:
            log.info("backup deleted while its pod volumes were backed up; their backups are canceled")
        except (RepoError, KubeError) as exc:
            log.error(f"backup failed: {exc}")
            self._finish(obj, "Failed", log, failure=str(exc))
            _upload_log(store, name, log)

    def _collect(self, obj: Obj, log: OperationLog) -> list[BackedUpItem]:
        name = obj["metadata"]["name"]
        progress = _Progress(lambda status: self._patch(name, status))
        index = ResourceIndex.discover(self.ctx.kube)
        collector = Collector(self.ctx.kube, index, decode(Backup, obj), log, self.settings.actions)
        collected = collector.collect(lambda n: progress.update(total=n))
        log.info(f"Collected {len(collected)} items")
        items = []
        for done, item in enumerate(collected, 1):
            if self.ctx.stop.is_set():
                raise Interrupted()
            items.append(BackedUpItem(item.resource.plural, item.obj))
            progress.update(total=len(collected), done=done)
        progress.flush()
        log.info(f"Backed up a total of {len(items)} items")
        return items

    def _back_up_volumes(self, obj: Obj, bsl: Obj, items: list[BackedUpItem],
                         log: OperationLog) -> tuple[list[PodVolumeBackup], list[tuple[datamovement.DataUpload, str, Obj]]]:
        """Back up the chosen pod volumes of the backed-up pods, and with ``snapshotMoveData`` the
        other backed-up claims on CSI volumes (the node agents do); wait for both. Returns the
        finished PodVolumeBackups and DataUploads (with the persistent volume of each, and the
        object as the API returned it)."""
        volumes = VolumeBackups(self.ctx, obj, bsl, log)
        volumes.start([item.obj for item in items if item.resource == "pods"])
        uploads = DataUploads(self.ctx, obj, bsl, log)
        if (obj.get("spec") or {}).get("snapshotMoveData"):
            uploads.start([item.obj for item in items if item.resource == "persistentvolumeclaims"], volumes.claims)
        uid = obj["metadata"]["uid"]

        def wanted() -> bool:
            current = self.ctx.cached(BACKUPS, obj["metadata"]["name"])
            return current is not None and current["metadata"].get("uid") == uid \
                and not current["metadata"].get("deletionTimestamp")

        backed_up: list[PodVolumeBackup] = []
        moved: list[tuple[datamovement.DataUpload, str, Obj]] = []
        try:
            if volumes.names:
                log.info(f"Waiting for {len(volumes.names)} pod volume backups to complete")
                backed_up = volumes.wait(wanted, self.settings.pod_volume_timeout.total_seconds())
            if uploads.names:
                log.info(f"Waiting for {len(uploads.names)} data uploads to complete")
                moved = [(du, uploads.volumes.get(du.metadata.name, ""), o) for du, o in uploads.wait(wanted)]
        except Abandoned:
            uploads.release()  # the snapshots no node agent took would be left to nobody
            raise
        return backed_up, moved

    def _finish(self, obj: Obj, phase: str, log: OperationLog | None = None, *, failure: str = "",
                items: int | None = None, write: bool = True) -> Obj:
        """The final status; written to the cluster unless ``write`` is False (the caller
        uploads the backup first, with this status, as Velero does)."""
        status: dict[str, Any] = {**(obj.get("status") or {}), "phase": phase,
                                  "completionTimestamp": format_time(self.ctx.clock())}
        if failure:
            status["failureReason"] = failure
        if log is not None:
            status |= log.counts()
        if items is not None:
            status["progress"] = {"totalItems": items, "itemsBackedUp": items}
        if write:
            self._patch(obj["metadata"]["name"], status)
        return {**obj, "status": status}

    def _patch(self, name: str, status: dict[str, Any]) -> None:
        patch_status(self.ctx.kube, BACKUPS, self.ctx.namespace, name, status)


def _server_defaults(spec: BackupSpec, move_data: bool) -> dict[str, Any]:
    """What Velero's server fills in on a new backup (its flag defaults)."""
    defaults = {"csiSnapshotTimeout": (spec.csi_snapshot_timeout, "10m0s"),
                "itemOperationTimeout": (spec.item_operation_timeout, "4h0m0s"),
                "snapshotMoveData": (spec.snapshot_move_data, move_data),
                "defaultVolumesToFsBackup": (spec.default_volumes_to_fs_backup, False)}
    return {k: default for k, (value, default) in defaults.items() if value in (None, "")}


def _upload_log(store: ObjectStore, name: str, log: OperationLog) -> None:
    """The log of a failed backup, so `backup logs` can say why (best effort, as in Velero)."""
    try:
        store.put(layout.backup_file_key(name, layout.BACKUP_LOG), gzip.compress(log.text().encode(), mtime=0))
    except RepoError:
        pass


class _Progress:
    """Status updates while a backup runs, at most one per PROGRESS_EVERY seconds."""

    def __init__(self, write: Callable[[dict[str, Any]], None]) -> None:
        self._write = write
        self._last = 0.0
        self._state = {"totalItems": 0, "itemsBackedUp": 0}

    def update(self, total: int, done: int = 0) -> None:
        self._state = {"totalItems": total, "itemsBackedUp": done}
        if time.monotonic() - self._last >= PROGRESS_EVERY:
            self.flush()

    def flush(self) -> None:
        self._last = time.monotonic()
        self._write({"progress": dict(self._state)})
