"""The mover's container image, really run with podman: its metadata, `mover --version`, the
node agent's and restore helper's entry points, and `mover server` in a container completing a
backup against the Kubernetes API double into SeaweedFS."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from mover import __version__
from mover.kube.framework.client import Kube
from mover.kube.resources import BACKUPS, NAMESPACES
from tests.support.kubeapi.fixtures import KubeApi, kube_api  # noqa: F401 - fixture
from tests.support.podman import Podman, build_image
from tests.support.s3server import S3Server
from tests.support.velero_env import (
    CONFIGMAPS,
    NS,
    credentials_secret,
    install,
    phase,
    s3_location,
    velero_object,
    wait_phase,
)

# the first run on a machine (or after a change to what goes into the image) builds it
pytestmark = [pytest.mark.timeout(1200), pytest.mark.slow]


@pytest.fixture(scope="session")
def image() -> Podman:
    return build_image()


def commands(image: Podman) -> str:
    return image.run("--help").stdout


def test_image_metadata_user_and_contents(image: Podman) -> None:
    assert image.run("--version").stdout.strip() == f"mover {__version__}"
    (meta,) = json.loads(image("image", "inspect", image.image).stdout)
    labels = meta["Config"]["Labels"]
    assert labels["org.opencontainers.image.version"] == __version__
    assert labels["org.opencontainers.image.source"] and len(labels["org.opencontainers.image.revision"]) == 40
    assert meta["Config"]["User"] == "65532:65532" and meta["Config"]["Entrypoint"] == ["mover"]
    probe = image.run("-c", "id -u; for c in gcc cc g++ make pip pip3; do command -v $c; done; "
                            "python3 -c 'import kubernetes.aio' 2>&1 | tail -1",
                      options=("--entrypoint", "sh"), check=False)
    lines = probe.stdout.splitlines()
    assert lines[0] == "65532"  # not root unless a pod says so
    assert lines[1:] == ["ModuleNotFoundError: No module named 'kubernetes.aio'"], probe.stdout  # no compilers, no pip
    # ... and the image's own Python, not the system's, has the Kubernetes client
    assert image.run("-c", "import kubernetes, boto3, mover.kube.server",
                     options=("--entrypoint", "python")).returncode == 0


def test_node_agent_entry_point(image: Podman) -> None:
    if "node-agent" not in commands(image):
        pytest.skip("`mover node-agent` is not in this tree yet (issue 12)")
    usage = image.run("node-agent", "--help").stdout
    assert "--kubelet-root" in usage and "--node-name" in usage
    # what the DaemonSet runs, on a host without the kubelet's directory: one clear line
    missing = image.run("node-agent", "--node-name", "n1", "--kubelet-root", "/var/lib/kubelet",
                        options=("--user", "0"), check=False)
    assert missing.returncode == 1 and "Traceback" not in missing.stderr
    assert "/var/lib/kubelet/pods" in missing.stderr


def test_restore_wait_ends_once_its_marker_appears(image: Podman, tmp_path: Path) -> None:
    if "restore-wait" not in commands(image):
        pytest.skip("`mover restore-wait` is not in this tree yet (issue 12)")
    restores = tmp_path / "restores"
    volumes = [restores / "data", restores / "cache"]
    for volume in volumes:
        volume.mkdir(parents=True)
        volume.chmod(0o777)  # as the kubelet makes an emptyDir
    uid = "4f1e2d3c-restore-uid"
    container = image.start("restore-wait", uid, options=("--volume", f"{restores}:/restores"))
    try:
        for volume in volumes:  # as the node agent writes them, as root, once a volume is restored
            time.sleep(3)
            assert container.state()[0] == "running", container.logs()  # a volume still waits
            (volume / ".velero").mkdir()
            (volume / ".velero" / uid).touch()
        assert container.wait(timeout=30) == 0, container.logs()
    finally:
        container.remove()


def test_server_in_the_container_completes_a_backup(image: Podman, kube_api: KubeApi,  # noqa: F811
                                                    s3_server: S3Server, s3_bucket: str) -> None:
    kube = Kube(kube_api.api_client())
    install(kube)
    s3_location(kube, s3_server, s3_bucket, credential=credentials_secret(kube, s3_server))
    kube.create(NAMESPACES, None, {"metadata": {"name": "shop"}})
    kube.create(CONFIGMAPS, "shop", {"metadata": {"name": "settings"}, "data": {"mode": "prod"}})
    kube_api.kubeconfig_path.chmod(0o644)  # the server runs as its own user
    # As the Deployment runs it: a read-only root, temporary files on a scratch volume.
    container = image.start(
        "server", "--kubeconfig", "/etc/mover/kubeconfig", "--namespace", NS, "--resync-period", "200ms",
        "--store-validation-frequency", "1s",
        options=("--volume", f"{kube_api.kubeconfig_path}:/etc/mover/kubeconfig:ro", "--read-only",
                 "--tmpfs", "/scratch", "--env", "TMPDIR=/scratch"))
    try:
        kube.create(BACKUPS, NS, velero_object("Backup", "shop-1", {"includedNamespaces": ["shop"]}))
        done = wait_phase(kube, BACKUPS, "shop-1", timeout=90)
        assert phase(done) == "Completed", (done.get("status"), container.logs())
        assert done["status"]["progress"]["itemsBackedUp"] == 2  # the namespace and its config map
        listed = s3_server.client().list_objects_v2(Bucket=s3_bucket, Prefix="backups/shop-1/")
        keys = {o["Key"] for o in listed.get("Contents", [])}
        assert {"backups/shop-1/velero-backup.json", "backups/shop-1/shop-1.tar.gz"} <= keys
        assert container.stop(grace=20) == 0  # SIGTERM: the server finishes and exits cleanly
        logs = container.logs()
        assert 'msg="server stopped"' in logs and "Traceback" not in logs, logs
    finally:
        container.remove()
