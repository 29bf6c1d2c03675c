"""`mover install` applies exactly what `mover install --dry-run -o yaml` prints, and its flags
land where the cluster uses them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mover import __version__
from mover.deploy.apply import apply
from mover.kube.framework.client import Kube
from tests.deploy.settings import NODE_AGENT_CONFIG, SETTINGS, install_flags, mover, mover_install
from tests.support.kubeapi.fixtures import KubeApi, kube_api  # noqa: F401 - fixture



def holds(stored: Any, given: Any) -> bool:
    """``stored`` has everything ``given`` sets (the server may add defaults and its own fields)."""
    if isinstance(given, dict):
        return isinstance(stored, dict) and all(k in stored and holds(stored[k], v) for k, v in given.items())
    return stored == given


@pytest.mark.parametrize("case", sorted(SETTINGS))
def test_install_applies_what_dry_run_prints(case: str, kube_api: KubeApi, tmp_path: Path) -> None:  # noqa: F811
    _, flags, _ = SETTINGS[case]
    flags = install_flags(flags, tmp_path)
    printed = mover_install(*flags)
    kube = Kube(kube_api.api_client())
    apply(kube, printed)  # as `kubectl apply -f` of the printout would
    done = mover("install", "--kubeconfig", str(kube_api.kubeconfig_path), *flags)
    assert done.returncode == 0, done.stderr
    actions = [line.rpartition(": ")[2] for line in done.stdout.splitlines()[:-1]]
    assert len(actions) == len(printed)
    # nothing to change: install wrote what the printout already had (the password is never rewritten)
    assert set(actions) == {"unchanged", "kept"} and actions.count("kept") == 1, done.stdout
    resources = {(r.api_version, r.kind): r for r in kube.discover()}
    for doc in printed:
        meta = doc["metadata"]
        stored = kube.get(resources[(doc["apiVersion"], doc["kind"])], meta.get("namespace"), meta["name"])
        assert holds(stored, doc), (doc["kind"], meta["name"])


def test_flags_reach_the_node_agent_and_the_server(tmp_path: Path) -> None:
    _, flags, _ = SETTINGS["everything"]
    docs = {(d["kind"], d["metadata"]["name"]): d for d in mover_install(*install_flags(flags, tmp_path))}
    pod = docs[("DaemonSet", "node-agent")]["spec"]["template"]["spec"]
    (agent,) = pod["containers"]
    assert agent["image"] == "registry.example/mover:1.2.3" and agent["imagePullPolicy"] == "Always"
    assert agent["command"] == ["mover", "node-agent"]
    assert agent["args"][agent["args"].index("--kubelet-root") + 1] == "/var/lib/k0s/kubelet"
    assert agent["args"][-2:] == ["--node-agent-configmap=node-agent-config", "--concurrency=4"]
    assert agent["volumeMounts"] == [{"name": "host-pods", "mountPath": "/var/lib/k0s/kubelet/pods",
                                      "mountPropagation": "HostToContainer"}]
    assert pod["volumes"] == [{"name": "host-pods", "hostPath": {"path": "/var/lib/k0s/kubelet/pods"}}]
    assert agent["securityContext"] == {"privileged": True} and pod["securityContext"] == {"runAsUser": 0}
    assert agent["resources"] == {"requests": {"cpu": "100m"}, "limits": {"memory": "2Gi"}}
    assert pod["nodeSelector"] == {"kubernetes.io/os": "linux"}
    assert pod["tolerations"] == [
        {"key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoSchedule"},
        {"key": "dedicated", "operator": "Equal", "value": "backup"}]
    config = docs[("ConfigMap", "node-agent-config")]
    assert json.loads(config["data"]["node-agent-config.json"]) == NODE_AGENT_CONFIG
    server = docs[("Deployment", "velero")]["spec"]["template"]["spec"]["containers"][0]
    assert server["resources"] == {"requests": {"cpu": "250m", "memory": "128Mi"},
                                   "limits": {"cpu": "1", "memory": "1Gi"}}
    assert server["image"] == agent["image"] and server["securityContext"]["readOnlyRootFilesystem"] is True
    vsl = docs[("VolumeSnapshotLocation", "default")]["spec"]
    assert vsl == {"provider": "aws", "config": {"region": "eu-west-1"},
                   "credential": {"name": "cloud-credentials", "key": "cloud"}}
    defaults = {(d["kind"], d["metadata"]["name"]): d for d in mover_install()}
    image = defaults[("Deployment", "velero")]["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == f"kbrowse/mover:{__version__}"  # the image scripts/image builds


@pytest.mark.parametrize("flags, message", [
    (["--node-agent-tolerations", "a=b:Sometimes"], "expected key[=value][:effect]"),
    (["--kubelet-root", "var/lib/kubelet"], "give the kubelet's absolute path"),
    (["--node-agent-config-file", "{config}"], "needs --node-agent-configmap"),
    (["--node-agent-configmap", "c", "--node-agent-config-file", "{credentials}"], "is not JSON"),
    (["--image-pull-policy", "Sometimes"], "invalid choice"),
])
def test_bad_install_flags_are_one_clear_line(flags: list[str], message: str, tmp_path: Path) -> None:
    done = mover("install", "--dry-run", *install_flags(flags, tmp_path))
    assert done.returncode in (1, 2) and done.stdout == ""
    assert message in done.stderr.splitlines()[-1] and "Traceback" not in done.stderr, done.stderr


