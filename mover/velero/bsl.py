"""Read a Velero backup storage location with no cluster: backups, their files, their volumes.

:class:`BucketView` is the one reading API for a bucket (CLI, FUSE and TUI use it). It reads
Velero's files lazily and caches what it parsed; a volume resolves to its snapshot in the
restic repository ``restic/<namespace>`` (or the kopia one ``kopia/<namespace>``) of the same
bucket, opened with the first password source that works (Velero shares one password across its repositories, so the winning source
is tried first for the next one). It never writes.
"""

from __future__ import annotations

import gzip
import json
import os
import threading
import zlib
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Self, TypeVar

from mover.errors import IntegrityError, NotARepository, NotFound, RepoError
from mover.repo.backend.base import Backend
from mover.repo.view import RepositoryView
from mover.velero import layout, volumes
from mover.velero.objects import (
    Backup,
    BackupResults,
    PodVolumeBackup,
    VolumeInfo,
    from_json,
    list_from_json,
)
from mover.velero.objectstore import ObjectStore, open_store
from mover.velero.repopassword import (
    PasswordSource,
    default_password,
    open_repository,
    open_with_password,
)
from mover.velero.tarball import BackupContents, ResourceRef
from mover.velero.volumes import BackupVolume
from mover.view import BlobCache, Node, Snapshot, SnapshotView

if TYPE_CHECKING:
    from mover.repo.backend.s3client import S3Options

T = TypeVar("T")


@dataclass
class BackupList:
    items: list[Backup] = field(default_factory=list)  # sorted by name
    unreadable: dict[str, str] = field(default_factory=dict)  # backup name -> why


