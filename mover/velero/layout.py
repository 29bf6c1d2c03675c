"""Velero's object-storage layout: the key of every file under a BSL prefix.

Pure functions, mirroring Velero's ``pkg/persistence/object_store_layout.go``; keys are relative
to the BSL prefix. Velero marks a location invalid when it finds a top-level folder other than
:data:`TOP_LEVEL`, so every write goes through :func:`check_writable` first.
"""

from __future__ import annotations

import re

from mover.errors import RepoError

BACKUPS = "backups"
RESTORES = "restores"
RESTIC = "restic"
KOPIA = "kopia"
METADATA = "metadata"
PLUGINS = "plugins"
TOP_LEVEL = frozenset({BACKUPS, RESTORES, RESTIC, KOPIA, METADATA, PLUGINS})

# Kubernetes object names (DNS-1123 subdomains) are what Velero uses for backups, restores
# and namespaces; anything else in a key is refused rather than written somewhere unexpected.
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")

# Per-backup files that are gzipped JSON (or text), by the suffix after "<backup>".
BACKUP_CONTENTS = ".tar.gz"
BACKUP_LOG = "-logs.gz"
BACKUP_RESULTS = "-results.gz"
POD_VOLUME_BACKUPS = "-podvolumebackups.json.gz"
VOLUME_INFO = "-volumeinfo.json.gz"
RESOURCE_LIST = "-resource-list.json.gz"
ITEM_OPERATIONS = "-itemoperations.json.gz"
VOLUME_SNAPSHOTS = "-volumesnapshots.json.gz"
CSI_VOLUME_SNAPSHOTS = "-csi-volumesnapshots.json.gz"
CSI_VOLUME_SNAPSHOT_CONTENTS = "-csi-volumesnapshotcontents.json.gz"
CSI_VOLUME_SNAPSHOT_CLASSES = "-csi-volumesnapshotclasses.json.gz"
BACKUP_FILE_SUFFIXES = (
    BACKUP_CONTENTS, BACKUP_LOG, BACKUP_RESULTS, POD_VOLUME_BACKUPS, VOLUME_INFO, RESOURCE_LIST,
    ITEM_OPERATIONS, VOLUME_SNAPSHOTS, CSI_VOLUME_SNAPSHOTS, CSI_VOLUME_SNAPSHOT_CONTENTS,
    CSI_VOLUME_SNAPSHOT_CLASSES,
)

# Per-restore files: "restore-<name><suffix>", except the volume info ("<name>-volumeinfo...").
RESTORE_LOG = "-logs.gz"
RESTORE_RESULTS = "-results.gz"
RESTORE_RESOURCE_LIST = "-resource-list.json.gz"
RESTORE_ITEM_OPERATIONS = "-itemoperations.json.gz"


class LayoutError(RepoError):
    """A key outside Velero's layout, or a name Velero would never use."""


def valid_name(name: str) -> bool:
    return bool(_NAME.match(name))


def _checked(name: str, what: str) -> str:
    if not valid_name(name):
        raise LayoutError(f"{name!r} is not a valid {what} name (lowercase letters, digits, "
                          "'-' and '.', at most 253 characters)")
    return name


def backup_dir(backup: str) -> str:
    return f"{BACKUPS}/{_checked(backup, 'backup')}"


def backup_metadata_key(backup: str) -> str:
    """``backups/<name>/velero-backup.json``: the Backup object itself."""
    return f"{backup_dir(backup)}/velero-backup.json"


def backup_file_key(backup: str, suffix: str) -> str:
    """``backups/<name>/<name><suffix>``, e.g. suffix :data:`VOLUME_INFO`."""
    if suffix not in BACKUP_FILE_SUFFIXES:
        raise LayoutError(f"{suffix!r} is not one of Velero's backup files")
    return f"{backup_dir(backup)}/{backup}{suffix}"


def restore_dir(restore: str) -> str:
    return f"{RESTORES}/{_checked(restore, 'restore')}"


def restore_file_key(restore: str, suffix: str) -> str:
    """``restores/<name>/restore-<name><suffix>``."""
    if suffix not in (RESTORE_LOG, RESTORE_RESULTS, RESTORE_RESOURCE_LIST, RESTORE_ITEM_OPERATIONS):
        raise LayoutError(f"{suffix!r} is not one of Velero's restore files")
    return f"{restore_dir(restore)}/restore-{restore}{suffix}"


def restore_volume_info_key(restore: str) -> str:
    """The one restore file without the ``restore-`` prefix."""
    return f"{restore_dir(restore)}/{restore}{VOLUME_INFO}"


def revision_key() -> str:
    """``metadata/revision``: a fresh UUID after each change, so backup sync notices it."""
    return f"{METADATA}/revision"


def repository_prefix(uploader: str, namespace: str) -> str:
    """``restic/<ns>`` or ``kopia/<ns>``: one repository per volume namespace."""
    if uploader not in (RESTIC, KOPIA):
        raise LayoutError(f"unknown uploader type {uploader!r} (Velero uses restic or kopia)")
    return f"{uploader}/{_checked(namespace, 'namespace')}"


def check_writable(key: str) -> str:
    """Return `key` if writing it keeps the location valid for Velero; else raise."""
    parts = key.split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise LayoutError(f"refusing to write {key!r}: empty, '.' or '..' path component")
    if parts[0] not in TOP_LEVEL or len(parts) < 2:
        raise LayoutError(
            f"refusing to write {key!r}: Velero marks a backup storage location invalid when "
            f"it holds any top-level folder other than {', '.join(sorted(TOP_LEVEL))}"
        )
    return key


def unexpected_top_level(names: list[str]) -> list[str]:
    """Top-level folders that would make Velero mark the location invalid."""
    return sorted(n for n in names if n not in TOP_LEVEL)
