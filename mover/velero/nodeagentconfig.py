"""The node agent's config map, in Velero's format (one JSON document in the map's one entry):
``{"backupPVC": {"<storage-class>": {"storageClass": ..., "readOnly": ..., "spcNoRelabeling": ...}}}``.

Read and checked when the agent starts, so a config that Velero would refuse stops the agent with
one line instead of surprising a backup later. The backup-PVC settings shape the PVCs of CSI
snapshot data movement.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from mover.errors import RepoError


@dataclass(frozen=True)
class BackupPVC:
    storage_class: str = ""  # "" keeps the source PVC's class
    read_only: bool = False
    spc_no_relabeling: bool = False


@dataclass(frozen=True)
class NodeAgentConfig:
    backup_pvc: dict[str, BackupPVC] = field(default_factory=dict)  # by the source's storage class


_PVC_FIELDS = {"storageClass": str, "readOnly": bool, "spcNoRelabeling": bool}


def parse_config(data: dict[str, str] | None, where: str) -> NodeAgentConfig:
    """The config held by a ConfigMap's ``data``; RepoError naming ``where`` and the fault."""
    entries = list((data or {}).values())
    if len(entries) != 1:
        raise RepoError(f"{where} must hold exactly one entry (the JSON config), not {len(entries)}")
    try:
        doc: Any = json.loads(entries[0])
    except ValueError as exc:
        raise RepoError(f"{where} is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise RepoError(f"{where}: the config must be a JSON object")
    pvcs = doc.get("backupPVC") or {}
    if not isinstance(pvcs, dict):
        raise RepoError(f"{where}: backupPVC must map storage classes to settings")
    out: dict[str, BackupPVC] = {}
    for cls, settings in pvcs.items():
        if not isinstance(settings, dict):
            raise RepoError(f"{where}: backupPVC.{cls} must be an object")
        for key, value in settings.items():
            want = _PVC_FIELDS.get(key)
            if want is None:
                raise RepoError(f"{where}: backupPVC.{cls}.{key} is not a setting "
                                f"(known: {', '.join(_PVC_FIELDS)})")
            if not isinstance(value, want):
                raise RepoError(f"{where}: backupPVC.{cls}.{key} must be a {want.__name__}")
        out[cls] = BackupPVC(settings.get("storageClass", ""), settings.get("readOnly", False),
                             settings.get("spcNoRelabeling", False))
    return NodeAgentConfig(out)
