"""Which volumes a backup holds, and where each one's data is.

Velero >= 1.13 writes ``<backup>-volumeinfo.json.gz``, one entry per volume whatever the method;
older backups only have ``<backup>-podvolumebackups.json.gz``. Both map to :class:`BackupVolume`,
whose ``repository`` is the ``restic/<ns>`` or ``kopia/<ns>`` prefix that holds its snapshot.
"""

from __future__ import annotations

from dataclasses import dataclass

from mover.velero import layout
from mover.velero.objects import (
    CSI_SNAPSHOT,
    NATIVE_SNAPSHOT,
    POD_VOLUME_BACKUP,
    PodVolumeBackup,
    VolumeInfo,
)

PVC_NAME_ANNOTATION = "velero.io/pvc-name"


@dataclass(frozen=True)
class BackupVolume:
    namespace: str  # the pod's (or PVC's) namespace: the repository is per namespace
    pod: str  # "" for CSI snapshots and native snapshots
    volume: str  # the pod's volume name; the PVC name when there is no pod
    pvc: str
    method: str  # objects.POD_VOLUME_BACKUP, CSI_SNAPSHOT or NATIVE_SNAPSHOT
    uploader: str  # "restic" or "kopia" when the data is in a repository in the bucket
    snapshot_id: str  # as Velero recorded it: restic's 8-hex short id, kopia's manifest id
    size: int  # bytes, 0 when unknown
    result: str  # PodVolumeBackup phase or volume-info result
    data_mover: str = ""
    node: str = ""

    @property
    def repository(self) -> str | None:
        """``restic/<ns>`` or ``kopia/<ns>``; None when the data is not in the bucket."""
        if self.uploader not in (layout.RESTIC, layout.KOPIA) or not self.snapshot_id:
            return None
        return layout.repository_prefix(self.uploader, self.namespace)

    @property
    def label(self) -> str:
        """``ns/pod/volume``, or ``ns/pvc`` for volumes without a pod."""
        if self.pod:
            return f"{self.namespace}/{self.pod}/{self.volume}"
        return f"{self.namespace}/{self.volume}"


def from_volume_info(infos: list[VolumeInfo]) -> list[BackupVolume]:
    out = []
    for info in infos:
        if info.skipped:
            continue
        if info.backup_method == POD_VOLUME_BACKUP and info.pvb_info:
            p = info.pvb_info
            out.append(BackupVolume(p.pod_namespace, p.pod_name, p.volume_name, info.pvc_name,
                                    POD_VOLUME_BACKUP, p.uploader_type, p.snapshot_handle, p.size,
                                    info.result or p.phase, node=p.node_name))
        elif info.backup_method == CSI_SNAPSHOT and info.snapshot_data_moved:
            m = info.snapshot_data_movement_info
            if m is not None:
                out.append(BackupVolume(info.pvc_namespace, "", info.pvc_name, info.pvc_name,
                                        CSI_SNAPSHOT, m.uploader_type, m.snapshot_handle, m.size,
                                        info.result or m.phase, data_mover=m.data_mover or "velero"))
        elif info.backup_method == CSI_SNAPSHOT and info.csi_snapshot_info:
            c = info.csi_snapshot_info
            out.append(BackupVolume(info.pvc_namespace, "", info.pvc_name, info.pvc_name,
                                    CSI_SNAPSHOT, "", c.snapshot_handle, c.size, info.result))
        elif info.backup_method == NATIVE_SNAPSHOT and info.native_snapshot_info:
            n = info.native_snapshot_info
            out.append(BackupVolume(info.pvc_namespace, "", info.pvc_name or info.pv_name,
                                    info.pvc_name, NATIVE_SNAPSHOT, "", n.snapshot_handle, 0,
                                    info.result or n.phase))
    return out


def from_pod_volume_backups(pvbs: list[PodVolumeBackup]) -> list[BackupVolume]:
    return [
        BackupVolume(p.spec.pod.namespace, p.spec.pod.name, p.spec.volume,
                     p.metadata.annotations.get(PVC_NAME_ANNOTATION, ""), POD_VOLUME_BACKUP,
                     p.spec.uploader_type, p.status.snapshot_id, p.status.progress.total_bytes,
                     p.status.phase, node=p.spec.node)
        for p in pvbs
    ]
