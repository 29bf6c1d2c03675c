"""Write a backup (or a restore's files) into a BSL the way Velero's server does.

Velero's ``persistBackup`` / ``PutBackup``: the log first (best effort), then
``velero-backup.json``, then the tarball, then the other files, each gzipped JSON as Go's
encoder writes it (a nil list is ``null``); if the tarball or a later file fails, the
metadata and tarball are removed again so a half-written backup is never synced. Finally
``metadata/revision`` gets a new UUID so backup sync notices the change. Every key passes
:func:`layout.check_writable`, so the location never gains a top-level folder Velero rejects.
"""

from __future__ import annotations

import gzip
import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from mover.errors import RepoError
from mover.golang import gojson
from mover.velero import layout
from mover.velero.objects import (
    Backup,
    BackupResults,
    PodVolumeBackup,
    Restore,
    VolumeInfo,
    encode,
)
from mover.velero.objectstore import ObjectStore
from mover.velero.tarball import BackedUpItem, resource_list, write_tarball


@dataclass
class BackupRecord:
    """Everything Velero uploads for one backup."""

    backup: Backup
    items: list[BackedUpItem] = field(default_factory=list)
    pod_volume_backups: list[PodVolumeBackup] = field(default_factory=list)
    volume_infos: list[VolumeInfo] | None = field(default_factory=list)  # None: before 1.13
    log: str = ""
    results: BackupResults = field(default_factory=BackupResults)
    item_operations: list[dict[str, Any]] = field(default_factory=list)
    volume_snapshots: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class RestoreRecord:
    """The files Velero uploads for one restore."""

    restore: Restore
    log: str = ""
    results: BackupResults = field(default_factory=BackupResults)
    resource_list: dict[str, list[str]] = field(default_factory=dict)
    item_operations: list[dict[str, Any]] = field(default_factory=list)
    volume_infos: list[dict[str, Any]] | None = None


def gzip_json(obj: Any) -> bytes:
    """Go's ``json.NewEncoder(gzip).Encode(obj)``: compact, one trailing newline; an empty
    list is a nil slice, hence ``null``."""
    if isinstance(obj, list) and not obj:
        obj = None
    return gzip.compress((gojson.dumps(obj) + "\n").encode(), mtime=0)


def backup_files(record: BackupRecord, mtime: float | None = None) -> dict[str, bytes]:
    """Key -> bytes of every file of the backup, in Velero's upload order (pure)."""
    name = record.backup.name

    def key(suffix: str) -> str:
        return layout.backup_file_key(name, suffix)

    files = {
        key(layout.BACKUP_LOG): gzip.compress(record.log.encode(), mtime=0),
        # The pretty JSON of Velero's encode.To(backup, "json").
        layout.backup_metadata_key(name): (json.dumps(record.backup.to_json(), indent=2)
                                           + "\n").encode(),
        key(layout.BACKUP_CONTENTS): write_tarball(record.items, mtime),
        key(layout.POD_VOLUME_BACKUPS): gzip_json([p.to_json() for p in record.pod_volume_backups]),
        key(layout.VOLUME_SNAPSHOTS): gzip_json(record.volume_snapshots),
        key(layout.ITEM_OPERATIONS): gzip_json(record.item_operations),
        key(layout.RESOURCE_LIST): gzip_json(resource_list(record.items)),
        key(layout.CSI_VOLUME_SNAPSHOTS): gzip_json([]),
        key(layout.CSI_VOLUME_SNAPSHOT_CONTENTS): gzip_json([]),
        key(layout.CSI_VOLUME_SNAPSHOT_CLASSES): gzip_json([]),
        key(layout.BACKUP_RESULTS): gzip_json(encode(record.results)),
    }
    if record.volume_infos is not None:
        files[key(layout.VOLUME_INFO)] = gzip_json([encode(v) for v in record.volume_infos])
    for k in files:
        layout.check_writable(k)
    return files


def write_backup(store: ObjectStore, record: BackupRecord, mtime: float | None = None) -> list[str]:
    """Upload the backup; returns the keys written (the revision last)."""
    files = backup_files(record, mtime)
    name = record.backup.name
    log_key = layout.backup_file_key(name, layout.BACKUP_LOG)
    meta_key = layout.backup_metadata_key(name)
    contents_key = layout.backup_file_key(name, layout.BACKUP_CONTENTS)
    written = []
    try:
        store.put(log_key, files.pop(log_key))
        written.append(log_key)
    except RepoError:
        pass  # as in Velero: the log is best effort and does not fail the backup
    store.put(meta_key, files.pop(meta_key))
    written.append(meta_key)
    try:
        for k, data in files.items():
            store.put(k, data)
            written.append(k)
    except RepoError:
        for k in (contents_key, meta_key):
            store.delete(k)
        raise
    written.append(_put_revision(store))
    return written


def restore_files(record: RestoreRecord) -> dict[str, bytes]:
    """Key -> bytes of a restore's files (pure)."""
    name = record.restore.metadata.name

    def key(suffix: str) -> str:
        return layout.restore_file_key(name, suffix)

    files = {
        key(layout.RESTORE_LOG): gzip.compress(record.log.encode(), mtime=0),
        key(layout.RESTORE_RESULTS): gzip_json(encode(record.results)),
        key(layout.RESTORE_RESOURCE_LIST): gzip_json(record.resource_list),
        key(layout.RESTORE_ITEM_OPERATIONS): gzip_json(record.item_operations),
    }
    if record.volume_infos is not None:
        files[layout.restore_volume_info_key(name)] = gzip_json(record.volume_infos)
    for k in files:
        layout.check_writable(k)
    return files


def write_restore(store: ObjectStore, record: RestoreRecord) -> list[str]:
    files = restore_files(record)
    for k, data in files.items():
        store.put(k, data)
    return list(files)


def _put_revision(store: ObjectStore) -> str:
    key = layout.check_writable(layout.revision_key())
    store.put(key, str(uuid.uuid4()).encode())
    return key
