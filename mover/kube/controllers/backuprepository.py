"""BackupRepository controller: make the repository a BackupRepository describes usable.

Phases as Velero's: New -> Ready (the restic repository exists at its place in the storage
location, initialised here when it does not) or NotReady (with the reason; looked at again on
every resync, so a location that comes back makes it Ready).
"""

from __future__ import annotations

from mover.errors import RepoError
from mover.kube.framework.client import Obj
from mover.kube.framework.controller import Context, Controller
from mover.kube.framework.status import patch_status
from mover.kube.repositories import open_repository
from mover.kube.resources import BACKUP_REPOSITORIES, BSLS
from mover.kube.storage import StoreCache


class BackupRepositoryController(Controller):
    resource = BACKUP_REPOSITORIES
    reads = (BSLS,)

    def __init__(self, ctx: Context, stores: StoreCache) -> None:
        super().__init__(ctx)
        self.stores = stores

    def reconcile(self, name: str, obj: Obj | None) -> float | None:
        if obj is None or (obj.get("status") or {}).get("phase") == "Ready":
            return None
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

    def _status(self, name: str, phase: str, message: str) -> float | None:
        """Write the status; nothing to look at again before the next change or resync."""
        status = {"phase": phase, "message": message or None}
        patch_status(self.ctx.kube, BACKUP_REPOSITORIES, self.ctx.namespace, name, status)
        return None
