"""The server's side of restoring data-moved volumes: a Restore gives each restored claim whose
backup holds a completed DataUpload a DataDownload, and waits for them; the node agents move
the data and hand the volumes over (mover/kube/controllers/datadownload.py).

Velero finds the uploads through the DataUploads its backup included: a restore item action
turns each into a DataUploadResult config map, the PVC action reads it back. The mover reads
them straight from the backup's tarball, which holds the same objects.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable

from mover.kube.framework.client import KubeError, Obj
from mover.kube.framework.controller import Context
from mover.kube.oplog import OperationLog
from mover.kube.podvolumes import wait_all
from mover.kube.resources import DATA_DOWNLOADS
from mover.velero.datadownload import (
    DEFAULT_OPERATION_TIMEOUT,
    DataUploadResult,
    claim_for_download,
    new_data_download,
    timeout_seconds,
    upload_result,
)
from mover.velero.tarball import BackupContents

DATA_UPLOADS = "datauploads.velero.io"  # their folder in the tarball


class VolumeDownloads:
    """The data downloads of one Restore."""

    def __init__(self, ctx: Context, restore: Obj, contents: BackupContents, log: OperationLog) -> None:
        self.ctx = ctx
        self.restore = restore
        self.log = log
        self.timeout = (restore.get("spec") or {}).get("itemOperationTimeout") or DEFAULT_OPERATION_TIMEOUT
        self.uploads: dict[tuple[str, str], DataUploadResult] = {}
        refs = contents.refs()
        if (restore.get("spec") or {}).get("restorePVs") is False:
            # As Velero's CSI claim action: the claims are restored, each gets a new, empty volume.
            log.info("restorePVs is false: volume data moved by data uploads is not restored")
            refs = []
        for ref in refs:
            if ref.resource == DATA_UPLOADS:
                result = upload_result(contents.get(ref))
                if result is not None:
                    self.uploads[(result.source_namespace, result.source_pvc)] = result
        self.names: list[str] = []
        self.completed = 0

    def moved(self, namespace: str, claim: str) -> bool:
        """Whether the backed-up claim ``namespace/claim`` has its data in a DataUpload."""
        return (namespace, claim) in self.uploads

    def prepare(self, source_namespace: str, claim: Obj) -> DataUploadResult | None:
        """Before ``claim`` (as it will be created) is created: its upload, if it has one, and
        the claim shaped to wait for the volume its download will hand over."""
        result = self.uploads.get((source_namespace, claim["metadata"]["name"]))
        if result is not None:
            claim_for_download(claim, secrets.token_hex(8))
        return result

    def start(self, claim: Obj, result: DataUploadResult) -> None:
        """After ``claim`` was created: its DataDownload."""
        meta = claim["metadata"]
        body = new_data_download(self.restore, result, meta["namespace"], meta["name"], self.timeout)
        try:
            created = self.ctx.kube.create(DATA_DOWNLOADS, self.ctx.namespace, body)
        except KubeError as exc:
            self.log.error(f"error restoring the data of claim {meta['namespace']}/{meta['name']}: {exc.message}",
                           namespace=meta["namespace"])
            return
        self.log.info(f"data download {created['metadata']['name']} restores snapshot {result.snapshot_id} into "
                      f"claim {meta['namespace']}/{meta['name']}", namespace=meta["namespace"])
        self.names.append(created["metadata"]["name"])

    def status(self) -> dict[str, int]:
        """The restore's item-operation counts, as Velero keeps them for its data downloads."""
        return {"restoreItemOperationsAttempted": len(self.names),
                "restoreItemOperationsCompleted": self.completed,
                "restoreItemOperationsFailed": len(self.names) - self.completed}

    def wait(self, wanted: Callable[[], bool]) -> None:
        """Until every download ends; each one that did not complete is an error of the restore."""
        finished = wait_all(self.ctx, DATA_DOWNLOADS, self.names, wanted, timeout_seconds(self.timeout))
        for name, dd in zip(self.names, finished, strict=True):
            if dd is None:
                self.log.error(f"data download {name} was deleted before it finished")
                continue
            status, target = dd.get("status") or {}, dd["spec"].get("targetVolume") or {}
            if status.get("phase") == "Completed":
                self.completed += 1
            else:
                self.log.error(f"data download {name} of claim {target.get('namespace')}/{target.get('pvc')} "
                               f"{status.get('phase', '').lower() or 'failed'}: {status.get('message') or '-'}",
                               namespace=target.get("namespace"))
