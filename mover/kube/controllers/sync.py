"""Backup sync: what a storage location holds, the cluster shows.

Every ``backupSyncPeriod`` (server default when unset, ``0`` turns it off), each Available
location is listed. A backup in the bucket with no Backup object becomes one (metadata, spec
and status from its ``velero-backup.json``, labelled with the location): the disaster-recovery
path, where a new cluster sees the old cluster's backups. A Completed Backup object of this
location whose files are gone from the bucket is deleted, as Velero's sync does.
"""

from __future__ import annotations

from datetime import timedelta

from mover.errors import RepoError
from mover.kube.controllers.backup import SYNCED_ANNOTATION
from mover.kube.controllers.bsl import AVAILABLE, period
from mover.kube.framework.client import KubeError, Obj
from mover.kube.framework.controller import Context, Controller
from mover.kube.framework.status import patch_status
from mover.kube.resources import BACKUPS, BSLS
from mover.kube.storage import StoreCache
from mover.velero import labels as velero_labels
from mover.velero import layout
from mover.velero.bsl import BucketView
from mover.velero.objects import BackupStorageLocation, decode, format_time

_KEPT_METADATA = ("name", "labels", "annotations")


def synced_backup(stored: Obj, namespace: str, location: str) -> Obj:
    """The Backup object to create for a backup found in the bucket (status is written after,
    through the status subresource)."""
    meta = stored.get("metadata") or {}
    out_meta = {k: meta[k] for k in _KEPT_METADATA if k in meta}
    out_meta["namespace"] = namespace
    out_meta.setdefault("labels", {})[velero_labels.STORAGE_LOCATION] = location
    out_meta["annotations"] = {**out_meta.get("annotations", {}), SYNCED_ANNOTATION: "true"}
    spec = dict(stored.get("spec") or {})
    spec["storageLocation"] = location  # the bucket may be known here under another name
    return {"apiVersion": "velero.io/v1", "kind": "Backup", "metadata": out_meta, "spec": spec}


class BackupSyncController(Controller):
    resource = BSLS
    reads = (BACKUPS,)

    def __init__(self, ctx: Context, stores: StoreCache, default_period: timedelta) -> None:
        super().__init__(ctx)
        self.stores = stores
        self.default_period = default_period

    def reconcile(self, name: str, obj: Obj | None) -> float | None:
        if obj is None:
            return None
        bsl = decode(BackupStorageLocation, obj)
        every = period(bsl.spec.backup_sync_period, self.default_period)
        if every is None or bsl.status.phase != AVAILABLE:
            return None
        now = self.ctx.clock()
        last = bsl.status.last_synced_time
        if last is not None and now - last < every:
            return (last + every - now).total_seconds()
        try:
            self._sync(obj)
        except RepoError:
            return every.total_seconds()  # the location controller reports what is wrong with it
        patch_status(self.ctx.kube, BSLS, self.ctx.namespace, name, {"lastSyncedTime": format_time(now)})
        return every.total_seconds()

    def _sync(self, bsl: Obj) -> None:
        location = bsl["metadata"]["name"]
        in_cluster = {b["metadata"]["name"]: b for b in self.ctx.cached_all(BACKUPS)}
        store = self.stores.open(self.ctx.kube, bsl)
        bucket = BucketView(store)
        # A backup is there when its velero-backup.json is: some stores (local directories,
        # SeaweedFS) keep a deleted backup's empty folder, which a folder listing would count.
        in_bucket = {key.split("/")[1] for key in store.list(layout.BACKUPS + "/")
                     if key.count("/") == 2 and key.endswith("/velero-backup.json")}
        for name in sorted(in_bucket - in_cluster.keys()):
            if self.ctx.stop.is_set():
                return
            try:
                stored = bucket.backup(name).raw
            except RepoError:
                continue  # unreadable or half-deleted: the bucket view reports it to browsers
            self._create(stored, location)
        for name, backup in in_cluster.items():
            labels = backup["metadata"].get("labels") or {}
            if name not in in_bucket and labels.get(velero_labels.STORAGE_LOCATION) == location \
                    and (backup.get("status") or {}).get("phase") == "Completed":
                try:
                    self.ctx.kube.delete(BACKUPS, self.ctx.namespace, name)
                except KubeError as exc:
                    if not exc.not_found:
                        raise

    def _create(self, stored: Obj, location: str) -> None:
        ns = self.ctx.namespace
        try:
            created = self.ctx.kube.create(BACKUPS, ns, synced_backup(stored, ns, location))
        except KubeError as exc:
            if not exc.already_exists:
                raise
            existing = self.ctx.kube.get_or_none(BACKUPS, ns, (stored.get("metadata") or {}).get("name", ""))
            # a sync that stopped between the two writes left a Backup with no status: finish it
            if existing is None or (existing.get("status") or {}).get("phase") or \
                    SYNCED_ANNOTATION not in (existing["metadata"].get("annotations") or {}):
                return
            created = existing
        patch_status(self.ctx.kube, BACKUPS, ns, created["metadata"]["name"], stored.get("status") or {})

