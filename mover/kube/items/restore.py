"""What a restore does to each backed-up object before creating it (pure functions).

Velero's order (``defaultRestorePriorities``): definitions and namespaces first, then what
other objects need (storage classes, volumes, claims, service accounts, secrets, config maps,
limit ranges), pods before replica sets so controllers adopt restored pods, services last of
the named ones; every other resource after them, alphabetically.

Server-set fields go (uid, resourceVersion, creationTimestamp, managedFields, ownerReferences,
status, a service's cluster IPs...), namespaces are mapped, and each object is labelled with
the backup and restore it came from.
"""

from __future__ import annotations

import copy
from typing import Any

from mover.kube.framework.client import Obj
from mover.velero import labels as velero_labels

PRIORITIES = (
    "customresourcedefinitions.apiextensions.k8s.io",
    "namespaces",
    "storageclasses.storage.k8s.io",
    "volumesnapshotclass.snapshot.storage.k8s.io",
    "volumesnapshotcontents.snapshot.storage.k8s.io",
    "volumesnapshots.snapshot.storage.k8s.io",
    "datauploads.velero.io",
    "persistentvolumes",
    "persistentvolumeclaims",
    "serviceaccounts",
    "secrets",
    "configmaps",
    "limitranges",
    "pods",
    "replicasets.apps",
    "clusterclasses.cluster.x-k8s.io",
    "endpoints",
    "services",
)
LOW_PRIORITIES = (
    "clusterbootstraps.run.tanzu.vmware.com",
    "clusters.cluster.x-k8s.io",
    "clusterresourcesets.addons.cluster.x-k8s.io",
)
# Never restored: they belong to the cluster they were made in (Velero's nonRestorableResources).
NON_RESTORABLE = frozenset({
    "nodes", "events", "events.events.k8s.io", "backups.velero.io", "restores.velero.io",
    "resticrepositories.velero.io", "backuprepositories.velero.io", "csinodes.storage.k8s.io",
    "volumeattachments.storage.k8s.io",
})
_SERVER_METADATA = ("uid", "resourceVersion", "generation", "creationTimestamp", "deletionTimestamp",
                    "deletionGracePeriodSeconds", "selfLink", "generateName", "managedFields", "ownerReferences")
_PVC_BINDING_ANNOTATIONS = ("pv.kubernetes.io/bind-completed", "pv.kubernetes.io/bound-by-controller",
                            "volume.kubernetes.io/selected-node")


def priority(resource: str) -> tuple[int, int, str]:
    """Sort key of a resource (qualified name) in restore order."""
    if resource in PRIORITIES:
        return (0, PRIORITIES.index(resource), "")
    if resource in LOW_PRIORITIES:
        return (2, LOW_PRIORITIES.index(resource), "")
    return (1, 0, resource)


def reset(obj: Obj) -> Obj:
    """A copy without what the source server set: Velero's resetMetadataAndStatus."""
    out = copy.deepcopy(obj)
    meta = out.setdefault("metadata", {})
    for field in _SERVER_METADATA:
        meta.pop(field, None)
    out.pop("status", None)
    return out


def transform(resource: str, obj: Obj, *, namespace: str, backup: str, restore: str,
              preserve_node_ports: bool, claim_volume_kept: bool = True) -> Obj:
    """The object to create: reset, moved to ``namespace`` ("" for cluster-scoped), labelled,
    with kind-specific fixes. ``claim_volume_kept`` says whether a claim's volume will exist."""
    out = reset(obj)
    meta = out["metadata"]
    if namespace:
        meta["namespace"] = namespace
    else:
        meta.pop("namespace", None)
    meta.setdefault("labels", {}).update({velero_labels.BACKUP_NAME: backup, velero_labels.RESTORE_NAME: restore})
    spec = out.get("spec") or {}
    if resource == "services":
        _service(spec, preserve_node_ports)
    elif resource == "persistentvolumeclaims":
        annotations = meta.get("annotations") or {}
        for key in _PVC_BINDING_ANNOTATIONS:
            annotations.pop(key, None)
        if not claim_volume_kept:
            spec.pop("volumeName", None)  # let the cluster provision a new volume
    elif resource == "pods":
        spec.pop("nodeName", None)  # the scheduler picks a node in this cluster
    elif resource == "jobs.batch":
        _job(spec)
    elif resource == "namespaces":
        meta.pop("namespace", None)
        meta["name"] = namespace or meta["name"]
        out.pop("spec", None)  # finalizers are the server's
    return out


def _service(spec: dict[str, Any], preserve_node_ports: bool) -> None:
    if spec.get("clusterIP") != "None":  # a headless service stays headless
        spec.pop("clusterIP", None)
        spec.pop("clusterIPs", None)
    spec.pop("healthCheckNodePort", None)
    if not preserve_node_ports:
        for port in spec.get("ports") or []:
            port.pop("nodePort", None)


def _job(spec: dict[str, Any]) -> None:
    """The job controller labels a job's pods with the job's uid; the new job gets a new one."""
    for labels in ((spec.get("selector") or {}).get("matchLabels"),
                   ((spec.get("template") or {}).get("metadata") or {}).get("labels")):
        for key in ("controller-uid", "batch.kubernetes.io/controller-uid"):
            (labels or {}).pop(key, None)
    if not (spec.get("selector") or {}).get("matchLabels") and not (spec.get("selector") or {}).get(
            "matchExpressions"):
        spec.pop("selector", None)


def changes(current: Any, desired: Any) -> Any:
    """A merge patch (RFC 7386) setting every field of ``desired`` that ``current`` lacks or
    holds differently. Fields only ``current`` has are left alone: they are what the server
    filled in (defaults, a service's cluster IP), not a difference from the backup. An empty
    result means the object already is as backed up."""
    if not isinstance(current, dict) or not isinstance(desired, dict):
        return desired
    patch: dict[str, Any] = {}
    for key, value in desired.items():
        if key not in current:
            if value not in ({}, [], None, ""):  # Go drops empty fields: absent means the same
                patch[key] = value
        elif current[key] != value:
            sub = changes(current[key], value)
            if sub != {}:
                patch[key] = sub
    return patch
