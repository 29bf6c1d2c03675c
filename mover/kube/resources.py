"""The resources the controllers work with, and the name index that turns what an operator
writes in a filter (``deploy``, ``deployments.apps``, ``cm``) into a served resource."""

from __future__ import annotations

import time

from mover.kube.framework.client import Kube, KubeError, Resource


def _velero(plural: str, kind: str, version: str = "v1") -> Resource:
    return Resource("velero.io", version, plural, True, kind)


BACKUPS = _velero("backups", "Backup")
RESTORES = _velero("restores", "Restore")
SCHEDULES = _velero("schedules", "Schedule")
BSLS = _velero("backupstoragelocations", "BackupStorageLocation")
DELETE_BACKUP_REQUESTS = _velero("deletebackuprequests", "DeleteBackupRequest")
DOWNLOAD_REQUESTS = _velero("downloadrequests", "DownloadRequest")
POD_VOLUME_BACKUPS = _velero("podvolumebackups", "PodVolumeBackup")
POD_VOLUME_RESTORES = _velero("podvolumerestores", "PodVolumeRestore")
BACKUP_REPOSITORIES = _velero("backuprepositories", "BackupRepository")
DATA_UPLOADS = _velero("datauploads", "DataUpload", "v2alpha1")
DATA_DOWNLOADS = _velero("datadownloads", "DataDownload", "v2alpha1")

NAMESPACES = Resource("", "v1", "namespaces", False, "Namespace")
SECRETS = Resource("", "v1", "secrets", True, "Secret")
CONFIGMAPS = Resource("", "v1", "configmaps", True, "ConfigMap")
PODS = Resource("", "v1", "pods", True, "Pod")
PVCS = Resource("", "v1", "persistentvolumeclaims", True, "PersistentVolumeClaim")
PVS = Resource("", "v1", "persistentvolumes", False, "PersistentVolume")
VOLUME_SNAPSHOTS = Resource("snapshot.storage.k8s.io", "v1", "volumesnapshots", True, "VolumeSnapshot")
VOLUME_SNAPSHOT_CONTENTS = Resource("snapshot.storage.k8s.io", "v1", "volumesnapshotcontents", False,
                                    "VolumeSnapshotContent")
VOLUME_SNAPSHOT_CLASSES = Resource("snapshot.storage.k8s.io", "v1", "volumesnapshotclasses", False,
                                   "VolumeSnapshotClass")
CRDS = Resource("apiextensions.k8s.io", "v1", "customresourcedefinitions", False, "CustomResourceDefinition")


def wait_established(kube: Kube, crd_name: str, timeout: float) -> None:
    """Wait until a CustomResourceDefinition serves its resource (condition Established)."""
    deadline = time.monotonic() + timeout
    while True:
        crd = kube.get_or_none(CRDS, None, crd_name) or {}
        if any(c.get("type") == "Established" and c.get("status") == "True"
               for c in (crd.get("status") or {}).get("conditions") or []):
            return
        if time.monotonic() > deadline:
            raise KubeError(0, "Timeout", f"CustomResourceDefinition {crd_name} was not established in "
                                          f"{timeout:.0f}s")
        time.sleep(0.2)


class ResourceIndex:
    """The served resources, found through discovery, by every name kubectl accepts."""

    def __init__(self, resources: list[Resource]) -> None:
        self.resources = resources
        self._by_name: dict[str, Resource] = {}
        # Exact plural names first, so an alias never shadows a real resource name.
        for res in resources:
            self._by_name.setdefault(res.qualified, res)
            self._by_name.setdefault(res.plural, res)
        for res in resources:
            for alias in res.aliases:
                self._by_name.setdefault(alias, res)
                self._by_name.setdefault(f"{alias}.{res.group}" if res.group else alias, res)

    @classmethod
    def discover(cls, kube: Kube) -> ResourceIndex:
        return cls(kube.discover())

    def resolve(self, name: str) -> Resource | None:
        return self._by_name.get(name.lower())

    def qualified(self, name: str) -> str:
        """The ``plural.group`` name for a filter entry; unknown names and globs stay as written."""
        res = self.resolve(name)
        return res.qualified if res else name
