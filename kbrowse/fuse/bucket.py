"""What a mount of a Velero bucket (`kbrowse mount --bsl B`) shows:

    backups/<backup>/volumes/<namespace>/<pod>/<volume>/            the volume's snapshot tree
    backups/<backup>/volumes/<namespace>/_pvc/<claim>/             a claim moved by the data mover
    backups/<backup>/volumes/<namespace>/_pvc/<claim>              a block claim: the device's bytes
    backups/<backup>/resources/<resource>[.<group>]/<namespace>/<name>.yaml
                                                    (namespace _cluster: cluster-scoped objects)

Only the backup names are read at mount time (and again, for backups made since, when
backups/ is listed or a name in it is missing). A backup's files are read when its directory is
looked into, its resources tarball when resources/ is (or volumes/ holding moved claims, whose
volume modes it records), and a volume's repository is opened (password, index) only when the
volume's directory is entered, or a block volume's file stat'ed. A resource file holds the text
`kbrowse cat --bsl` prints. Virtual entries take the backup's completion time.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from kbrowse.bucket.paths import CLUSTER, RESOURCES, VOLUMES, browsable, volume_parts
from kbrowse.bucket.printers import to_yaml
from kbrowse.fuse.tree import Entry, LazyDir, LazySnapshot, SnapEntry, TextFile, VDir, vdir
from mover.velero.bsl import BucketView
from mover.velero.tarball import ResourceRef
from mover.velero.volumes import BackupVolume

BACKUPS = "backups"


def _name(s: str) -> bytes:
    return s.encode("utf-8", "surrogateescape")


def _ns(when: datetime | None) -> int:
    return int(when.timestamp()) * 10**9 if when is not None else 0


class BucketTree:
    """A bucket mount's root, built again when backups come or go: the names are listed at
    mount time (an unreadable bucket fails the mount) and again on :meth:`reload`."""

    def __init__(self, bucket: BucketView, mtime: int) -> None:
        self.bucket = bucket
        self.mtime = mtime
        self._backups = {n: _backup_dir(bucket, n) for n in bucket.backup_names()}

    def root(self) -> VDir:
        backups = {_name(n): e for n, e in self._backups.items()}
        return vdir({_name(BACKUPS): vdir(backups, self.mtime)}, self.mtime)

    def reload(self) -> VDir | None:
        """The new root, or None when the bucket holds the same backups."""
        names = set(self.bucket.backup_names())
        if names == self._backups.keys():
            return None
        # a new backup's volume snapshots are in index files written since a repository opened
        self.bucket.refresh_repositories()
        self._backups = {n: self._backups.get(n) or _backup_dir(self.bucket, n)
                         for n in sorted(names)}
        return self.root()


def _backup_dir(bucket: BucketView, name: str) -> LazyDir:
    def mtime() -> int:
        st = bucket.backup(name).status
        meta = bucket.backup(name).metadata
        return _ns(st.completion_timestamp or st.start_timestamp or meta.creation_timestamp)

    def load() -> dict[bytes, Entry]:
        bucket.backup(name)  # NotFound: the backup's metadata is gone or unreadable
        return {_name(RESOURCES): LazyDir(lambda: _resources(bucket, name, mtime), mtime),
                _name(VOLUMES): LazyDir(lambda: _volumes(bucket, name, mtime), mtime)}

    return LazyDir(load, mtime)


def _resources(bucket: BucketView, backup: str, mtime: Callable[[], int]) -> dict[bytes, Entry]:
    contents = bucket.contents(backup)
    tree: dict[str, dict[str, dict[bytes, Entry]]] = {}
    for ref in contents.refs():
        files = tree.setdefault(ref.resource, {}).setdefault(ref.namespace or CLUSTER, {})
        files[_name(ref.name + ".yaml")] = _yaml_file(bucket, backup, ref, mtime)
    t = mtime()
    return {_name(res): vdir({_name(ns): vdir(files, t) for ns, files in by_ns.items()}, t)
            for res, by_ns in tree.items()}


def _yaml_file(bucket: BucketView, backup: str, ref: ResourceRef,
               mtime: Callable[[], int]) -> TextFile:
    return TextFile(lambda: to_yaml(bucket.contents(backup).get(ref)).encode("utf-8"), mtime)


def _volumes(bucket: BucketView, backup: str, mtime: Callable[[], int]) -> dict[bytes, Entry]:
    tree: dict[str, dict[str, dict[bytes, Entry]]] = {}
    for vol in browsable(bucket.volumes(backup)):
        ns, pod, name = volume_parts(vol)
        tree.setdefault(ns, {}).setdefault(pod, {})[_name(name)] = _volume_dir(bucket, backup, vol, mtime)
    t = mtime()
    return {_name(ns): vdir({_name(pod): vdir(vols, t) for pod, vols in pods.items()}, t)
            for ns, pods in tree.items()}


def _volume_dir(bucket: BucketView, backup: str, vol: BackupVolume,
                mtime: Callable[[], int]) -> LazySnapshot:
    def open_snapshot() -> SnapEntry:
        view, snap, top = bucket.volume_root(backup, vol)
        return SnapEntry(snap, top, b"", view)

    return LazySnapshot(open_snapshot, mtime, device=bucket.is_block(backup, vol))
