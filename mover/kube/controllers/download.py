"""DownloadRequest controller: hand out a URL for one file of a backup or restore.

`velero backup logs` (and `kbrowse backup logs`) create a DownloadRequest and wait for
``status.downloadURL``: a pre-signed GET for S3, a file:// URL for a local location. Requests
are removed once their URL has expired, as Velero does.
"""

from __future__ import annotations

from datetime import timedelta

from mover.kube.framework.client import KubeError, Obj
from mover.kube.framework.controller import Context, Controller
from mover.kube.framework.status import patch_status
from mover.kube.resources import BACKUPS, BSLS, DOWNLOAD_REQUESTS, RESTORES
from mover.kube.storage import StoreCache, download_url
from mover.velero import layout
from mover.velero.objects import format_time, parse_time

URL_TTL = timedelta(minutes=10)

BACKUP_FILES = {
    "BackupLog": layout.BACKUP_LOG, "BackupContents": layout.BACKUP_CONTENTS,
    "BackupVolumeSnapshots": layout.VOLUME_SNAPSHOTS, "BackupItemOperations": layout.ITEM_OPERATIONS,
    "BackupResourceList": layout.RESOURCE_LIST, "BackupResults": layout.BACKUP_RESULTS,
    "CSIBackupVolumeSnapshots": layout.CSI_VOLUME_SNAPSHOTS,
    "CSIBackupVolumeSnapshotContents": layout.CSI_VOLUME_SNAPSHOT_CONTENTS,
    "BackupVolumeInfos": layout.VOLUME_INFO,
}
RESTORE_FILES = {
    "RestoreLog": layout.RESTORE_LOG, "RestoreResults": layout.RESTORE_RESULTS,
    "RestoreResourceList": layout.RESTORE_RESOURCE_LIST, "RestoreItemOperations": layout.RESTORE_ITEM_OPERATIONS,
}


def target_key(kind: str, name: str) -> str:
    if kind in BACKUP_FILES:
        return layout.backup_file_key(name, BACKUP_FILES[kind])
    if kind in RESTORE_FILES:
        return layout.restore_file_key(name, RESTORE_FILES[kind])
    if kind == "RestoreVolumeInfo":
        return layout.restore_volume_info_key(name)
    raise ValueError(f"unknown download target kind {kind!r}")


class DownloadRequestController(Controller):
    resource = DOWNLOAD_REQUESTS

    def __init__(self, ctx: Context, stores: StoreCache) -> None:
        super().__init__(ctx)
        self.stores = stores

    def reconcile(self, name: str, obj: Obj | None) -> float | None:
        if obj is None:
            return None
        status = obj.get("status") or {}
        now = self.ctx.clock()
        if status.get("phase") == "Processed":
            expiration = parse_time(status.get("expiration"))
            if expiration is not None and now < expiration:
                return (expiration - now).total_seconds()
            try:
                self.ctx.kube.delete(DOWNLOAD_REQUESTS, self.ctx.namespace, name)
            except KubeError as exc:
                if not exc.not_found:
                    raise
            return None
        target = (obj.get("spec") or {}).get("target") or {}
        kind, owner = target.get("kind", ""), target.get("name", "")
        backup = owner
        if kind in RESTORE_FILES or kind == "RestoreVolumeInfo":
            restore = self.ctx.kube.get(RESTORES, self.ctx.namespace, owner)
            backup = (restore.get("spec") or {}).get("backupName", "")
        location = ((self.ctx.kube.get(BACKUPS, self.ctx.namespace, backup).get("spec") or {})
                    .get("storageLocation", ""))
        store = self.stores.open(self.ctx.kube, self.ctx.kube.get(BSLS, self.ctx.namespace, location))
        url = download_url(store, target_key(kind, owner), int(URL_TTL.total_seconds()))
        patch_status(self.ctx.kube, DOWNLOAD_REQUESTS, self.ctx.namespace, name,
                     {"phase": "Processed", "downloadURL": url, "expiration": format_time(now + URL_TTL)})
        return URL_TTL.total_seconds()
