"""`mover install` and what it installs: the velero.io CRDs (structural, Velero's names and
types), RBAC, the server Deployment, the node agent and the repository password."""

from __future__ import annotations

import base64
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from mover.deploy import crds, manifests
from mover.deploy.crdtypes import ALL_KINDS
from mover.kube.framework.client import Kube, Resource
from mover.kube.resources import BSLS, NAMESPACES, SECRETS
from tests.support.kubeapi.fixtures import KubeApi, kube_api  # noqa: F401 - fixture

EXPECTED = {
    ("Backup", "v1"), ("Restore", "v1"), ("Schedule", "v1"), ("BackupStorageLocation", "v1"),
    ("VolumeSnapshotLocation", "v1"), ("PodVolumeBackup", "v1"), ("PodVolumeRestore", "v1"),
    ("BackupRepository", "v1"), ("DeleteBackupRequest", "v1"), ("DownloadRequest", "v1"),
    ("DataUpload", "v2alpha1"), ("DataDownload", "v2alpha1"),
}
# The only place Velero's schemas keep unknown fields: a restore hook's init containers (RawExtension).
PRESERVE_UNKNOWN = {"Restore": {".spec.hooks.resources[].postHooks[].init.initContainers[]"},
                    "Schedule": set(), "Backup": set()}

# One valid object of each kind, with Velero's field names.
SAMPLES: dict[str, dict[str, Any]] = {
    "Backup": {"includedNamespaces": ["app"], "labelSelector": {"matchLabels": {"a": "b"}}, "ttl": "24h0m0s",
               "snapshotMoveData": True, "defaultVolumesToFsBackup": False,
               "uploaderConfig": {"parallelFilesUpload": 4},
               "hooks": {"resources": [{"name": "freeze", "pre": [{"exec": {"command": ["fsfreeze"],
                                                                             "onError": "Fail"}}]}]}},
    "Restore": {"backupName": "b", "namespaceMapping": {"app": "app2"}, "existingResourcePolicy": "update",
                "hooks": {"resources": [{"name": "init", "postHooks": [{"init": {"initContainers": [
                    {"name": "restore-wait", "image": "busybox", "command": ["true"]}]}}]}]}},
    "Schedule": {"schedule": "0 * * * *", "template": {"includedNamespaces": ["app"]}, "skipImmediately": True},
    "BackupStorageLocation": {"provider": "aws", "objectStorage": {"bucket": "b", "prefix": "p"}, "default": True,
                              "config": {"region": "us-east-1"}, "credential": {"name": "c", "key": "cloud"},
                              "accessMode": "ReadWrite"},
    "VolumeSnapshotLocation": {"provider": "aws", "config": {"region": "us-east-1"}},
    "PodVolumeBackup": {"node": "n1", "pod": {"kind": "Pod", "namespace": "app", "name": "web"}, "volume": "data",
                        "backupStorageLocation": "default", "repoIdentifier": "s3:x/restic/app",
                        "uploaderType": "restic", "tags": {"backup": "b"}},
    "PodVolumeRestore": {"pod": {"kind": "Pod", "namespace": "app", "name": "web"}, "volume": "data",
                         "backupStorageLocation": "default", "repoIdentifier": "r", "snapshotID": "abc",
                         "sourceNamespace": "app", "uploaderType": "restic"},
    "BackupRepository": {"volumeNamespace": "app", "backupStorageLocation": "default", "repositoryType": "restic",
                         "resticIdentifier": "s3:x/restic/app", "maintenanceFrequency": "168h0m0s"},
    "DeleteBackupRequest": {"backupName": "b"},
    "DownloadRequest": {"target": {"kind": "BackupLog", "name": "b"}},
    "DataUpload": {"snapshotType": "CSI", "csiSnapshot": {"volumeSnapshot": "vs", "storageClass": "sc"},
                   "sourcePVC": "data", "sourceNamespace": "app", "backupStorageLocation": "default",
                   "operationTimeout": "10m0s"},
    "DataDownload": {"targetVolume": {"pvc": "data", "pv": "", "namespace": "app"}, "backupStorageLocation": "default",
                     "snapshotID": "abc", "sourceNamespace": "app", "operationTimeout": "10m0s"},
}
STATUSES: dict[str, dict[str, Any]] = {
    "Backup": {"phase": "InProgress", "progress": {"totalItems": 9, "itemsBackedUp": 3}},
    "PodVolumeBackup": {"phase": "InProgress", "progress": {"totalBytes": 100, "bytesDone": 40}, "snapshotID": ""},
    "DataUpload": {"phase": "Completed", "snapshotID": "k1", "progress": {"totalBytes": 5, "bytesDone": 5}},
}


