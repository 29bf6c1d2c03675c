"""Velero's repositories of volume data, as the server and the node agent reach them.

One restic-format repository per (volume namespace, storage location), at
``<bucket>/<prefix>/restic/<namespace>``, described by a BackupRepository object. Every
repository shares one password, kept in the secret ``velero-repo-credentials`` (key
``repository-password``) in the mover's namespace; `mover server` creates it with a random
password when it is missing. Velero would write its static default there; a new repository
never gets that one.
"""

from __future__ import annotations

import base64
import secrets
import time
from datetime import timedelta
from typing import Any

from mover.errors import NotARepository, RepoError
from mover.golang.duration import format_duration
from mover.kube.framework.client import Kube, KubeError, Obj
from mover.kube.framework.controller import Context
from mover.kube.resources import BACKUP_REPOSITORIES, SECRETS
from mover.kube.storage import StoreCache
from mover.repo.backend.base import FileType, Handle
from mover.repo.forget import forget_snapshots
from mover.repo.repository import Repository
from mover.velero import labels, layout
from mover.velero.objects import PodVolumeBackup
from mover.velero.podvolumes import UPLOADER, repo_identifier
from mover.velero.repopassword import SECRET_KEY, SECRET_NAMES

PASSWORD_SECRET = SECRET_NAMES[0]
# Velero's --default-repo-maintain-frequency for restic repositories.
MAINTENANCE_FREQUENCY = timedelta(days=7)
READY_TIMEOUT = 60.0  # seconds a backup waits for a new repository to become Ready


def ensure_password_secret(kube: Kube, namespace: str) -> None:
    """Create the repository password secret with a random password unless it exists."""
    try:
        if kube.get_or_none(SECRETS, namespace, PASSWORD_SECRET) is not None:
            return
    except KubeError as exc:
        raise RepoError(f"cannot read the repository password secret {namespace}/{PASSWORD_SECRET}: "
                        f"{exc.message}") from None
    password = secrets.token_urlsafe(32)
    body = {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": PASSWORD_SECRET, "labels": {"component": "velero"}},
            "data": {SECRET_KEY: base64.b64encode(password.encode()).decode()}}
    try:
        kube.create(SECRETS, namespace, body)
    except KubeError as exc:
        if not exc.already_exists:  # another server made it first: theirs is the password
            raise RepoError(f"cannot create the repository password secret {namespace}/{PASSWORD_SECRET}: "
                            f"{exc.message}") from None


def repository_password(kube: Kube, namespace: str) -> str:
    secret = kube.get_or_none(SECRETS, namespace, PASSWORD_SECRET)
    value = ((secret or {}).get("data") or {}).get(SECRET_KEY)
    if not value:
        raise RepoError(f"secret {namespace}/{PASSWORD_SECRET} with key {SECRET_KEY} is missing: the "
                        "repository password is kept there (mover server creates it)")
    return base64.b64decode(value).decode("utf-8").strip()  # restic trims a password file


def open_repository(kube: Kube, stores: StoreCache, bsl: Obj, volume_namespace: str, *,
                    create: bool = False) -> Repository:
    """The restic repository of ``volume_namespace`` in location ``bsl``; with ``create``, one
    is made there when none exists yet."""
    store = stores.open(kube, bsl)
    backend = store.repository_backend(layout.repository_prefix(UPLOADER, volume_namespace))
    password = repository_password(kube, bsl["metadata"]["namespace"])
    try:
        try:
            return Repository.open(backend, password)
        except NotARepository:
            if not create or backend.exists(Handle(FileType.CONFIG)):
                raise
            return Repository.init(backend, password)
    except BaseException:
        backend.close()
        raise


def forget_volume_snapshots(kube: Kube, stores: StoreCache, bsl: Obj, pvbs: list[PodVolumeBackup]) -> list[str]:
    """Forget the snapshots of a deleted backup's pod volumes (Velero's backup deletion does);
    returns what went wrong, one line per repository. Their data stays until a prune."""
    wanted: dict[str, list[PodVolumeBackup]] = {}
    for pvb in pvbs:
        if pvb.status.snapshot_id:
            wanted.setdefault(pvb.spec.pod.namespace, []).append(pvb)
    errors = []
    for namespace, group in sorted(wanted.items()):
        try:
            repo = open_repository(kube, stores, bsl, namespace)
        except RepoError as exc:
            errors.append(f"error forgetting the volume snapshots of namespace {namespace}: {exc}")
            continue
        try:
            snapshots = repo.snapshots()
            ids = [s.id for pvb in group for s in snapshots if s.id.hex().startswith(pvb.status.snapshot_id)
                   and f"backup-uid={pvb.spec.tags.get('backup-uid', '')}" in s.tags]
            forget_snapshots(repo, ids)
        except RepoError as exc:
            errors.append(f"error forgetting the volume snapshots of namespace {namespace}: {exc}")
        finally:
            repo.close()
    return errors


def find_repository(ctx: Context, volume_namespace: str, location: str) -> Obj | None:
    for repo in ctx.cached_all(BACKUP_REPOSITORIES):
        spec = repo.get("spec") or {}
        if (spec.get("volumeNamespace"), spec.get("backupStorageLocation"), spec.get("repositoryType")) == \
                (volume_namespace, location, UPLOADER):
            return repo
    return None


def ensure_repository(ctx: Context, volume_namespace: str, bsl: Obj) -> Obj:
    """The Ready BackupRepository of (namespace, location): created on first use, then waited
    for (the repository controller initialises it). Raises RepoError if it does not get Ready."""
    location = bsl["metadata"]["name"]
    repo = find_repository(ctx, volume_namespace, location)
    if repo is None:
        repo = ctx.kube.create(BACKUP_REPOSITORIES, ctx.namespace, new_repository(volume_namespace, bsl))
    deadline = time.monotonic() + READY_TIMEOUT
    name = repo["metadata"]["name"]
    while True:
        status: dict[str, Any] = (repo.get("status") or {})
        if status.get("phase") == "Ready":
            return repo
        if status.get("phase") == "NotReady":
            raise RepoError(f"backup repository {name} is not ready: {status.get('message', '')}")
        if time.monotonic() > deadline or ctx.stop.is_set():
            raise RepoError(f"backup repository {name} did not become ready in {READY_TIMEOUT:.0f}s")
        ctx.stop.wait(0.1)
        repo = ctx.cached(BACKUP_REPOSITORIES, name) or repo


def new_repository(volume_namespace: str, bsl: Obj) -> Obj:
    location = bsl["metadata"]["name"]
    return {"apiVersion": "velero.io/v1", "kind": "BackupRepository", "metadata": {
        "generateName": f"{volume_namespace}-{location}-{UPLOADER}-",
        "labels": {labels.VOLUME_NAMESPACE: volume_namespace, labels.STORAGE_LOCATION: location,
                   labels.REPOSITORY_TYPE: UPLOADER},
    }, "spec": {
        "volumeNamespace": volume_namespace, "backupStorageLocation": location, "repositoryType": UPLOADER,
        "resticIdentifier": repo_identifier(bsl, volume_namespace),
        "maintenanceFrequency": format_duration(int(MAINTENANCE_FREQUENCY.total_seconds()) * 10**9),
    }}
