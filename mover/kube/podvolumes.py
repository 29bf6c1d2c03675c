"""The server's side of file-system backup: a Backup starts a PodVolumeBackup for each chosen
pod volume and waits for them; a Restore gives each restored pod with backed-up volumes the
restore-wait init container, starts a PodVolumeRestore per volume and waits for them. The
node agents move the data.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from mover.errors import RepoError
from mover.kube.framework.client import KubeError, Obj, Resource
from mover.kube.framework.controller import Context
from mover.kube.oplog import OperationLog
from mover.kube.repositories import ensure_repository
from mover.kube.resources import POD_VOLUME_BACKUPS, POD_VOLUME_RESTORES, PVCS, PVS
from mover.velero import labels
from mover.velero.objects import PodVolumeBackup, decode
from mover.velero.podvolumes import (
    FINAL_PHASES,
    add_restore_wait,
    claim_name,
    new_pod_volume_backup,
    new_pod_volume_restore,
    restorable,
    volumes_to_back_up,
)

POLL = 0.2  # seconds between looks at the objects being waited for


class Stopped(Exception):
    """The server is stopping while volumes are still moving."""


class Abandoned(Exception):
    """The backup or restore the volumes belong to was deleted: its volume work is cancelled."""


def wait_all(ctx: Context, resource: Resource, names: list[str], wanted: Callable[[], bool],
             timeout: float, cancel_late: bool = False) -> list[Obj | None]:
    """Wait until every named object reaches a final phase; return them (None for one that
    was deleted). A ``wanted()`` that turns False cancels the unfinished ones (``spec.cancel``).
    After ``timeout`` seconds, an error; with ``cancel_late``, the unfinished ones are
    cancelled and returned as they are."""
    deadline = time.monotonic() + timeout
    while True:
        # The cache may not show an object just created yet: ask the server about those.
        objs = [ctx.cached(resource, n) or ctx.kube.get_or_none(resource, ctx.namespace, n) for n in names]
        unfinished = [n for n, o in zip(names, objs, strict=True)
                      if o is not None and (o.get("status") or {}).get("phase") not in FINAL_PHASES]
        # Asked first: deleting the owner may delete these objects too, which is no finish.
        if not wanted():
            _cancel(ctx, resource, unfinished)
            raise Abandoned()
        if not unfinished:
            return objs
        if ctx.stop.is_set():
            raise Stopped()
        if time.monotonic() > deadline:
            if cancel_late:
                _cancel(ctx, resource, unfinished)
                return objs
            raise RepoError(f"timed out after {timeout:.0f}s waiting for {resource.kind}s "
                            f"{', '.join(unfinished)}")
        ctx.stop.wait(POLL)


def _cancel(ctx: Context, resource: Resource, names: list[str]) -> None:
    for name in names:
        try:
            ctx.kube.patch(resource, ctx.namespace, name, {"spec": {"cancel": True}})
        except KubeError as exc:
            if not exc.not_found:
                raise


class BackupVolumes:
    """What the volume objects of one Backup (its pod volume backups or its data uploads) share:
    the names made, and those an earlier run of this very backup made, to be taken over."""

    def __init__(self, ctx: Context, backup: Obj, bsl: Obj, log: OperationLog) -> None:
        self.ctx = ctx
        self.backup = backup
        self.bsl = bsl
        self.log = log
        self.names: list[str] = []

    def earlier(self, resource: Resource) -> list[Obj]:
        """The ``resource`` objects labelled with this backup's uid."""
        uid = self.backup["metadata"].get("uid", "")
        return [o for o in self.ctx.cached_all(resource)
                if (o["metadata"].get("labels") or {}).get(labels.BACKUP_UID) == uid]