def walk(schema: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, Any]]]:
    nodes = [(path, schema)]
    for name, sub in (schema.get("properties") or {}).items():
        nodes += walk(sub, f"{path}.{name}")
    if isinstance(schema.get("items"), dict):
        nodes += walk(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        nodes += walk(schema["additionalProperties"], f"{path}{{}}")
    return nodes


def test_crd_files_are_generated_from_the_types() -> None:
    """The YAML in mover/deploy/crds/ is what crds.py makes (run `python -m mover.deploy.crds`)."""
    generated = crds.generate()
    assert sorted(p.name for p in crds.CRD_DIR.glob("*.yaml")) == sorted(generated)
    for name, text in generated.items():
        assert (crds.CRD_DIR / name).read_text() == text, f"{name} is stale: run python -m mover.deploy.crds"


def test_crds_are_structural_and_shaped_like_velero_s() -> None:
    docs = crds.load()
    assert {(d["spec"]["names"]["kind"], v["name"]) for d in docs for v in d["spec"]["versions"]} == EXPECTED
    for doc in docs:
        spec, names = doc["spec"], doc["spec"]["names"]
        assert doc["apiVersion"] == "apiextensions.k8s.io/v1" and doc["kind"] == "CustomResourceDefinition"
        assert doc["metadata"]["name"] == f"{names['plural']}.velero.io" and spec["group"] == "velero.io"
        assert spec["scope"] == "Namespaced" and names["listKind"] == names["kind"] + "List"
        assert names["singular"] == names["kind"].lower()
        (version,) = spec["versions"]
        assert version["served"] and version["storage"] and version["subresources"] == {"status": {}}
        root = version["schema"]["openAPIV3Schema"]
        assert root["properties"]["metadata"] == {"type": "object"}
        assert set(root["properties"]) == {"apiVersion", "kind", "metadata", "spec", "status"}
        for path, node in walk(root):
            assert node.get("type") or node.get("x-kubernetes-preserve-unknown-fields"), (names["kind"], path)
            assert node.get("type") in ("object", "array", "string", "integer", "boolean", "number"), path
            assert not ("properties" in node and "additionalProperties" in node), path
            if node.get("type") == "array":
                assert isinstance(node.get("items"), dict), path
            for key in node.get("required") or []:
                assert key in node["properties"], (path, key)
            if "enum" in node:
                assert node["type"] == "string" and all(isinstance(v, str) for v in node["enum"])
            if node.get("x-kubernetes-preserve-unknown-fields"):
                assert path in PRESERVE_UNKNOWN.get(names["kind"], set()), (names["kind"], path)
            if path and node.get("type") == "object" and "properties" not in node and \
                    "additionalProperties" not in node:
                assert node.get("x-kubernetes-preserve-unknown-fields") or path.endswith(".metadata"), path
        for column in version.get("additionalPrinterColumns", []):
            assert column["jsonPath"].startswith(".") and column["type"] in ("string", "date", "integer", "boolean")


def test_crds_use_velero_field_names_and_types() -> None:
    by_kind = {d["spec"]["names"]["kind"]: d for d in crds.load()}

    def field(kind: str, path: str) -> dict[str, Any]:
        return dict(walk(by_kind[kind]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]))[path]

    assert field("Backup", ".spec.includedNamespaces")["nullable"] is True
    assert field("Backup", ".spec.ttl")["type"] == "string"
    assert field("Backup", ".spec.orLabelSelectors[].matchLabels{}")["type"] == "string"
    assert field("Backup", ".status.progress.itemsBackedUp")["type"] == "integer"
    assert field("Backup", ".status.expiration")["format"] == "date-time"
    assert "WaitingForPluginOperations" in field("Backup", ".status.phase")["enum"]
    assert field("Schedule", ".spec.template.snapshotMoveData")["type"] == "boolean"
    assert field("Restore", ".spec.namespaceMapping{}")["type"] == "string"
    assert field("PodVolumeBackup", ".status.snapshotID")["type"] == "string"
    assert field("DataUpload", ".status.progress.bytesDone")["format"] == "int64"
    assert field("DataUpload", ".status.dataMoverResult")["nullable"] is True
    assert field("BackupRepository", ".spec.repositoryType")["enum"] == ["kopia", "restic", ""]
    assert field("DownloadRequest", ".spec.target.kind")["enum"][:2] == ["BackupLog", "BackupContents"]
    columns = {d["spec"]["names"]["kind"]: [c["name"] for c in d["spec"]["versions"][0].get(
        "additionalPrinterColumns", [])] for d in by_kind.values()}
    assert columns["BackupStorageLocation"] == ["Phase", "Last Validated", "Age", "Default"]
    assert columns["Schedule"] == ["Status", "Schedule", "LastBackup", "Age", "Paused"]
    assert columns["DataUpload"] == ["Status", "Started", "Bytes Done", "Total Bytes", "Incremental Bytes",
                                     "Storage Location", "Age", "Node"]
    assert columns["DataDownload"] == ["Status", "Started", "Bytes Done", "Total Bytes", "Storage Location", "Age",
                                       "Node"]
    assert columns["PodVolumeBackup"][-1] == "Uploader"
    assert by_kind["BackupStorageLocation"]["spec"]["names"]["shortNames"] == ["bsl"]


