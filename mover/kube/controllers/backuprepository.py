"""BackupRepository controller: make the repository a BackupRepository describes usable.

Phases as Velero's: New -> Ready (the restic repository exists at its place in the storage
location, initialised here when it does not) or NotReady (with the reason; looked at again on
every resync, so a location that comes back makes it Ready).

A Ready repository is maintained as Velero's repository maintenance does: once every
``spec.maintenanceFrequency`` it is pruned (restic's prune, under restic's exclusive lock), and
``status.lastMaintenanceTime`` and ``recentMaintenance`` say when and how it went. A repository
never maintained counts from its creation: a new one has nothing to prune, and its first backups
must not meet a prune's exclusive lock.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from mover.errors import RepoError
from mover.golang.duration import parse_duration
from mover.kube.framework.client import Obj
from mover.kube.framework.controller import Context, Controller
from mover.kube.framework.status import patch_status
from mover.kube.repositories import MAINTENANCE_FREQUENCY, open_repository
from mover.kube.resources import BACKUP_REPOSITORIES, BSLS
from mover.kube.storage import StoreCache
from mover.repo.prune import prune
from mover.velero.objects import format_time, parse_time

log = logging.getLogger("mover.kube")
RECENT_MAINTENANCE = 3  # runs kept in status.recentMaintenance, as Velero keeps them
RETRY_SECONDS = 300.0  # after a maintenance that could not run (a lock held, the bucket away)


class BackupRepositoryController(Controller):
    resource = BACKUP_REPOSITORIES
    reads = (BSLS,)

    def __init__(self, ctx: Context, stores: StoreCache) -> None:
        super().__init__(ctx)
        self.stores = stores

    def reconcile(self, name: str, obj: Obj | None) -> float | None:
        if obj is None:
            return None
        if (obj.get("status") or {}).get("phase") == "Ready":
            return self._maintain(name, obj)
        spec = obj.get("spec") or {}
        location = spec.get("backupStorageLocation", "")
        bsl = self.ctx.kube.get_or_none(BSLS, self.ctx.namespace, location)
        if bsl is None:
            return self._status(name, "NotReady", f"backup storage location {location} not found")
        if spec.get("repositoryType", "restic") != "restic":
            return self._status(name, "NotReady", f"repository type {spec.get('repositoryType')} is not "
                                                  "supported by the mover (restic only)")
        try:
            repo = open_repository(self.ctx.kube, self.stores, bsl, spec.get("volumeNamespace", ""), create=True)
        except RepoError as exc:
            return self._status(name, "NotReady", f"error opening the repository: {exc}")
        repo.close()
        return self._status(name, "Ready", "")

    def _maintain(self, name: str, obj: Obj) -> float | None:
        """Prune when ``maintenanceFrequency`` has passed since the last maintenance; seconds
        until the next one."""
        spec, status = obj.get("spec") or {}, obj.get("status") or {}
        try:
            every = timedelta(seconds=parse_duration(spec.get("maintenanceFrequency") or "") / 1e9)
        except ValueError:
            every = MAINTENANCE_FREQUENCY
        if every <= timedelta(0):
            return None
        now = self.ctx.clock()
        # never maintained: the clock runs from the repository's creation
        last = parse_time(status.get("lastMaintenanceTime") or obj["metadata"].get("creationTimestamp"))
        if last is not None and now < last + every:
            return (last + every - now).total_seconds()
        bsl = self.ctx.kube.get_or_none(BSLS, self.ctx.namespace, spec.get("backupStorageLocation", ""))
        if bsl is None or (bsl.get("spec") or {}).get("accessMode") == "ReadOnly":
            return RETRY_SECONDS  # nothing may be written there now
        result, message = "Succeeded", ""
        try:
            repo = open_repository(self.ctx.kube, self.stores, bsl, spec.get("volumeNamespace", ""))
            try:
                stats = prune(repo)
                message = f"pruned {stats.prune_size} bytes"
            finally:
                repo.close()
        except RepoError as exc:
            result, message = "Failed", f"repository maintenance: {exc}"
            log.warning("backup repository %s: %s", name, message)
        run = {"startTimestamp": format_time(now), "completeTimestamp": format_time(self.ctx.clock()),
               "result": result, **({"message": message} if result == "Failed" else {})}
        recent = [run, *(status.get("recentMaintenance") or [])][:RECENT_MAINTENANCE]
        patch = {"recentMaintenance": recent, **({"lastMaintenanceTime": format_time(now)}
                                                 if result == "Succeeded" else {})}
        patch_status(self.ctx.kube, BACKUP_REPOSITORIES, self.ctx.namespace, name, patch)
        return every.total_seconds() if result == "Succeeded" else RETRY_SECONDS

    def _status(self, name: str, phase: str, message: str) -> float | None:
        """Write the status; nothing to look at again before the next change or resync."""
        status = {"phase": phase, "message": message or None}
        patch_status(self.ctx.kube, BACKUP_REPOSITORIES, self.ctx.namespace, name, status)
        return None
