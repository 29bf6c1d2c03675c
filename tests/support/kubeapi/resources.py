"""What a served resource is, and the built-in resources a fresh cluster serves."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
StoreKey = tuple[str, str]  # (group, plural): one storage for every version of a resource


@dataclass(frozen=True)
class ResourceType:
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    singular: str = ""
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ALL_VERBS
    has_status: bool = False
    # Served from a CustomResourceDefinition: unstructured, so no strategic merge patch,
    # status dropped rather than defaulted, and the body must carry apiVersion and kind.
    custom: bool = False
    # Which naming rule metadata.name follows: "subdomain", "label", "dns1035" or "path".
    name_rule: str = "subdomain"
    field_labels: frozenset[str] = frozenset()
    # Kinds whose registry sets ReturnDeletedObject answer a delete with the object, not a Status.
    returns_deleted_object: bool = False
    # The CRD version's openAPIV3Schema, used to prune unknown fields and apply defaults.
    schema: dict[str, Any] | None = field(default=None, compare=False, hash=False)

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def store_key(self) -> StoreKey:
        return (self.group, self.plural)

    @property
    def singular_name(self) -> str:
        return self.singular or self.kind.lower()

    @property
    def qualified_resource(self) -> str:
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def qualified_kind(self) -> str:
        return f"{self.kind}.{self.group}" if self.group else self.kind

    @property
    def selectable_fields(self) -> frozenset[str]:
        return frozenset({"metadata.name", "metadata.namespace"}) | self.field_labels


_POD_FIELDS = frozenset({
    "spec.nodeName", "spec.restartPolicy", "spec.schedulerName", "spec.serviceAccountName",
    "spec.hostNetwork", "status.phase", "status.podIP", "status.nominatedNodeName",
})
_EVENT_FIELDS = frozenset({
    "involvedObject.kind", "involvedObject.namespace", "involvedObject.name", "involvedObject.uid",
    "involvedObject.apiVersion", "involvedObject.resourceVersion", "involvedObject.fieldPath",
    "reason", "reportingComponent", "type",
})


def _core(plural: str, kind: str, namespaced: bool = True, **kw: Any) -> ResourceType:
    return ResourceType("", "v1", plural, kind, namespaced, **kw)


BUILTINS: tuple[ResourceType, ...] = (
    _core("namespaces", "Namespace", False, short_names=("ns",), has_status=True, name_rule="label",
          verbs=tuple(v for v in ALL_VERBS if v != "deletecollection"),
          field_labels=frozenset({"status.phase"}), returns_deleted_object=True),
    _core("pods", "Pod", short_names=("po",), categories=("all",), has_status=True,
          field_labels=_POD_FIELDS, returns_deleted_object=True),
    _core("services", "Service", short_names=("svc",), categories=("all",), has_status=True,
          name_rule="dns1035", returns_deleted_object=True),
    _core("configmaps", "ConfigMap", short_names=("cm",)),
    _core("secrets", "Secret", field_labels=frozenset({"type"})),
    _core("serviceaccounts", "ServiceAccount", short_names=("sa",), returns_deleted_object=True),
    _core("persistentvolumeclaims", "PersistentVolumeClaim", short_names=("pvc",), has_status=True),
    _core("persistentvolumes", "PersistentVolume", False, short_names=("pv",), has_status=True),
    _core("nodes", "Node", False, short_names=("no",), has_status=True,
          field_labels=frozenset({"spec.unschedulable"})),
    _core("events", "Event", short_names=("ev",), field_labels=_EVENT_FIELDS),
    ResourceType("apps", "v1", "deployments", "Deployment", True, short_names=("deploy",),
                 categories=("all",), has_status=True),
    ResourceType("apps", "v1", "statefulsets", "StatefulSet", True, short_names=("sts",),
                 categories=("all",), has_status=True),
    ResourceType("apps", "v1", "daemonsets", "DaemonSet", True, short_names=("ds",),
                 categories=("all",), has_status=True),
    ResourceType("apps", "v1", "replicasets", "ReplicaSet", True, short_names=("rs",),
                 categories=("all",), has_status=True, field_labels=frozenset({"status.replicas"})),
    ResourceType("batch", "v1", "jobs", "Job", True, categories=("all",), has_status=True,
                 field_labels=frozenset({"status.successful"})),
    ResourceType("storage.k8s.io", "v1", "storageclasses", "StorageClass", False, short_names=("sc",),
                 returns_deleted_object=True),
    ResourceType("rbac.authorization.k8s.io", "v1", "roles", "Role", True, name_rule="path"),
    ResourceType("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding", True, name_rule="path"),
    ResourceType("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", False, name_rule="path"),
    ResourceType("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", False,
                 name_rule="path"),
    ResourceType("apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition", False,
                 short_names=("crd", "crds"), has_status=True),
    ResourceType("coordination.k8s.io", "v1", "leases", "Lease", True),
)

NAMESPACES: StoreKey = ("", "namespaces")
CRDS: StoreKey = ("apiextensions.k8s.io", "customresourcedefinitions")

_KUBE_VERSION = re.compile(r"^v(\d+)(?:(alpha|beta)(\d+))?$")


def version_priority(version: str) -> tuple[int, int, int, str]:
    """Sort key putting versions in the server's preference order: v2, v1, v1beta2, v1beta1, v1alpha1, other."""
    match = _KUBE_VERSION.match(version)
    if not match:
        return (3, 0, 0, version)
    stage = {None: 0, "beta": 1, "alpha": 2}[match.group(2)]
    return (stage, -int(match.group(1)), -int(match.group(3) or 0), version)
