"""Settings the deploy tests give both `mover install` and the Helm chart: the flags, and the
chart values that mean the same."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "the-old-cluster-password-0123456789abcdef"
CREDENTIALS = "[default]\naws_access_key_id=AKIAEXAMPLE\naws_secret_access_key=secret/key+example\n"
NODE_AGENT_CONFIG = {"backupPVC": {"ceph-block": {"storageClass": "ceph-block-ro", "readOnly": True}}}
# case: (namespace, `mover install` flags ({credentials}, {config}: files), the chart's values)
SETTINGS = {
    "defaults": ("velero", [], {}),
    "everything": (
        "backups",
        ["--namespace", "backups", "--image", "registry.example/mover:1.2.3", "--image-pull-policy", "Always",
         "--provider", "aws", "--bucket", "cluster-a", "--prefix", "prod",
         "--backup-location-config", "region=eu-west-1,s3Url=http://minio:9000,s3ForcePathStyle=true",
         "--secret-file", "{credentials}", "--use-volume-snapshots", "--snapshot-location-config",
         "region=eu-west-1", "--use-node-agent", "--kubelet-root", "/var/lib/k0s/kubelet",
         "--node-agent-node-selector", "kubernetes.io/os=linux",
         "--node-agent-tolerations", "node-role.kubernetes.io/control-plane:NoSchedule,dedicated=backup",
         "--node-agent-configmap", "node-agent-config", "--node-agent-config-file", "{config}",
         "--node-agent-arg=--concurrency=4", "--velero-pod-cpu-request", "250m", "--velero-pod-mem-limit", "1Gi",
         "--velero-pod-cpu-limit", "1", "--node-agent-pod-mem-request", "0", "--node-agent-pod-mem-limit", "2Gi"],
        {"image": {"repository": "registry.example/mover", "tag": "1.2.3", "pullPolicy": "Always"},
         "resources": {"requests": {"cpu": "250m", "memory": "128Mi"}, "limits": {"cpu": "1", "memory": "1Gi"}},
         "configuration": {
             "backupStorageLocation": [{"name": "default", "provider": "aws", "bucket": "cluster-a",
                                        "prefix": "prod", "default": True,
                                        "config": {"region": "eu-west-1", "s3Url": "http://minio:9000",
                                                   "s3ForcePathStyle": True}}],
             "volumeSnapshotLocation": [{"name": "default", "provider": "aws", "config": {"region": "eu-west-1"}}]},
         "credentials": {"secretContents": {"cloud": CREDENTIALS}},
         "deployNodeAgent": True,
         "nodeAgent": {"podVolumePath": "/var/lib/k0s/kubelet/pods",
                       # null removes a default, as --node-agent-pod-mem-request 0 does
                       "resources": {"requests": {"memory": None}, "limits": {"memory": "2Gi"}},
                       "nodeSelector": {"kubernetes.io/os": "linux"},
                       "tolerations": [{"key": "node-role.kubernetes.io/control-plane", "operator": "Exists",
                                        "effect": "NoSchedule"},
                                       {"key": "dedicated", "operator": "Equal", "value": "backup"}],
                       "extraArgs": ["--concurrency=4"], "configMap": "node-agent-config",
                       "config": NODE_AGENT_CONFIG}}),
}


def install_flags(flags: list[str], tmp_path: Path) -> list[str]:
    """``flags`` with the files they name written into ``tmp_path``, and the password."""
    (tmp_path / "credentials").write_text(CREDENTIALS)
    # Go's JSON: compact, keys sorted (the chart writes the config with toJson)
    (tmp_path / "config.json").write_text(json.dumps(NODE_AGENT_CONFIG, separators=(",", ":"), sort_keys=True))
    (tmp_path / "password").write_text(PASSWORD + "\n")
    return [f.format(credentials=tmp_path / "credentials", config=tmp_path / "config.json") for f in flags] + [
        "--repository-password-file", str(tmp_path / "password")]


def mover(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mover.cli", *args], capture_output=True, text=True, timeout=60,
                          cwd=ROOT, check=False)


def mover_install(*args: str) -> list[dict[str, Any]]:
    """What ``mover install --dry-run -o yaml`` prints, parsed."""
    done = mover("install", "--dry-run", "-o", "yaml", *args)
    assert done.returncode == 0, done.stderr
    return [d for d in yaml.safe_load_all(done.stdout) if d]
