"""Backup paths, the arguments of ``kbrowse ls|cat|cp --bsl``:

    BACKUP[/resources[/RESOURCE[.GROUP][/NAMESPACE[/NAME]]]]    NAMESPACE "_cluster": cluster scope
    BACKUP/volumes[/NAMESPACE[/POD[/VOLUME[:PATH]]]]            PATH inside the volume's snapshot
    BACKUP/volumes/NAMESPACE/_pvc/CLAIM[:PATH]                  a claim moved from its CSI snapshot

Pure parsing; ``BACKUP/volumes/ns/pod/vol/etc/x`` is the same as ``.../vol:/etc/x`` (a volume
name never holds "/").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from kbrowse.browse.pathspec import normalise
from mover.ui.cliargs import UsageError

if TYPE_CHECKING:
    from mover.velero.volumes import BackupVolume

RESOURCES = "resources"
VOLUMES = "volumes"
CLUSTER = "_cluster"  # pods and namespaces cannot be named so: it never clashes
CLAIMS = "_pvc"  # in a pod's place: the volumes of no pod (CSI snapshot data movement)
_FORM = "BACKUP[/resources[/RESOURCE/NAMESPACE/NAME]] or BACKUP/volumes[/NAMESPACE/POD/VOLUME[:PATH]]"


def volume_parts(vol: BackupVolume) -> tuple[str, str, str]:
    """Namespace, pod (or :data:`CLAIMS`) and volume: where a volume sits below ``volumes/``."""
    return vol.namespace, vol.pod or CLAIMS, vol.volume


def browsable(vols: list[BackupVolume]) -> list[BackupVolume]:
    """The volumes a path can name: every pod volume, and the claims whose data is in the
    bucket (a CSI snapshot kept only in the storage system has nothing to list)."""
    return [v for v in vols if v.pod or v.repository]


@dataclass(frozen=True)
class BackupPath:
    backup: str = ""  # "" lists the backups
    area: str = ""  # "", RESOURCES or VOLUMES
    parts: tuple[str, ...] = ()  # up to 3: resource, namespace, name / namespace, pod, volume
    inner: str = "/"  # inside a volume's snapshot (only when all 3 volume parts are given)

    @property
    def namespace(self) -> str:
        """The resource namespace part, "" for cluster scope."""
        ns = self.parts[1]
        return "" if ns == CLUSTER else ns

    @property
    def volume_key(self) -> tuple[str, str, str]:
        """(namespace, pod, volume) as :meth:`BucketView.find_volume` takes them."""
        ns, pod, vol = self.parts
        return ns, "" if pod == CLAIMS else pod, vol

    @property
    def is_volume(self) -> bool:
        return self.area == VOLUMES and len(self.parts) == 3

    def __str__(self) -> str:
        text = "/".join([self.backup, self.area, *self.parts]).rstrip("/")
        return text + (f":{self.inner}" if self.is_volume and self.inner != "/" else "")


def parse(spec: str | None) -> BackupPath:
    if not spec:
        return BackupPath()
    left, colon, inner = spec.partition(":")
    parts = [p for p in left.split("/") if p and p != "."]
    if not parts:
        return BackupPath()
    if ".." in parts or ".." in inner.split("/"):
        raise UsageError(f"{spec!r}: '..' is not allowed in a backup path")
    backup, area, rest = parts[0], (parts[1] if len(parts) > 1 else ""), parts[2:]
    if area not in ("", RESOURCES, VOLUMES):
        raise UsageError(f"{spec!r}: expected {_FORM}")
    if area == VOLUMES and len(rest) > 3:
        if colon:
            raise UsageError(f"{spec!r}: give the path inside the volume after ':' or '/', not both")
        inner, colon, rest = "/".join(rest[3:]), ":", rest[:3]
    if len(rest) > 3 or (colon and not (area == VOLUMES and len(rest) == 3)):
        raise UsageError(f"{spec!r}: expected {_FORM}")
    return BackupPath(backup, area, tuple(rest), normalise(inner))

