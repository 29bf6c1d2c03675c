"""Restore controller: recreate a backup's objects in this cluster.

Phases: New -> FailedValidation, or New -> InProgress -> Completed / PartiallyFailed (some
items failed) / Failed (the restore as a whole failed). Objects are created in Velero's order
(restore_items.py); one that already exists is left alone (``existingResourcePolicy: none``,
a warning when it differs from the backup) or patched to the backed-up version (``update``).
The log, results and the list of restored objects go to ``restores/<name>/`` in the backup's
storage location. A restored pod with backed-up volumes starts with the restore-wait init
container and gets a PodVolumeRestore per volume, which the node agents carry out; the restore
is done when they are. A restore found InProgress at start-up was cut short by a server stop:
it is marked Failed (Velero does the same), since half of it may already be applied.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from mover.errors import RepoError
from mover.kube.framework.client import Kube, KubeError, Obj, Resource
from mover.kube.framework.controller import Context, Controller
from mover.kube.framework.status import patch_status
from mover.kube.items.restore import NON_RESTORABLE, changes, priority, reset, transform
from mover.kube.oplog import OperationLog
from mover.kube.podvolumes import Abandoned, Stopped, VolumeRestores
from mover.kube.resources import (
    BACKUPS,
    BSLS,
    CRDS,
    DATA_DOWNLOADS,
    NAMESPACES,
    POD_VOLUME_RESTORES,
    RESTORES,
    ResourceIndex,
    wait_established,
)
from mover.kube.storage import StoreCache
from mover.kube.volumedownloads import DATA_UPLOADS, VolumeDownloads
from mover.velero import labels as velero_labels
from mover.velero.bsl import BucketView
from mover.velero.filters import IncludesExcludes, labels_match
from mover.velero.objects import (
    Restore,
    RestoreSpec,
    decode,
    format_time,
)
from mover.velero.podvolumes import RESTORE_HELPER_IMAGE
from mover.velero.tarball import BackupContents, ResourceRef
from mover.velero.writer import RestoreRecord, write_restore

POLICIES = ("", "none", "update")
NO_SOURCE = "either a backup or schedule must be specified as a source for the restore, but not both"
PROGRESS_EVERY = 1.0


@dataclass
class Planned:
    ref: ResourceRef
    obj: Obj
    target_namespace: str  # "" for cluster-scoped


class RestoreController(Controller):
    resource = RESTORES
    reads = (BSLS, BACKUPS, POD_VOLUME_RESTORES, DATA_DOWNLOADS)

    def __init__(self, ctx: Context, stores: StoreCache, helper_image: str = RESTORE_HELPER_IMAGE,
                 pod_volume_timeout: float = 4 * 3600.0) -> None:
        super().__init__(ctx)
        self.stores = stores
        self.helper_image = helper_image  # the restore-wait init container's image
        self.pod_volume_timeout = pod_volume_timeout  # seconds, Velero's --fs-backup-timeout

    def reconcile(self, name: str, obj: Obj | None) -> float | None:
        if obj is None or (obj.get("status") or {}).get("phase", "New") not in ("New", "InProgress"):
            return None
        fresh = self.ctx.kube.get_or_none(RESTORES, self.ctx.namespace, name)
        if fresh is None:
            return None
        phase = (fresh.get("status") or {}).get("phase", "New")
        if phase == "InProgress":
            self._patch(name, {"phase": "Failed", "completionTimestamp": format_time(self.ctx.clock()),
                               "failureReason": "found a restore with status InProgress during the server "
                                                "starting, mark it as Failed"})
        elif phase == "New":
            self._start(fresh)
        return None

    def _patch(self, name: str, status: dict[str, Any], rv: str | None = None) -> Obj:
        return patch_status(self.ctx.kube, RESTORES, self.ctx.namespace, name, status, rv)

    # New -> FailedValidation | InProgress

    def _backup_for(self, spec: RestoreSpec) -> tuple[str, Obj | None, list[str]]:
        """The backup to restore from: named, or the schedule's latest successful one."""
        if bool(spec.backup_name) == bool(spec.schedule_name):
            return "", None, [NO_SOURCE]
        if spec.schedule_name:
            schedule = spec.schedule_name
            done = [b for b in self.ctx.cached_all(BACKUPS)
                    if (b["metadata"].get("labels") or {}).get(velero_labels.SCHEDULE_NAME) == schedule
                    and (b.get("status") or {}).get("phase") in ("Completed", "PartiallyFailed")]
            if not done:
                return "", None, [f"No backups found for schedule {schedule}"]
            latest = max(done, key=lambda b: (b["status"].get("startTimestamp") or "", b["metadata"]["name"]))
            return latest["metadata"]["name"], latest, []
        return spec.backup_name, self.ctx.kube.get_or_none(BACKUPS, self.ctx.namespace, spec.backup_name), []

    def _start(self, obj: Obj) -> None:
        name, spec = obj["metadata"]["name"], decode(Restore, obj).spec
        errors = []
        for what, inc, exc in (("namespace", spec.included_namespaces, spec.excluded_namespaces),
                               ("resource", spec.included_resources, spec.excluded_resources)):
            for item in IncludesExcludes.of(inc, exc).overlap():
                errors.append(f"Invalid included/excluded {what} lists: excludes list cannot contain an item in "
                              f"the includes list: {item}")
        if spec.existing_resource_policy not in POLICIES:
            errors.append(f"Invalid existingResourcePolicy: {spec.existing_resource_policy}; use none or update")
        backup_name, backup, found = self._backup_for(spec)
        errors += found
        bsl = None
        if backup_name and backup is None:
            errors.append(f"backup {backup_name} not found")
        elif backup is not None:
            phase = (backup.get("status") or {}).get("phase", "")
            if phase not in ("Completed", "PartiallyFailed"):
                errors.append(f"backup {backup_name} is in phase {phase or 'New'}: only Completed or "
                              "PartiallyFailed backups can be restored")
            location = (backup.get("spec") or {}).get("storageLocation", "")
            bsl = self.ctx.kube.get_or_none(BSLS, self.ctx.namespace, location)
            if bsl is None:
                errors.append(f"backup storage location {location} of backup {backup_name} not found")
        rv = obj["metadata"]["resourceVersion"]
        if errors:
            self._patch(name, {"phase": "FailedValidation", "validationErrors": errors}, rv)
            return
        assert bsl is not None  # a missing backup or location is one of the errors
        if not spec.backup_name:
            named = self.ctx.kube.patch(RESTORES, self.ctx.namespace, name, {
                "metadata": {"resourceVersion": rv}, "spec": {"backupName": backup_name}})
            rv = named["metadata"]["resourceVersion"]
        claimed = self._patch(name, {"phase": "InProgress", "startTimestamp": format_time(self.ctx.clock())}, rv)
        self._run(claimed, backup_name, bsl)

    # InProgress -> Completed | PartiallyFailed | Failed

    def _run(self, obj: Obj, backup_name: str, bsl: Obj) -> None:
        name = obj["metadata"]["name"]
        log = OperationLog(self.ctx.clock, restore=f"{self.ctx.namespace}/{name}")
        log.info(f"starting restore of backup {self.ctx.namespace}/{backup_name}")
        try:
            store = self.stores.open(self.ctx.kube, bsl)
            bucket = BucketView(store)
            contents = bucket.contents(backup_name)
            volumes = VolumeRestores(self.ctx, obj, bucket.pod_volume_backups(backup_name), log, self.helper_image)
            downloads = VolumeDownloads(self.ctx, obj, contents, log)
            applier = _Applier(self.ctx.kube, obj, backup_name, log,
                               lambda status: self._patch(name, status), volumes, downloads)
            applier.run(contents)
            uid = obj["metadata"].get("uid")

            def wanted() -> bool:
                return (self.ctx.cached(RESTORES, name) or {}).get("metadata", {}).get("uid") == uid

            if volumes.names:
                log.info(f"Waiting for {len(volumes.names)} pod volume restores to complete")
                volumes.wait(wanted, self.pod_volume_timeout)
            if downloads.names:
                log.info(f"Waiting for {len(downloads.names)} data downloads to complete")
                self._patch(name, {"restoreItemOperationsAttempted": len(downloads.names)})
                downloads.wait(wanted)
            phase = "PartiallyFailed" if log.errors else "Completed"
            log.info(f"Restore {phase.lower()}: restored {applier.restored} items out of an estimated total "
                     f"of {applier.total}")
            status = {"phase": phase, "completionTimestamp": format_time(self.ctx.clock()),
                      "progress": {"totalItems": applier.total, "itemsRestored": applier.restored},
                      **(downloads.status() if downloads.names else {}), **log.counts()}
            record = decode(Restore, {**obj, "status": {**(obj.get("status") or {}), **status}})
            write_restore(store, RestoreRecord(restore=record, log=log.text(), results=log.results(),
                                               resource_list=applier.resource_list))
            self._patch(name, status)
        except Stopped:
            log.info("server stopping while pod volumes are restored")
        except Abandoned:
            log.info("restore deleted while its volumes were restored; their restores are canceled")
        except (RepoError, KubeError) as exc:
            self._fail(obj, log, str(exc))

    def _fail(self, obj: Obj, log: OperationLog, why: str) -> None:
        log.error(f"restore failed: {why}")
        self._patch(obj["metadata"]["name"], {"phase": "Failed", "failureReason": why, **log.counts(),
                                              "completionTimestamp": format_time(self.ctx.clock())})