def test_every_kind_is_served_and_takes_a_valid_object(kube_api: KubeApi) -> None:  # noqa: F811
    api_client = kube_api.api_client()
    extensions = client.ApiextensionsV1Api(api_client)
    for doc in crds.load():
        extensions.create_custom_resource_definition(doc)
    client.CoreV1Api(api_client).create_namespace({"metadata": {"name": "velero"}})
    custom = client.CustomObjectsApi(api_client)
    for kind in ALL_KINDS:
        body = {"apiVersion": f"velero.io/{kind.version}", "kind": kind.kind,
                "metadata": {"name": "sample"}, "spec": SAMPLES[kind.kind]}
        created = custom.create_namespaced_custom_object("velero.io", kind.version, "velero", kind.plural, body)
        assert created["spec"] == SAMPLES[kind.kind], kind.kind  # nothing pruned: every field is in the schema
        if kind.kind in STATUSES:
            custom.patch_namespaced_custom_object_status("velero.io", kind.version, "velero", kind.plural, "sample",
                                                         {"status": STATUSES[kind.kind]})
            got = custom.get_namespaced_custom_object("velero.io", kind.version, "velero", kind.plural, "sample")
            assert got["status"] == STATUSES[kind.kind]
    bad = {"apiVersion": "velero.io/v1", "kind": "Backup", "metadata": {"name": "bad"},
           "spec": {"includedNamespaces": "app"}}
    with pytest.raises(client.ApiException) as err:
        custom.create_namespaced_custom_object("velero.io", "v1", "velero", "backups", bad)
    assert err.value.status == 422


def run_mover(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mover.cli", *args], capture_output=True, text=True, timeout=60,
                          cwd=Path(__file__).parent.parent, check=False)


def test_install_dry_run_prints_everything() -> None:
    first, second = run_mover("install", "--dry-run", "-o", "yaml"), run_mover("install", "--dry-run")
    assert first.returncode == 0, first.stderr
    docs = list(yaml.safe_load_all(first.stdout))
    kinds = [d["kind"] for d in docs]
    assert kinds.count("CustomResourceDefinition") == 12
    assert kinds[12:] == ["Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding",
                          "Secret", "Deployment"]
    assert all(d["metadata"]["labels"]["component"] == "velero" for d in docs)

    def password(docs: list[dict[str, Any]]) -> str:
        (secret,) = [d for d in docs if d["kind"] == "Secret"]
        assert secret["metadata"]["name"] == "velero-repo-credentials"
        return base64.b64decode(secret["data"]["repository-password"]).decode()

    mine, other = password(docs), password(list(yaml.safe_load_all(second.stdout)))
    assert mine != other and len(mine) >= 32 and mine != "static-passw0rd"  # random per install
    deployment = docs[-1]
    pod = deployment["spec"]["template"]["spec"]
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    assert pod["containers"][0]["command"] == ["mover", "server"] and pod["serviceAccountName"] == "velero"
    assert pod["containers"][0]["args"][-2:] == ["--restore-helper-image", pod["containers"][0]["image"]]

    as_json = run_mover("install", "-o", "json", "--use-node-agent", "--provider", "local", "--bucket", "/backups")
    listed = yaml.safe_load(as_json.stdout)
    kinds = [d["kind"] for d in listed["items"]]
    assert listed["kind"] == "List" and kinds[-1] == "DaemonSet" and "BackupStorageLocation" in kinds
    daemonset = listed["items"][-1]["spec"]["template"]["spec"]
    assert daemonset["volumes"] == [{"name": "host-pods", "hostPath": {"path": "/var/lib/kubelet/pods"}}]
    agent = daemonset["containers"][0]
    assert agent["args"][2:] == ["--node-name", "$(NODE_NAME)", "--kubelet-root", "/var/lib/kubelet"]
    assert agent["volumeMounts"][0]["mountPath"] == "/var/lib/kubelet/pods"


