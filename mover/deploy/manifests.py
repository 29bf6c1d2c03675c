"""Everything `mover install` puts in a cluster, as plain manifests: the CRDs, the namespace,
service accounts and RBAC, the repository password, an optional default storage location,
the server Deployment and (when asked) the node-agent DaemonSet.

Names follow Velero's install (namespace ``velero``, Deployment ``velero``, DaemonSet
``node-agent``, secrets ``velero-repo-credentials`` and ``cloud-credentials``), so tooling
written for Velero finds them.
"""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass, field
from typing import Any

from mover.deploy import crds
from mover.velero.podvolumes import RESTORE_HELPER_IMAGE

Manifest = dict[str, Any]

REPO_CREDENTIALS = "velero-repo-credentials"
REPO_PASSWORD_KEY = "repository-password"
CLOUD_CREDENTIALS = "cloud-credentials"
CLOUD_CREDENTIALS_KEY = "cloud"
SERVER_ACCOUNT = "velero"
NODE_AGENT_ACCOUNT = "velero-node-agent"
KUBELET_ROOT = "/var/lib/kubelet"
KUBELET_PODS = f"{KUBELET_ROOT}/pods"


@dataclass
class InstallOptions:
    namespace: str = "velero"
    image: str = RESTORE_HELPER_IMAGE
    provider: str = ""  # "aws" or "local"; empty: no storage location is created
    bucket: str = ""
    prefix: str = ""
    location_config: dict[str, str] = field(default_factory=dict)
    credentials_file_text: str = ""  # Velero's credentials-file format, stored in cloud-credentials
    use_node_agent: bool = False
    # The repository password: random unless given. Velero would fall back to a static
    # password shared by every installation; a random one per cluster is the point.
    repository_password: str = field(default_factory=lambda: secrets.token_urlsafe(32))


def _meta(name: str, namespace: str | None = None, **labels: str) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    meta["labels"] = {**crds.LABELS, **labels}
    return meta


def _secret(name: str, namespace: str, key: str, value: str) -> Manifest:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": _meta(name, namespace), "type": "Opaque",
            "data": {key: base64.b64encode(value.encode()).decode()}}


def _rule(groups: list[str], resources: list[str], verbs: list[str]) -> dict[str, Any]:
    return {"apiGroups": groups, "resources": resources, "verbs": verbs}


READ = ["get", "list", "watch"]
WRITE = ["create", "update", "patch"]


def rbac(o: InstallOptions) -> list[Manifest]:
    """Least privilege for what each part does.

    The server backs up every kind (read, cluster-wide) and restores every kind (create and
    patch, cluster-wide, plus ``escalate``/``bind`` so restored Roles and bindings may grant
    what the server itself holds); it deletes only its own objects, in its namespace. The node
    agent reads pods and volumes and works on the volume objects in the Velero namespace.
    """
    ns = o.namespace
    server_cluster = _rule(["*"], ["*"], READ + WRITE)
    escalate = _rule(["rbac.authorization.k8s.io"], ["roles", "clusterroles"], ["escalate", "bind"])
    server_ns = [_rule(["velero.io"], ["*"], READ + WRITE + ["delete", "deletecollection"]),
                 _rule([""], ["secrets", "configmaps"], READ + WRITE),
                 _rule([""], ["events"], ["create", "patch"])]
    agent_cluster = _rule(["", "storage.k8s.io"], ["pods", "persistentvolumeclaims", "persistentvolumes",
                                                   "nodes", "storageclasses"], READ)
    agent_ns = [_rule(["velero.io"], ["podvolumebackups", "podvolumerestores", "datauploads", "datadownloads",
                                      "backuprepositories"], READ + WRITE),
                _rule(["velero.io"], ["podvolumebackups/status", "podvolumerestores/status",
                                      "datauploads/status", "datadownloads/status"], ["get", "update", "patch"]),
                _rule(["velero.io"], ["backupstoragelocations", "backups", "restores"], READ),
                _rule([""], ["secrets"], ["get"]),
                _rule([""], ["events"], ["create", "patch"])]
    docs = _account(ns, SERVER_ACCOUNT, [server_cluster, escalate], server_ns)
    if o.use_node_agent:
        docs += _account(ns, NODE_AGENT_ACCOUNT, [agent_cluster], agent_ns)
    return docs


def _account(ns: str, account: str, cluster_rules: list[dict[str, Any]],
             ns_rules: list[dict[str, Any]]) -> list[Manifest]:
    """A service account with its cluster-wide and in-namespace roles and bindings. Cluster
    objects carry the namespace in their name unless it is the default, so two installs coexist."""
    cluster_name = account if ns == "velero" else f"{account}-{ns}"
    subject = [{"kind": "ServiceAccount", "name": account, "namespace": ns}]

    def binding(kind: str, name: str, namespace: str | None) -> Manifest:
        return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": f"{kind}Binding",
                "metadata": _meta(name, namespace), "subjects": subject,
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": name}}

    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(account, ns)},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": _meta(cluster_name),
         "rules": cluster_rules},
        binding("ClusterRole", cluster_name, None),
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": _meta(account, ns),
         "rules": ns_rules},
        binding("Role", account, ns),
    ]