class VolumeBackups(BackupVolumes):
    """The pod volume backups of one Backup."""

    def __init__(self, ctx: Context, backup: Obj, bsl: Obj, log: OperationLog) -> None:
        super().__init__(ctx, backup, bsl, log)
        self.claims: set[tuple[str, str]] = set()  # (namespace, name) of the claims backed up here

    def start(self, pods: list[Obj]) -> None:
        """Create the PodVolumeBackups of ``pods`` (those of an earlier run of this very backup
        are taken over, not made twice)."""
        earlier = {_volume_key(p): p["metadata"]["name"] for p in self.earlier(POD_VOLUME_BACKUPS)}
        default = bool((self.backup.get("spec") or {}).get("defaultVolumesToFsBackup"))
        claims = self.claims
        repositories: dict[str, Obj | RepoError] = {}  # by namespace: asked for once per backup
        for pod in pods:
            meta = pod["metadata"]
            where = {"namespace": meta["namespace"]}
            volumes, skipped = volumes_to_back_up(pod, default)
            for why in skipped:
                self.log.warning(why, **where)
            if not volumes:
                continue
            if (pod.get("status") or {}).get("phase") != "Running":
                self.log.warning(f"Skipping volumes {', '.join(volumes)} of pod {meta['namespace']}/{meta['name']}: "
                                 "pod not running", **where)
                continue
            for volume in volumes:
                skip, pvc = self._claim(pod, volume, claims)
                if skip:
                    continue
                key = (meta["namespace"], meta["name"], volume)
                if key in earlier:
                    self.names.append(earlier[key])
                    continue
                if meta["namespace"] not in repositories:
                    try:
                        repositories[meta["namespace"]] = ensure_repository(self.ctx, meta["namespace"], self.bsl)
                    except RepoError as exc:
                        repositories[meta["namespace"]] = exc
                try:
                    repository = repositories[meta["namespace"]]
                    if isinstance(repository, RepoError):
                        raise repository
                    repo_id = repository["spec"].get("resticIdentifier", "")
                    created = self.ctx.kube.create(POD_VOLUME_BACKUPS, self.ctx.namespace,
                                                   new_pod_volume_backup(self.backup, pod, volume, repo_id, pvc))
                except (RepoError, KubeError) as exc:
                    self.log.error(f"error backing up volume {volume} of pod {meta['namespace']}/{meta['name']}: "
                                   f"{getattr(exc, 'message', None) or exc}", **where)
                    continue
                self.names.append(created["metadata"]["name"])

    def _claim(self, pod: Obj, volume: str, claims: set[tuple[str, str]]) -> tuple[bool, Obj | None]:
        """Whether to skip the volume here, and its claim (None: not a claim)."""
        meta = pod["metadata"]
        name = claim_name(pod, volume)
        if not name:
            return False, None
        where = {"namespace": meta["namespace"]}
        if (meta["namespace"], name) in claims:
            self.log.info(f"Pod volume {volume} of pod {meta['namespace']}/{meta['name']} uses a persistent volume "
                          "claim which has already been backed up from another pod, skipping.", **where)
            return True, None
        pvc = self.ctx.kube.get_or_none(PVCS, meta["namespace"], name)
        if pvc is None:
            self.log.error(f"error getting persistent volume claim {name} for volume {volume} of pod "
                           f"{meta['namespace']}/{meta['name']}: not found", **where)
            return True, None
        bound = (pvc.get("spec") or {}).get("volumeName")
        pv = self.ctx.kube.get_or_none(PVS, None, bound) if bound else None
        if pv is not None and "hostPath" in (pv.get("spec") or {}):
            self.log.warning(f"Volume {volume} in pod {meta['namespace']}/{meta['name']} is a hostPath volume "
                             "which is not supported for pod volume backup, skipping", **where)
            return True, None
        claims.add((meta["namespace"], name))
        return False, pvc

    def wait(self, wanted: Callable[[], bool], timeout: float) -> list[PodVolumeBackup]:
        """The finished PodVolumeBackups; each one that failed is an error of the backup."""
        done = []
        finished = wait_all(self.ctx, POD_VOLUME_BACKUPS, self.names, wanted, timeout)
        for name, obj in zip(self.names, finished, strict=True):
            if obj is None:
                self.log.error(f"pod volume backup {name} was deleted before it finished")
            else:
                done.append(decode(PodVolumeBackup, obj))
        for pvb in done:
            if pvb.status.phase != "Completed":
                self.log.error(f"pod volume backup failed: {pvb.spec.pod.namespace}/{pvb.spec.pod.name} volume "
                               f"{pvb.spec.volume}: {pvb.status.message or pvb.status.phase}",
                               namespace=pvb.spec.pod.namespace)
        return done


def _volume_key(pvb: Obj) -> tuple[str, str, str]:
    spec = pvb.get("spec") or {}
    return ((spec.get("pod") or {}).get("namespace", ""), (spec.get("pod") or {}).get("name", ""),
            spec.get("volume", ""))


class VolumeRestores:
    """The pod volume restores of one Restore."""

    def __init__(self, ctx: Context, restore: Obj, backed_up: list[PodVolumeBackup], log: OperationLog,
                 image: str) -> None:
        self.ctx = ctx
        self.restore = restore
        self.backed_up = backed_up
        self.log = log
        self.image = image
        self.names: list[str] = []

    def prepare(self, source_namespace: str, pod: Obj) -> list[PodVolumeBackup]:
        """Before ``pod`` (as it will be created) is created: its volumes to restore, and the
        restore-wait init container for them."""
        volumes = restorable(self.backed_up, source_namespace, pod["metadata"]["name"])
        if volumes:
            add_restore_wait(pod, [p.spec.volume for p in volumes], self.restore["metadata"].get("uid", ""),
                             self.image)
        return volumes

    def start(self, pod: Obj, volumes: list[PodVolumeBackup]) -> None:
        """After ``pod`` was created: a PodVolumeRestore for each of its backed-up volumes."""
        for pvb in volumes:
            body = new_pod_volume_restore(self.restore, pod, pvb, pvb.spec.repo_identifier)
            try:
                created = self.ctx.kube.create(POD_VOLUME_RESTORES, self.ctx.namespace, body)
            except KubeError as exc:
                self.log.error(f"error restoring volume {pvb.spec.volume} of pod {pod['metadata']['namespace']}/"
                               f"{pod['metadata']['name']}: {exc.message}", namespace=pod["metadata"]["namespace"])
                continue
            self.names.append(created["metadata"]["name"])

    def wait(self, wanted: Callable[[], bool], timeout: float) -> None:
        finished = wait_all(self.ctx, POD_VOLUME_RESTORES, self.names, wanted, timeout)
        for name, pvr in zip(self.names, finished, strict=True):
            if pvr is None:
                self.log.error(f"pod volume restore {name} was deleted before it finished")
                continue
            status, spec = pvr.get("status") or {}, pvr["spec"]
            if status.get("phase") != "Completed":
                self.log.error(f"pod volume restore failed: {spec['pod'].get('namespace')}/{spec['pod'].get('name')} "
                               f"volume {spec.get('volume')}: {status.get('message') or status.get('phase')}",
                               namespace=spec["pod"].get("namespace"))