class BucketView:
    """The Velero layout under one BSL prefix (an S3 bucket or a local directory)."""

    def __init__(self, store: ObjectStore,
                 passwords: Sequence[PasswordSource] | None = None,
                 cache_bytes: int | None = None) -> None:
        self.store = store
        # one budget for the decrypted blobs of all the volume repositories
        self._blobs = BlobCache(cache_bytes) if cache_bytes is not None else BlobCache()
        self._passwords = list(passwords) if passwords is not None else [default_password()]
        self._lock = threading.Lock()  # the file cache
        self._cache: dict[tuple[str, str], Any] = {}
        # Opening a repository is slow (network, scrypt): its own lock, so cached reads of
        # other threads (TUI workers) never wait for it.
        self._repo_lock = threading.Lock()
        self._repos: dict[str, SnapshotView] = {}

    @classmethod
    def open(cls, url: str, options: S3Options | None = None,
             passwords: Sequence[PasswordSource] | None = None,
             cache_bytes: int | None = None) -> BucketView:
        """A view of ``s3:http://host:port/bucket/prefix`` or of a directory."""
        path = url.removeprefix("local:")
        if not url.startswith("s3:") and not os.path.isdir(path):
            raise NotFound(f"backup storage location {path} is not a directory: give "
                           "s3:http[s]://host[:port]/bucket[/prefix] or a directory with "
                           "Velero's layout")
        return cls(open_store(url, options), passwords, cache_bytes)

    def location(self) -> str:
        return self.store.location()

    def close(self) -> None:
        with self._repo_lock:
            repos, self._repos = list(self._repos.values()), {}
        for view in repos:
            view.close()
        self.store.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the location --------------------------------------------------------------------

    def unexpected_prefixes(self) -> list[str]:
        """Top-level folders that make Velero mark this location invalid."""
        return layout.unexpected_top_level(self.store.list_dirs(""))

    def backup_names(self) -> list[str]:
        return self.store.list_dirs(layout.BACKUPS + "/")

    def restore_names(self) -> list[str]:
        return self.store.list_dirs(layout.RESTORES + "/")

    # -- one backup's files ----------------------------------------------------------------

    def backups(self) -> BackupList:
        """Every backup whose ``velero-backup.json`` reads; the others with the reason."""
        names = self.backup_names()
        out = BackupList()

        def load(name: str) -> Backup | str:
            try:
                return self.backup(name)
            except RepoError as e:
                return str(e)

        with ThreadPoolExecutor(8) as pool:
            for name, got in zip(names, pool.map(load, names), strict=True):
                if isinstance(got, Backup):
                    out.items.append(got)
                else:
                    out.unreadable[name] = got
        return out

    def backup(self, name: str) -> Backup:
        """The Backup object Velero stored; NotFound when the bucket has no such backup."""
        def load() -> Backup:
            key = layout.backup_metadata_key(name)
            try:
                data = self.store.get(key)
            except NotFound:
                raise NotFound(f"no backup {name!r} in {self.location()}") from None
            return from_json(Backup, _json(data, key), key)

        return self._cached("backup", name, load)

    def log(self, name: str) -> str:
        """The backup's log text; NotFound when Velero uploaded none."""
        self.backup(name)
        data = self._gz(layout.backup_file_key(name, layout.BACKUP_LOG))
        if data is None:
            raise NotFound(f"backup {name} has no log in {self.location()}")
        return data.decode("utf-8", "replace")

    def results(self, name: str) -> BackupResults | None:
        """Errors and warnings by scope; None for backups older than the results file."""
        key = layout.backup_file_key(name, layout.BACKUP_RESULTS)
        return self._cached("results", name, lambda: self._json_file(
            key, lambda d: from_json(BackupResults, d, key)))

    def resource_list(self, name: str) -> dict[str, list[str]] | None:
        """``"apps/v1/Deployment" -> ["ns/name", ...]``; None when the file is missing."""
        key = layout.backup_file_key(name, layout.RESOURCE_LIST)

        def check(d: Any) -> dict[str, list[str]]:
            if not isinstance(d, dict):
                raise IntegrityError(f"{key}: expected a JSON object")
            return {str(k): list(v or []) for k, v in d.items()}

        return self._cached("resource-list", name, lambda: self._json_file(key, check))

    def item_operations(self, name: str) -> list[dict[str, Any]]:
        key = layout.backup_file_key(name, layout.ITEM_OPERATIONS)
        return self._cached("item-operations", name,
                            lambda: self._json_file(key, lambda d: list(d or [])) or [])

    def pod_volume_backups(self, name: str) -> list[PodVolumeBackup]:
        key = layout.backup_file_key(name, layout.POD_VOLUME_BACKUPS)
        return self._cached("pvbs", name, lambda: self._json_file(
            key, lambda d: list_from_json(PodVolumeBackup, d, key)) or [])

    def volume_infos(self, name: str) -> list[VolumeInfo] | None:
        """The volume info list; None for backups made before Velero 1.13."""
        key = layout.backup_file_key(name, layout.VOLUME_INFO)
        return self._cached("volumeinfo", name, lambda: self._json_file(
            key, lambda d: list_from_json(VolumeInfo, d, key)))

    def volumes(self, name: str) -> list[BackupVolume]:
        """Every volume of the backup, from the volume info, else from the PodVolumeBackups."""
        self.backup(name)
        infos = self.volume_infos(name)
        if infos is not None:
            return volumes.from_volume_info(infos)
        return volumes.from_pod_volume_backups(self.pod_volume_backups(name))

    def contents(self, name: str) -> BackupContents:
        """The resources in the backup's tarball (downloaded once)."""
        def load() -> BackupContents:
            self.backup(name)
            key = layout.backup_file_key(name, layout.BACKUP_CONTENTS)
            try:
                data = self.store.get(key)
            except NotFound:
                raise NotFound(f"backup {name} has no resources tarball ({key}) in "
                               f"{self.location()}") from None
            return BackupContents.from_bytes(data, f"backup {name}")

        return self._cached("contents", name, load)

    def find_volume(self, name: str, namespace: str, pod: str, volume: str) -> BackupVolume:
        """The volume ``namespace/pod/volume`` of a backup (pod "" for a PVC-only volume)."""
        for v in self.volumes(name):
            if (v.namespace, v.pod, v.volume) == (namespace, pod, volume):
                return v
        label = f"{namespace}/{pod}/{volume}" if pod else f"{namespace}/{volume}"
        raise NotFound(f"backup {name} has no volume {label}")

    def restore_log(self, name: str) -> str:
        data = self._gz(layout.restore_file_key(name, layout.RESTORE_LOG))
        if data is None:
            raise NotFound(f"restore {name} has no log in {self.location()}")
        return data.decode("utf-8", "replace")

    # -- repositories and snapshots ----------------------------------------------------------

    def repository(self, uploader: str, namespace: str) -> SnapshotView:
        """The repository (restic's or kopia's) of a volume namespace, opened once; a namespace
        without one raises NotARepository."""
        prefix = layout.repository_prefix(uploader, namespace)
        with self._repo_lock:
            view = self._repos.get(prefix)
            if view is not None:
                return view
            backend = self.store.repository_backend(prefix)
            try:
                if uploader == layout.KOPIA:
                    view, used = self._open_kopia(backend)
                else:
                    repo, used = open_repository(backend, self._passwords)
                    view = RepositoryView(repo, cache=self._blobs)
            except NotARepository:
                backend.close()
                raise NotARepository(f"no {uploader} repository for namespace {namespace} at "
                                     f"{prefix} in {self.location()}") from None
            except BaseException:
                backend.close()
                raise
            # Velero uses one password for all repositories: try the one that worked first.
            self._passwords.insert(0, self._passwords.pop(used))
            self._repos[prefix] = view
            return view

    def _open_kopia(self, backend: Backend) -> tuple[SnapshotView, int]:
        from mover.kopia.repository import KopiaRepository
        from mover.kopia.storage import store_over
        from mover.kopia.view import KopiaView

        store = store_over(backend)
        fmt = KopiaRepository.read_format(store)
        repo, used = open_with_password(store.location(), self._passwords, lambda pw: (
            KopiaRepository.open_with_key(store, fmt, fmt.derive_format_key(pw))))
        return KopiaView(repo, cache=self._blobs), used

    def refresh_repositories(self) -> None:
        """Let the repositories opened so far see snapshots written since (new backups)."""
        with self._repo_lock:
            views = list(self._repos.values())
        for view in views:
            view.refresh()

    def volume_snapshot(self, name: str, vol: BackupVolume) -> tuple[SnapshotView, Snapshot]:
        """The repository and snapshot holding a volume's data."""
        if vol.repository is None:
            where = "in the storage system" if vol.snapshot_id else "anywhere"
            raise NotFound(f"volume {vol.label} of backup {name} ({vol.method}, result "
                           f"{vol.result or 'unknown'}) has no data in the bucket: its snapshot "
                           f"is {where}")
        view = self.repository(vol.uploader, vol.namespace)
        return view, _find_snapshot(view, vol, name)

    def volume_root(self, name: str, vol: BackupVolume) -> tuple[SnapshotView, Snapshot, Node]:
        """Where a volume's data starts: its snapshot's root directory, or for a block volume
        (a PVC of volumeMode Block, which Velero's data mover snapshots as a directory holding
        the device's bytes as one file) that file."""
        view, snap = self.volume_snapshot(name, vol)
        root = view.root(snap)
        if not self.is_block(name, vol):
            return view, snap, root
        entries = view.list_dir(root)
        if len(entries) != 1 or entries[0].type != "file":
            raise IntegrityError(f"block volume {vol.label} of backup {name}: snapshot "
                                 f"{snap.short_id} holds {len(entries)} entries, not the "
                                 "device's one file")
        return view, snap, entries[0]

    def is_block(self, name: str, vol: BackupVolume) -> bool:
        """Whether the volume is a claim of volumeMode Block (its backup's resources say)."""
        if vol.pod or not vol.pvc:  # pod volume backups copy file systems, never devices
            return False
        try:
            pvc = self.contents(name).get(ResourceRef("persistentvolumeclaims", vol.namespace, vol.pvc))
        except NotFound:
            return False
        return (pvc.get("spec") or {}).get("volumeMode") == "Block"

    # -- helpers -----------------------------------------------------------------------------

    def _cached(self, kind: str, name: str, load: Callable[[], T]) -> T:
        key = (kind, name)
        with self._lock:
            if key in self._cache:
                return self._cache[key]
        value = load()
        with self._lock:
            return self._cache.setdefault(key, value)

    def _gz(self, key: str) -> bytes | None:
        """A gzipped file's content, None when the file does not exist."""
        try:
            data = self.store.get(key)
        except NotFound:
            return None
        try:
            return gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as e:
            raise IntegrityError(f"{key} in {self.location()} is not valid gzip ({e})") from None

    def _json_file(self, key: str, parse: Callable[[Any], T]) -> T | None:
        data = self._gz(key)
        return None if data is None else parse(_json(data, key))


def _json(data: bytes, what: str) -> Any:
    try:
        return json.loads(data)
    except ValueError as e:
        raise IntegrityError(f"{what} is not valid JSON ({e})") from None


def _find_snapshot(view: SnapshotView, vol: BackupVolume, backup: str) -> Snapshot:
    """Velero records restic's 8-hex short id (kopia's whole manifest id): resolve it as a
    prefix, and if two snapshots share it, pick the one whose Velero tags name this backup,
    pod and volume."""
    ref = vol.snapshot_id.lower()
    snaps = view.matching_snapshots(ref)
    if len(snaps) > 1:
        want = {f"backup={backup}", f"volume={vol.volume}", f"pod={vol.pod}"}
        snaps = [s for s in snaps if want <= set(s.tags)]
    if len(snaps) == 1:
        return snaps[0]
    if not snaps:
        raise NotFound(f"snapshot {vol.snapshot_id} of volume {vol.label} (backup {backup}) is "
                       f"not in repository {view.location()}: it may have been pruned")
    raise NotFound(f"snapshot id {vol.snapshot_id} of volume {vol.label} matches "
                   f"{len(snaps)} snapshots in {view.location()}")
