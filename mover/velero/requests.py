"""Velero objects as its CLI and controllers file them: names they derive, requests they make."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from mover.velero import labels


def scheduled_backup_name(schedule: str, when: datetime) -> str:
    """The name of the backup a schedule makes at ``when`` (UTC), as Velero names it."""
    return f"{schedule}-{when.strftime('%Y%m%d%H%M%S')}"


def delete_backup_request(backup: dict[str, Any]) -> dict[str, Any]:
    """A DeleteBackupRequest for ``backup``, as `velero backup delete` and the GC file it."""
    meta = backup["metadata"]
    return {"apiVersion": "velero.io/v1", "kind": "DeleteBackupRequest",
            "metadata": {"generateName": f"{meta['name']}-",
                         "labels": {labels.BACKUP_NAME: meta["name"],
                                    labels.BACKUP_UID: meta.get("uid", "")}},
            "spec": {"backupName": meta["name"]}}