def test_rbac_is_least_privilege() -> None:
    docs = manifests.rbac(manifests.InstallOptions(use_node_agent=True))
    cluster_rules = [r for d in docs if d["kind"] == "ClusterRole" for r in d["rules"]]
    # deletes only in-namespace, but for the snapshots a data upload moves and removes
    assert all(r["apiGroups"] == ["snapshot.storage.k8s.io"] for r in cluster_rules if "delete" in r["verbs"])
    assert not any("*" in r["verbs"] for r in cluster_rules)
    agent = next(d for d in docs if d["kind"] == "ClusterRole" and d["metadata"]["name"] == "velero-node-agent")
    # Read-only across the cluster, but for handing a restored volume to its claim (a data download)
    # and moving a backup's snapshot (a data upload).
    writes = [r for r in agent["rules"] if not set(r["verbs"]) <= {"get", "list", "watch"}]
    assert writes == [{"apiGroups": [""], "resources": ["persistentvolumes"], "verbs": ["patch", "update"]},
                      {"apiGroups": ["snapshot.storage.k8s.io"], "resources": ["volumesnapshots", "volumesnapshotcontents"],
                       "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"]}]
    server_role = next(d for d in docs if d["kind"] == "Role" and d["metadata"]["name"] == "velero")
    assert all(r["apiGroups"] in (["velero.io"], [""]) for r in server_role["rules"])


def test_install_applies_and_keeps_the_password(kube_api: KubeApi, tmp_path: Path) -> None:  # noqa: F811
    secret_file = tmp_path / "credentials"
    secret_file.write_text("[default]\naws_access_key_id=a\naws_secret_access_key=b\n")
    args = ["install", "--kubeconfig", str(kube_api.kubeconfig_path), "--provider", "aws", "--bucket", "backups",
            "--backup-location-config", "region=eu-west-1,s3Url=http://minio:9000,s3ForcePathStyle=true",
            "--secret-file", str(secret_file)]
    first = run_mover(*args)
    assert first.returncode == 0, first.stderr
    assert "CustomResourceDefinition/backups.velero.io: created" in first.stdout
    kube = Kube(kube_api.api_client())

    def password() -> str:
        secret = kube.get(SECRETS, "velero", "velero-repo-credentials")
        return base64.b64decode(secret["data"]["repository-password"]).decode()

    before = password()
    again = run_mover(*args, "--image", "kbrowse/mover:next")
    assert again.returncode == 0, again.stderr
    assert "Secret/velero-repo-credentials: kept" in again.stdout
    assert password() == before  # a new password would lock every existing repository
    assert kube.get(NAMESPACES, None, "velero")
    bsl = kube.get(BSLS, "velero", "default")
    assert bsl["spec"]["config"] == {"region": "eu-west-1", "s3Url": "http://minio:9000", "s3ForcePathStyle": "true"}
    assert bsl["spec"]["credential"] == {"name": "cloud-credentials", "key": "cloud"}
    deployment = kube.get(Resource("apps", "v1", "deployments", True, "Deployment"), "velero", "velero")
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == "kbrowse/mover:next"
    broken = run_mover("install", "--kubeconfig", str(tmp_path / "missing"))
    assert broken.returncode == 1 and "Traceback" not in broken.stderr
