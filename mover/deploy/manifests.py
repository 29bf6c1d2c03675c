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
NODE_AGENT_CONFIG_KEY = "node-agent-config.json"
IMAGE = RESTORE_HELPER_IMAGE  # one image runs the server, the node agent and the restore helper
PULL_POLICIES = ("IfNotPresent", "Always", "Never")


@dataclass
class Resources:
    """A container's CPU and memory requests and limits, as Kubernetes quantities; "" (or
    "0", as velero install takes it) leaves one unset."""

    cpu_request: str = ""
    memory_request: str = ""
    cpu_limit: str = ""
    memory_limit: str = ""

    def manifest(self) -> dict[str, dict[str, str]]:
        out: dict[str, dict[str, str]] = {}
        for group, cpu, memory in (("requests", self.cpu_request, self.memory_request),
                                   ("limits", self.cpu_limit, self.memory_limit)):
            given = {k: v for k, v in (("cpu", cpu), ("memory", memory)) if v not in ("", "0")}
            if given:
                out[group] = given
        return out


@dataclass
class InstallOptions:
    namespace: str = "velero"
    image: str = IMAGE
    image_pull_policy: str = "IfNotPresent"
    provider: str = ""  # "aws" or "local"; empty: no storage location is created
    bucket: str = ""
    prefix: str = ""
    location_config: dict[str, str] = field(default_factory=dict)
    credentials_file_text: str = ""  # Velero's credentials-file format, stored in cloud-credentials
    use_node_agent: bool = False
    use_volume_snapshots: bool = False  # a VolumeSnapshotLocation "default" with the provider
    snapshot_location_config: dict[str, str] = field(default_factory=dict)
    default_snapshot_move_data: bool = False
    server_resources: Resources = field(default_factory=lambda: Resources("100m", "128Mi", "", "512Mi"))
    node_agent_resources: Resources = field(default_factory=lambda: Resources("100m", "256Mi"))
    node_agent_node_selector: dict[str, str] = field(default_factory=dict)
    node_agent_tolerations: list[dict[str, str]] = field(default_factory=list)
    kubelet_root: str = KUBELET_ROOT  # on the nodes
    # The node agent's config map (Velero's format): its name, and the JSON to create it with
    # (empty: it exists already, or there is none).
    node_agent_configmap: str = ""
    node_agent_config: str = ""
    node_agent_args: list[str] = field(default_factory=list)  # extra arguments, as nodeAgent.extraArgs
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
    # A data download hands the volume it restored to the restored claim: the agent rewrites its claimRef.
    agent_volumes = _rule([""], ["persistentvolumes"], ["patch", "update"])
    # A data upload takes the backup's VolumeSnapshot from the claim's namespace into the agent's
    # (Velero's exposer: retain the content, delete both, re-create them there), then deletes them.
    agent_snapshots = _rule(["snapshot.storage.k8s.io"], ["volumesnapshots", "volumesnapshotcontents"],
                            READ + WRITE + ["delete"])
    agent_ns = [_rule(["velero.io"], ["podvolumebackups", "podvolumerestores", "datauploads", "datadownloads",
                                      "backuprepositories"], READ + WRITE),
                _rule(["velero.io"], ["podvolumebackups/status", "podvolumerestores/status",
                                      "datauploads/status", "datadownloads/status"], ["get", "update", "patch"]),
                _rule(["velero.io"], ["backupstoragelocations", "backups", "restores"], READ),
                # The backup/restore pods and claims of data uploads and downloads live in the agent's namespace.
                _rule([""], ["pods", "persistentvolumeclaims"], READ + WRITE + ["delete"]),
                _rule([""], ["secrets"], ["get"]),
                _rule([""], ["configmaps"], READ),
                _rule([""], ["events"], ["create", "patch"])]
    docs = _account(ns, SERVER_ACCOUNT, [server_cluster, escalate], server_ns)
    if o.use_node_agent:
        docs += _account(ns, NODE_AGENT_ACCOUNT, [agent_cluster, agent_volumes, agent_snapshots], agent_ns)
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
        "imagePullPolicy": o.image_pull_policy,
        "command": ["mover", "server"],
        # Restored pods wait for their volumes in an init container running this same image.
        "args": ["--namespace", "$(VELERO_NAMESPACE)", "--restore-helper-image", o.image] + (
            ["--default-snapshot-move-data"] if o.default_snapshot_move_data else []),
        # Temporary files (a tarball being written) go to the scratch volume: the root is read-only.
        "env": _namespace_env() + [{"name": "TMPDIR", "value": "/scratch"}],
        "resources": o.server_resources.manifest(),
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
    pods = f"{o.kubelet_root.rstrip('/')}/pods"
    args = ["--namespace", "$(VELERO_NAMESPACE)", "--node-name", "$(NODE_NAME)", "--kubelet-root",
            o.kubelet_root.rstrip("/")]
    if o.node_agent_configmap:
        args.append(f"--node-agent-configmap={o.node_agent_configmap}")
    pod: dict[str, Any] = {
        "serviceAccountName": NODE_AGENT_ACCOUNT,
        "terminationGracePeriodSeconds": 30,
        # Volume files belong to every user, and SELinux keeps one pod's volumes from another's
        # unless the reader is privileged.
        "securityContext": {"runAsUser": 0},
        "containers": [{
            "name": "node-agent",
            "image": o.image,
            "imagePullPolicy": o.image_pull_policy,
            "command": ["mover", "node-agent"],
            "args": args + list(o.node_agent_args),
            "env": _namespace_env() + [
                {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}],
            "resources": o.node_agent_resources.manifest(),
            "securityContext": {"privileged": True},
            # The kubelet's pod directories where the host has them, so a volume's path (a
            # PodVolumeBackup's status.path) reads the same in both; volumes the kubelet mounts
            # after the agent started (CSI) show up inside it too.
            "volumeMounts": [{"name": "host-pods", "mountPath": pods, "mountPropagation": "HostToContainer"}],
        }],
        "volumes": [{"name": "host-pods", "hostPath": {"path": pods}}],
    }
    if o.node_agent_node_selector:
        pod["nodeSelector"] = dict(o.node_agent_node_selector)
    if o.node_agent_tolerations:
        pod["tolerations"] = [dict(t) for t in o.node_agent_tolerations]
    return {
        "apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": _meta("node-agent", o.namespace),
        "spec": {
            "selector": {"matchLabels": {"name": "node-agent"}},
            "template": {"metadata": {"labels": labels}, "spec": pod},
        },
    }


