"""The Helm chart (deploy/helm/kbrowse-mover) renders what `mover install --dry-run -o yaml`
prints for the same settings, with the same CRDs; `helm template` does the rendering."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from mover import __version__
from mover.deploy import crds
from tests.deploy.settings import PASSWORD, ROOT, SETTINGS, install_flags, mover, mover_install

CHART = ROOT / "deploy" / "helm" / "kbrowse-mover"
# A Helm-only annotation: it keeps the password secret when the release is uninstalled.
HELM_ONLY = {("Secret", "velero-repo-credentials"): {"helm.sh/resource-policy": "keep"}}


def helm_binary() -> str:
    """helm from PATH, else where scripts/helm builds it."""
    found = shutil.which("helm") or shutil.which("helm", path=str(ROOT / ".venv" / "bin"))
    if found is None:
        pytest.skip("helm is not installed: scripts/helm builds it (scripts/install --test runs it where Go is)")
    return found


def helm_template(namespace: str, values: dict[str, Any], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    values_file = tmp_path / "values.yaml"
    values_file.write_text(yaml.safe_dump(values))
    return subprocess.run([helm_binary(), "template", "mover", str(CHART), "--namespace", namespace,
                           "--include-crds", "--values", str(values_file)],
                          capture_output=True, text=True, timeout=60, check=False)


def by_name(docs: list[dict[str, Any]]) -> dict[tuple[str, str, str], dict[str, Any]]:
    out = {}
    for doc in docs:
        meta = doc["metadata"]
        key = (doc["kind"], meta.get("namespace", ""), meta["name"])
        assert key not in out, key
        out[key] = doc
    return out


def test_chart_crds_are_the_install_crds() -> None:
    """The chart's crds/ are copies of mover/deploy/crds/ (`python -m mover.deploy.crds` writes both)."""
    assert crds.CHART_CRD_DIR == CHART / "crds"
    shipped = {p.name: p.read_bytes() for p in crds.CRD_DIR.glob("*.yaml")}
    in_chart = {p.name: p.read_bytes() for p in crds.CHART_CRD_DIR.glob("*.yaml")}
    assert in_chart == shipped


def test_chart_version_is_the_mover_s() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["version"] == chart["appVersion"] == __version__
    assert yaml.safe_load((CHART / "values.yaml").read_text())["image"]["repository"] == "kbrowse/mover"


def test_chart_passes_helm_lint() -> None:
    done = subprocess.run([helm_binary(), "lint", "--strict", str(CHART)], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("case", sorted(SETTINGS))
def test_helm_template_renders_what_mover_install_prints(case: str, tmp_path: Path) -> None:
    namespace, flags, values = SETTINGS[case]
    installed = by_name(mover_install(*install_flags(flags, tmp_path)))
    rendered = helm_template(namespace, {**values, "repositoryPassword": PASSWORD}, tmp_path)
    assert rendered.returncode == 0, rendered.stderr
    charted = by_name([d for d in yaml.safe_load_all(rendered.stdout) if d])
    # Helm installs into its release's namespace (helm install --create-namespace) and does not own it.
    del installed[("Namespace", "", namespace)]
    for (kind, _, name), doc in charted.items():
        extra = HELM_ONLY.get((kind, name), {})
        annotations = doc["metadata"].pop("annotations", {})
        assert annotations == extra, (kind, name)
    assert sorted(charted) == sorted(installed)
    for key, doc in installed.items():
        assert charted[key] == doc, key


def test_both_pass_default_snapshot_move_data_to_the_server(tmp_path: Path) -> None:
    done = mover("install", "--dry-run", "-o", "yaml", "--default-snapshot-move-data")
    assert done.returncode == 0, done.stderr
    assert "--default-snapshot-move-data" in done.stdout
    rendered = helm_template("velero", {"configuration": {"defaultSnapshotMoveData": True}}, tmp_path)
    assert rendered.returncode == 0, rendered.stderr
    assert "--default-snapshot-move-data" in rendered.stdout


def test_chart_wants_the_kubelet_s_pods_directory(tmp_path: Path) -> None:
    rendered = helm_template("velero", {"deployNodeAgent": True, "nodeAgent": {"podVolumePath": "/var/lib/kubelet"}},
                             tmp_path)
    assert rendered.returncode != 0 and "give the kubelet's pods directory" in rendered.stderr
