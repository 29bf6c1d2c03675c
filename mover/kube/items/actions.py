"""Backup item actions: steps run on each item the backup collects, Velero's BackupItemAction.

An action names the resources it applies to and returns the keys of related items the backup
must also hold, whatever the filters say about them (a PVC's volume, a custom resource's
definition). This is the hook point for volume data: a pod action that starts
PodVolumeBackups for the pod's volumes, and a PVC action that starts DataUploads, plug in here
and report operations for the backup to wait on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from mover.kube.framework.client import Obj, Resource
from mover.kube.oplog import OperationLog
from mover.velero.objects import Backup
from mover.velero.tarball import ResourceRef


@dataclass
class Item:
    resource: Resource
    obj: Obj

    @property
    def key(self) -> ResourceRef:
        """The item's name in the tarball: the same key for the same object, however found."""
        meta = self.obj["metadata"]
        return ResourceRef(self.resource.qualified, meta.get("namespace", ""), meta["name"])


@dataclass
class ActionContext:
    backup: Backup
    log: OperationLog
    # Every object of a resource (by qualified name), listed once per backup and cached.
    list_all: Callable[[str], list[Obj]]


class ItemAction(Protocol):
    def applies_to(self, resource: Resource) -> bool: ...

    def execute(self, item: Item, ctx: ActionContext) -> list[ResourceRef]: ...


class PodAction:
    """A pod needs its persistent volume claims (and, through them, its volumes)."""

    def applies_to(self, resource: Resource) -> bool:
        return resource.qualified == "pods"

    def execute(self, item: Item, ctx: ActionContext) -> list[ResourceRef]:
        namespace = item.obj["metadata"].get("namespace", "")
        return [ResourceRef("persistentvolumeclaims", namespace, v["persistentVolumeClaim"]["claimName"])
                for v in (item.obj.get("spec") or {}).get("volumes") or [] if v.get("persistentVolumeClaim")]


class PersistentVolumeClaimAction:
    """A bound claim needs its volume."""

    def applies_to(self, resource: Resource) -> bool:
        return resource.qualified == "persistentvolumeclaims"

    def execute(self, item: Item, ctx: ActionContext) -> list[ResourceRef]:
        volume = (item.obj.get("spec") or {}).get("volumeName")
        return [ResourceRef("persistentvolumes", "", volume)] if volume else []


class CustomResourceAction:
    """A custom resource is useless to restore without its definition."""

    def applies_to(self, resource: Resource) -> bool:
        return bool(resource.group)

    def execute(self, item: Item, ctx: ActionContext) -> list[ResourceRef]:
        group = item.obj["apiVersion"].split("/")[0]
        kind = item.obj["kind"]
        for crd in ctx.list_all("customresourcedefinitions.apiextensions.k8s.io"):
            spec = crd.get("spec") or {}
            if spec.get("group") == group and (spec.get("names") or {}).get("kind") == kind:
                return [ResourceRef("customresourcedefinitions.apiextensions.k8s.io", "", crd["metadata"]["name"])]
        return []


class ServiceAccountAction:
    """A service account needs the cluster roles bound to it, and the bindings."""

    def applies_to(self, resource: Resource) -> bool:
        return resource.qualified == "serviceaccounts"

    def execute(self, item: Item, ctx: ActionContext) -> list[ResourceRef]:
        meta = item.obj["metadata"]
        keys = []
        for binding in ctx.list_all("clusterrolebindings.rbac.authorization.k8s.io"):
            if any(_is_subject(s, meta) for s in binding.get("subjects") or []):
                keys.append(ResourceRef("clusterrolebindings.rbac.authorization.k8s.io", "", binding["metadata"]["name"]))
                role = binding.get("roleRef") or {}
                if role.get("kind") == "ClusterRole":
                    keys.append(ResourceRef("clusterroles.rbac.authorization.k8s.io", "", role["name"]))
        return keys


def _is_subject(subject: dict[str, Any], meta: dict[str, Any]) -> bool:
    return (subject.get("kind") == "ServiceAccount" and subject.get("name") == meta["name"]
            and subject.get("namespace") == meta.get("namespace"))


def default_actions() -> list[ItemAction]:
    return [PodAction(), PersistentVolumeClaimAction(), CustomResourceAction(), ServiceAccountAction()]