def _namespace_env() -> list[dict[str, Any]]:
    return [{"name": "VELERO_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}}]


def server_deployment(o: InstallOptions) -> Manifest:
    labels = {"component": "velero", "deploy": "velero"}
    container = {
        "name": "velero",
        "image": o.image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["mover", "server"],
        # Restored pods wait for their volumes in an init container running this same image.
        "args": ["--namespace", "$(VELERO_NAMESPACE)", "--restore-helper-image", o.image],
        # Temporary files (a tarball being written) go to the scratch volume: the root is read-only.
        "env": _namespace_env() + [{"name": "TMPDIR", "value": "/scratch"}],
        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}},
        "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                            "capabilities": {"drop": ["ALL"]}},
        "volumeMounts": [{"name": "scratch", "mountPath": "/scratch"}],
    }
    return {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": _meta("velero", o.namespace, deploy="velero"),
        "spec": {
            "replicas": 1,
            # Two servers at once would both pick up the same Backup; never overlap them.
            "strategy": {"type": "Recreate"},
            "selector": {"matchLabels": {"deploy": "velero"}},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "serviceAccountName": SERVER_ACCOUNT,
                    "restartPolicy": "Always",
                    # The server stops taking work on SIGTERM and finishes what it holds.
                    "terminationGracePeriodSeconds": 30,
                    "securityContext": {"runAsNonRoot": True, "runAsUser": 65532, "fsGroup": 65532},
                    "containers": [container],
                    "volumes": [{"name": "scratch", "emptyDir": {}}],
                },
            },
        },
    }


def node_agent_daemonset(o: InstallOptions) -> Manifest:
    labels = {"component": "velero", "name": "node-agent"}
    return {
        "apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": _meta("node-agent", o.namespace),
        "spec": {
            "selector": {"matchLabels": {"name": "node-agent"}},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "serviceAccountName": NODE_AGENT_ACCOUNT,
                    "terminationGracePeriodSeconds": 30,
                    # Volume files belong to every user: reading them needs root, not privilege.
                    "securityContext": {"runAsUser": 0},
                    "containers": [{
                        "name": "node-agent",
                        "image": o.image,
                        "imagePullPolicy": "IfNotPresent",
                        "command": ["mover", "node-agent"],
                        "args": ["--namespace", "$(VELERO_NAMESPACE)", "--node-name", "$(NODE_NAME)",
                                 "--kubelet-root", KUBELET_ROOT],
                        "env": _namespace_env() + [
                            {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}],
                        "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}},
                        "securityContext": {"allowPrivilegeEscalation": False},
                        # The kubelet's pod directories where the host has them, so a
                        # volume's path (PodVolumeBackup status.path) reads the same in both.
                        "volumeMounts": [{"name": "host-pods", "mountPath": KUBELET_PODS,
                                          "mountPropagation": "HostToContainer"}],
                    }],
                    "volumes": [{"name": "host-pods", "hostPath": {"path": KUBELET_PODS}}],
                },
            },
        },
    }


def storage_location(o: InstallOptions) -> list[Manifest]:
    if not o.provider:
        return []
    spec: dict[str, Any] = {"provider": o.provider, "default": True,
                            "objectStorage": {"bucket": o.bucket, **({"prefix": o.prefix} if o.prefix else {})}}
    if o.location_config:
        spec["config"] = dict(o.location_config)
    docs: list[Manifest] = []
    if o.credentials_file_text:
        docs.append(_secret(CLOUD_CREDENTIALS, o.namespace, CLOUD_CREDENTIALS_KEY, o.credentials_file_text))
        spec["credential"] = {"name": CLOUD_CREDENTIALS, "key": CLOUD_CREDENTIALS_KEY}
    docs.append({"apiVersion": "velero.io/v1", "kind": "BackupStorageLocation",
                 "metadata": _meta("default", o.namespace), "spec": spec})
    return docs


def render(o: InstallOptions) -> list[Manifest]:
    """All manifests, in the order they must be applied (CRDs before their objects)."""
    docs: list[Manifest] = list(crds.load())
    docs.append({"apiVersion": "v1", "kind": "Namespace", "metadata": _meta(o.namespace)})
    docs += rbac(o)
    docs.append(_secret(REPO_CREDENTIALS, o.namespace, REPO_PASSWORD_KEY, o.repository_password))
    docs += storage_location(o)
    docs.append(server_deployment(o))
    if o.use_node_agent:
        docs.append(node_agent_daemonset(o))
    return docs


def create_only(doc: Manifest) -> bool:
    """Objects an install must never overwrite: a new repository password would make every
    existing repository unreadable."""
    return doc["kind"] == "Secret" and doc["metadata"]["name"] == REPO_CREDENTIALS


def to_yaml(docs: list[Manifest]) -> str:
    return "".join(crds.render(doc) for doc in docs)