def node_agent_configmap(o: InstallOptions) -> list[Manifest]:
    if not (o.use_node_agent and o.node_agent_configmap and o.node_agent_config):
        return []
    return [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": _meta(o.node_agent_configmap, o.namespace),
             "data": {NODE_AGENT_CONFIG_KEY: o.node_agent_config}}]


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


def snapshot_location(o: InstallOptions) -> list[Manifest]:
    if not (o.provider and o.use_volume_snapshots):
        return []
    spec: dict[str, Any] = {"provider": o.provider}
    if o.snapshot_location_config:
        spec["config"] = dict(o.snapshot_location_config)
    if o.credentials_file_text:
        spec["credential"] = {"name": CLOUD_CREDENTIALS, "key": CLOUD_CREDENTIALS_KEY}
    return [{"apiVersion": "velero.io/v1", "kind": "VolumeSnapshotLocation",
             "metadata": _meta("default", o.namespace), "spec": spec}]


def render(o: InstallOptions) -> list[Manifest]:
    """All manifests, in the order they must be applied (CRDs before their objects)."""
    docs: list[Manifest] = list(crds.load())
    docs.append({"apiVersion": "v1", "kind": "Namespace", "metadata": _meta(o.namespace)})
    docs += rbac(o)
    docs.append(_secret(REPO_CREDENTIALS, o.namespace, REPO_PASSWORD_KEY, o.repository_password))
    docs += storage_location(o)
    docs += snapshot_location(o)
    docs += node_agent_configmap(o)
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
