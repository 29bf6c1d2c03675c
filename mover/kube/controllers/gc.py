"""Deleting backups: expired ones (TTL) and those a DeleteBackupRequest names.

As in Velero, expiry does not delete anything itself: the garbage collector files a
DeleteBackupRequest, and the deletion controller carries every request out the same way:
the snapshots of its pod volumes (forgotten in their repositories), the backup's files in
its storage location, the restores made from it (objects and files), then the Backup object. Processed requests are removed after a day.
"""

from __future__ import annotations

from datetime import timedelta

from mover.errors import RepoError
from mover.kube.framework.client import KubeError, Obj, Resource
from mover.kube.framework.controller import Context, Controller
from mover.kube.framework.status import patch_status
from mover.kube.repositories import forget_volume_snapshots
from mover.kube.resources import BACKUPS, BSLS, DELETE_BACKUP_REQUESTS, RESTORES
from mover.kube.storage import StoreCache
from mover.velero import layout
from mover.velero.bsl import BucketView
from mover.velero.objects import DeleteBackupRequest, decode, parse_time
from mover.velero.requests import delete_backup_request

REQUEST_MAX_AGE = timedelta(hours=24)


class GarbageCollector(Controller):
    resource = BACKUPS
    reads = (DELETE_BACKUP_REQUESTS, BSLS)

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        # Backups (by uid) this process filed a request for: the cache may not show the
        # request yet at the next look, and one request is enough.
        self._requested: set[str] = set()

    def reconcile(self, name: str, obj: Obj | None) -> float | None:
        status = (obj or {}).get("status") or {}
        expiration = parse_time(status.get("expiration"))
        if obj is None or expiration is None or status.get("phase", "New") in ("New", "InProgress", "Deleting"):
            return None
        now = self.ctx.clock()
        if now < expiration:
            return (expiration - now).total_seconds()
        location = (obj.get("spec") or {}).get("storageLocation", "")
        bsl = self.ctx.cached(BSLS, location)
        if bsl is None or (bsl.get("spec") or {}).get("accessMode") == "ReadOnly":
            return None  # cannot delete its files; the operator has to act (Velero logs the same)
        pending = [r for r in self.ctx.cached_all(DELETE_BACKUP_REQUESTS)
                   if (r.get("spec") or {}).get("backupName") == name
                   and (r.get("status") or {}).get("phase") != "Processed"]
        uid = obj["metadata"].get("uid", "")
        if not pending and uid not in self._requested:
            self.ctx.kube.create(DELETE_BACKUP_REQUESTS, self.ctx.namespace, delete_backup_request(obj))
            self._requested.add(uid)
        return None


class DeleteBackupRequestController(Controller):
    resource = DELETE_BACKUP_REQUESTS
    reads = (RESTORES,)

    def __init__(self, ctx: Context, stores: StoreCache) -> None:
        super().__init__(ctx)
        self.stores = stores

    def reconcile(self, name: str, obj: Obj | None) -> float | None:
        if obj is None:
            return None
        if (obj.get("status") or {}).get("phase") != "Processed":
            # The cache may lag behind this worker's own last write: never carry a request out twice.
            obj = self.ctx.kube.get_or_none(DELETE_BACKUP_REQUESTS, self.ctx.namespace, name)
            if obj is None:
                return None
        request = decode(DeleteBackupRequest, obj)
        if request.status.phase == "Processed":
            created = request.metadata.creation_timestamp
            age = self.ctx.clock() - created if created else REQUEST_MAX_AGE
            if age >= REQUEST_MAX_AGE:
                self._delete(DELETE_BACKUP_REQUESTS, name)
                return None
            return (REQUEST_MAX_AGE - age).total_seconds()
        errors = self._delete_backup(request.spec.get("backupName", ""), name)
        patch_status(self.ctx.kube, DELETE_BACKUP_REQUESTS, self.ctx.namespace, name,
                     {"phase": "Processed", "errors": errors or None})
        return None

    def _delete_backup(self, backup_name: str, request: str) -> list[str]:
        ns = self.ctx.namespace
        backup = self.ctx.kube.get_or_none(BACKUPS, ns, backup_name)
        if backup is None:
            return [f"backup {backup_name} not found"]
        phase = (backup.get("status") or {}).get("phase", "New")
        if phase in ("New", "InProgress"):
            return [f"backup {backup_name} is still in progress"]
        patch_status(self.ctx.kube, DELETE_BACKUP_REQUESTS, ns, request, {"phase": "InProgress"})
        location = (backup.get("spec") or {}).get("storageLocation", "")
        bsl = self.ctx.kube.get_or_none(BSLS, ns, location)
        if bsl is None:
            return [f"backup storage location {location} not found: cannot delete the files of backup {backup_name}"]
        if (bsl.get("spec") or {}).get("accessMode") == "ReadOnly":
            return [f"cannot delete backup because backup storage location {location} is in read-only mode"]
        patch_status(self.ctx.kube, BACKUPS, ns, backup_name, {"phase": "Deleting"})
        restores = [r["metadata"]["name"] for r in self.ctx.cached_all(RESTORES)
                    if (r.get("spec") or {}).get("backupName") == backup_name]
        try:
            store = self.stores.open(self.ctx.kube, bsl)
            errors = forget_volume_snapshots(self.ctx.kube, self.stores, bsl,
                                             BucketView(store).pod_volume_backups(backup_name))
            for prefix in [layout.backup_dir(backup_name)] + [layout.restore_dir(r) for r in restores]:
                for key in list(store.list(prefix + "/")):
                    store.delete(key)
        except RepoError as exc:
            patch_status(self.ctx.kube, BACKUPS, ns, backup_name, {"phase": phase})
            return [f"error deleting backup {backup_name} from its storage location: {exc}"]
        for restore in restores:
            self._delete(RESTORES, restore)
        self._delete(BACKUPS, backup_name)
        return errors

    def _delete(self, resource: Resource, name: str) -> None:
        try:
            self.ctx.kube.delete(resource, self.ctx.namespace, name)
        except KubeError as exc:
            if not exc.not_found:
                raise