class _Applier:
    """One restore's work: choose the items, order them, create or reconcile each."""

    def __init__(self, kube: Kube, restore: Obj, backup: str, log: OperationLog, write_status: Any,
                 volumes: VolumeRestores, downloads: VolumeDownloads) -> None:
        self.kube = kube
        self.volumes = volumes
        self.downloads = downloads
        self.restore_name = restore["metadata"]["name"]
        self.spec = decode(Restore, restore).spec
        self.backup = backup
        self.log = log
        self.write_status = write_status
        self.index = ResourceIndex.discover(kube)
        self.mapping = self.spec.namespace_mapping
        self.policy = self.spec.existing_resource_policy or "none"
        self.resource_list: dict[str, list[str]] = {}
        self.total = self.restored = 0
        self._namespaces_ready: set[str] = set()
        self._restored_volumes: set[str] = set()
        self._last_progress = 0.0

    def run(self, contents: BackupContents) -> None:
        plan = self._plan(contents)
        self.total = len(plan)
        self._progress(force=True)
        for step in plan:
            self._restore(step, contents)
            self.restored += 1
            self._progress()

    # Choosing

    def _plan(self, contents: BackupContents) -> list[Planned]:
        spec = self.spec
        ns_filter = IncludesExcludes.of(spec.included_namespaces, spec.excluded_namespaces)
        res_filter = self._resource_filter(spec.included_resources, spec.excluded_resources)
        include_cluster = spec.include_cluster_resources
        all_namespaces = ns_filter.includes_all and not ns_filter.excludes
        in_backup = {r.namespace for r in contents.refs() if r.namespace}
        for wanted in ns_filter.includes:
            if wanted != "*" and not any(c in wanted for c in "*?[") and wanted not in in_backup:
                self.log.warning(f"namespace {wanted} is included in the restore but not in backup {self.backup}")
        plan = []
        for ref in contents.refs():
            if ref.resource in NON_RESTORABLE or not res_filter.should_include(ref.resource):
                continue
            if ref.resource == DATA_UPLOADS:
                continue  # what they hold is restored through data downloads, not as objects
            obj = contents.get(ref)
            if ref.namespace:
                if not ns_filter.should_include(ref.namespace):
                    continue
                target = self.mapping.get(ref.namespace, ref.namespace)
            elif ref.resource == "namespaces":
                if not ns_filter.should_include(ref.name):
                    continue
                target = self.mapping.get(ref.name, ref.name)
            else:
                if include_cluster is False or not self._cluster_item_wanted(ref, obj, ns_filter, all_namespaces,
                                                                             include_cluster):
                    continue
                target = ""
            labels = (obj.get("metadata") or {}).get("labels") or {}
            if ref.resource != "namespaces" and not labels_match(spec.label_selector, spec.or_label_selectors, labels):
                continue
            plan.append(Planned(ref, obj, target))
        plan.sort(key=lambda p: (priority(p.ref.resource), p.ref.namespace, p.ref.name))
        return plan

    def _resource_filter(self, includes: list[str], excludes: list[str]) -> IncludesExcludes:
        """Filters as the operator wrote them (``deploy``, ``cm``), by qualified resource name."""
        return IncludesExcludes.of([self.index.qualified(n) for n in includes],
                                   [self.index.qualified(n) for n in excludes])

    @staticmethod
    def _cluster_item_wanted(ref: ResourceRef, obj: Obj, ns_filter: IncludesExcludes, all_namespaces: bool,
                             include_cluster: bool | None) -> bool:
        """Unset includeClusterResources restores cluster-scoped items only with every namespace,
        except the volumes of included claims (and definitions, which objects need)."""
        if ref.resource == "persistentvolumes":
            claim_ns = ((obj.get("spec") or {}).get("claimRef") or {}).get("namespace")
            return include_cluster is True or (claim_ns is not None and ns_filter.should_include(claim_ns)) \
                or (claim_ns is None and all_namespaces)
        if ref.resource == "customresourcedefinitions.apiextensions.k8s.io":
            return True
        return include_cluster is True or all_namespaces

    # Creating

    def _restore(self, step: Planned, contents: BackupContents) -> None:
        ref, target = step.ref, step.target_namespace
        if ref.resource == "namespaces":
            self._ensure_namespace(target, step.obj)
            return
        res = self.index.resolve(ref.resource)
        if res is None:
            self.log.error(f"could not restore {ref.resource} {ref.name}: the cluster does not serve "
                           f"{ref.resource}", namespace=target or None, cluster=not target)
            self._listed(step, "failed")
            return
        if target:
            self._ensure_namespace(target, self._backed_up_namespace(ref.namespace, contents))
        keep_volume = True
        if ref.resource == "persistentvolumes" and not self._restore_volume(step):
            self._listed(step, "skipped")
            return
        if ref.resource == "persistentvolumeclaims":
            keep_volume = self._claim_keeps_volume(step)
        desired = transform(ref.resource, step.obj, namespace=target, backup=self.backup,
                            restore=self.restore_name,
                            preserve_node_ports=bool(self.spec.preserve_node_ports),
                            claim_volume_kept=keep_volume)
        desired["apiVersion"] = step.obj.get("apiVersion") or res.api_version
        volumes = self.volumes.prepare(ref.namespace, desired) if ref.resource == "pods" else []
        upload = self.downloads.prepare(ref.namespace, desired) if ref.resource == "persistentvolumeclaims" else None
        created = self._apply(res, desired, step)
        if created is not None and volumes:
            self.volumes.start(created, volumes)
        if created is not None and upload is not None:
            self.downloads.start(created, upload)
        if ref.resource == CRDS.qualified:
            # Its custom resources come later in the order: wait until they are served.
            try:
                wait_established(self.kube, ref.name, timeout=30)
            except KubeError as exc:
                self.log.error(exc.message, cluster=True)
            self.index = ResourceIndex.discover(self.kube)

    def _volume(self, name: str) -> Obj | None:
        res = self.index.resolve("persistentvolumes")
        return None if res is None else self.kube.get_or_none(res, None, name)

    def _claim_keeps_volume(self, step: Planned) -> bool:
        """A claim stays bound to its volume when that volume is restored with it, or exists
        and is free or reserved for this very claim; otherwise it would stay Pending, so it
        loses the binding and the cluster provisions a new volume."""
        volume = (step.obj.get("spec") or {}).get("volumeName")
        if not volume or volume in self._restored_volumes:
            return True
        existing = self._volume(volume)
        if existing is None:
            return False
        claim = (existing.get("spec") or {}).get("claimRef") or {}
        return not claim or (claim.get("namespace"), claim.get("name")) == (step.target_namespace, step.ref.name)

    def _restore_volume(self, step: Planned) -> bool:
        """A volume without a snapshot can only be restored by reusing the original (Retain)."""
        spec = step.obj.get("spec") or {}
        claim = spec.get("claimRef") or {}
        if self.downloads.moved(claim.get("namespace", ""), claim.get("name", "")):
            self.log.info(f"persistent volume {step.ref.name} is not restored: its data was moved by a data "
                          "upload, and its claim gets the volume the data download fills")
            return False
        if self._volume(step.ref.name) is not None:
            self.log.info(f"persistent volume {step.ref.name} already exists in the cluster; not restored")
            return False
        if spec.get("persistentVolumeReclaimPolicy", "Delete") == "Delete":
            self.log.info(f"persistent volume {step.ref.name} has reclaim policy Delete and no snapshot; not "
                          "restored (its claim gets a new volume)")
            return False
        if claim.get("namespace"):
            claim["namespace"] = self.mapping.get(claim["namespace"], claim["namespace"])
        for field in ("uid", "resourceVersion"):
            claim.pop(field, None)
        self._restored_volumes.add(step.ref.name)
        return True

    def _apply(self, res: Resource, desired: Obj, step: Planned) -> Obj | None:
        """Create the object, or reconcile the existing one; the object if it was created."""
        ns = step.target_namespace or None
        cluster = ns is None  # how the operation log files its messages
        name = desired["metadata"]["name"]
        label = f"{step.ref.resource} {ns + '/' if ns else ''}{name}"
        try:
            created = self.kube.create(res, ns, desired)
            self._listed(step, "created")
            self._restore_status(res, step, created)
            return created
        except KubeError as exc:
            if not exc.already_exists:
                self.log.error(f"error restoring {label}: {exc.message}", namespace=ns, cluster=cluster)
                self._listed(step, "failed")
                return None
        existing = self.kube.get(res, ns, name)
        # Compared as backed up: what the restore strips on purpose (a service's node ports)
        # is no difference from the object in the cluster.
        as_backed_up = reset(step.obj)
        if ns:
            as_backed_up["metadata"]["namespace"] = ns
        if not changes(existing, as_backed_up):
            self.log.info(f"{label} already exists in the cluster and is the same as the backed-up version")
            self._listed(step, "skipped")
        elif self.policy == "update":
            try:
                self.kube.patch(res, ns, name, changes(existing, desired))
                self.log.info(f"{label} already existed and was updated to the backed-up version")
                self._listed(step, "updated")
            except KubeError as exc:
                self.log.warning(f"could not update existing {label}: {exc.message}",
                                 namespace=ns, cluster=cluster)
                self._listed(step, "failed")
        else:
            self.log.warning(f"could not restore, {label} already exists. Warning: the in-cluster version is "
                             "different than the backed-up version", namespace=ns, cluster=cluster)
            self._listed(step, "skipped")
        return None

    def _restore_status(self, res: Resource, step: Planned, created: Obj) -> None:
        wanted = self.spec.restore_status or {}
        included = wanted.get("includedResources") or []
        ie = self._resource_filter(included, wanted.get("excludedResources") or [])
        if not included or not ie.should_include(step.ref.resource) or "status" not in step.obj:
            return
        try:
            patch_status(self.kube, res, step.target_namespace, created["metadata"]["name"], step.obj["status"])
        except KubeError as exc:
            self.log.warning(f"could not restore the status of {step.ref.resource} {step.ref.name}: {exc.message}",
                             namespace=step.target_namespace or None)

    def _backed_up_namespace(self, namespace: str, contents: BackupContents) -> Obj | None:
        try:
            return contents.get(ResourceRef("namespaces", "", namespace))
        except RepoError:
            return None

    def _ensure_namespace(self, name: str, backed_up: Obj | None) -> None:
        """Create the target namespace if it is missing, from the backed-up one when there is
        one (keeping its labels and annotations), as Velero's EnsureNamespaceExistsAndIsReady."""
        if name in self._namespaces_ready:
            return
        existing = self.kube.get_or_none(NAMESPACES, None, name)
        if existing is None:
            body = transform("namespaces", backed_up or {"apiVersion": "v1", "kind": "Namespace",
                                                         "metadata": {"name": name}},
                             namespace=name, backup=self.backup, restore=self.restore_name,
                             preserve_node_ports=False)
            labels = body["metadata"].setdefault("labels", {})
            labels.pop("kubernetes.io/metadata.name", None)  # the server sets it to the new name
            try:
                self.kube.create(NAMESPACES, None, body)
                self.log.info(f"created namespace {name}")
            except KubeError as exc:
                if not exc.already_exists:
                    raise
        elif existing["metadata"].get("deletionTimestamp"):
            raise KubeError(409, "Terminating", f"namespace {name} is being deleted; cannot restore into it")
        self._namespaces_ready.add(name)
        self.resource_list.setdefault("v1/Namespace", []).append(f"{name}(created)" if existing is None
                                                                 else f"{name}(skipped)")


    def _listed(self, step: Planned, outcome: str) -> None:
        key = f"{step.obj.get('apiVersion', '')}/{step.obj.get('kind', '')}"
        ns = step.target_namespace
        self.resource_list.setdefault(key, []).append(f"{ns}/{step.ref.name}({outcome})" if ns
                                                      else f"{step.ref.name}({outcome})")

    def _progress(self, force: bool = False) -> None:
        if force or time.monotonic() - self._last_progress >= PROGRESS_EVERY:
            self._last_progress = time.monotonic()
            self.write_status({"progress": {"totalItems": self.total, "itemsRestored": self.restored}})
