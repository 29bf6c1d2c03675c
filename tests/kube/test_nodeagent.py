"""File-system backup and restore of pod volumes: `mover server` with `mover node-agent`, on the
Kubernetes API double and SeaweedFS. The tests play the kubelet and the scheduler: they put
pods on the node, report their phases and init containers, and keep a kubelet directory tree
(``<root>/pods/<uid>/volumes/<plugin>/<dir>``) in a temporary folder."""

from __future__ import annotations

import base64
import gzip
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from mover.kube.framework.client import Kube, Obj
from mover.kube.framework.status import patch_status
from mover.kube.nodeagent import NodeAgent, NodeAgentOptions
from mover.kube.resources import (
    BACKUP_REPOSITORIES,
    BACKUPS,
    BSLS,
    DELETE_BACKUP_REQUESTS,
    NAMESPACES,
    POD_VOLUME_BACKUPS,
    POD_VOLUME_RESTORES,
    PODS,
    RESTORES,
    SECRETS,
)
from mover.kube.storage import SecretFiles, open_location
from mover.velero.bsl import BucketView
from mover.velero.repopassword import DEFAULT_PASSWORD
from mover.velero.requests import delete_backup_request as new_request
from tests.support.kubeapi.fixtures import KubeApi, kube_api  # noqa: F401 - fixture
from tests.support.restic_cli import Restic
from tests.support.s3server import S3Server
from tests.support.treekit import assert_same_tree, make_full_tree
from tests.support.velero_env import (
    NS,
    PVCS,
    PVS,
    Watch,
    phase,
    running_server,
    velero_object,
    wait_for,
    wait_phase,
)

pytestmark = pytest.mark.slow  # ~2.5 min: started first (tests/conftest.py)

NODE = "node-a"
ROOT = Path(__file__).resolve().parents[2]


# -- the kubelet, played by the test ---------------------------------------------------------------

class Kubelet:
    """Schedules pods on NODE, makes their volume directories, reports their status."""

    def __init__(self, kube: Kube, root: Path) -> None:
        self.kube = kube
        self.root = root
        (root / "pods").mkdir(parents=True)

    def volume_dir(self, pod: Obj, volume: str) -> Path:
        ns, spec = pod["metadata"]["namespace"], pod["spec"]
        source = next(v for v in spec["volumes"] if v["name"] == volume)
        base = self.root / "pods" / pod["metadata"]["uid"] / "volumes"
        if "persistentVolumeClaim" in source:
            pv = self.kube.get(PVCS, ns, source["persistentVolumeClaim"]["claimName"])["spec"]["volumeName"]
            return base / "kubernetes.io~csi" / pv / "mount"
        return base / "kubernetes.io~empty-dir" / volume

    def start(self, pod: Obj, init_running: bool = False) -> Obj:
        """Put the pod on the node, set its volumes up, report it Running (or its
        restore-wait init container running)."""
        ns, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
        pod = self.kube.patch(PODS, ns, name, {"spec": {"nodeName": NODE}})
        for volume in pod["spec"]["volumes"]:
            if "persistentVolumeClaim" in volume or "emptyDir" in volume:
                self.volume_dir(pod, volume["name"]).mkdir(parents=True, exist_ok=True)
        if init_running:
            status = {"phase": "Pending", "initContainerStatuses": [
                {"name": "restore-wait", "ready": False, "state": {"running": {"startedAt": "2026-12-03T12:00:00Z"}}}]}
        else:
            status = {"phase": "Running"}
        patch_status(self.kube, PODS, ns, name, status)
        return self.kube.get(PODS, ns, name)


def claim(kube: Kube, ns: str, name: str, pv: str) -> None:
    """A claim bound to a CSI volume, as a provisioner leaves them."""
    kube.create(PVS, None, {"metadata": {"name": pv}, "spec": {
        "capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteMany"], "persistentVolumeReclaimPolicy": "Delete",
        "csi": {"driver": "csi.example.com", "volumeHandle": pv}, "claimRef": {"namespace": ns, "name": name}}})
    kube.create(PVCS, ns, {"metadata": {"name": name}, "spec": {
        "accessModes": ["ReadWriteMany"], "volumeName": pv, "resources": {"requests": {"storage": "1Gi"}}}})


def pod_body(name: str, volumes: list[dict[str, Any]], annotations: dict[str, str] | None = None) -> Obj:
    return {"metadata": {"name": name, "labels": {"app": "web"}, "annotations": annotations or {}}, "spec": {
        "containers": [{"name": "app", "image": "busybox",
                        "volumeMounts": [{"name": v["name"], "mountPath": f"/mnt/{v['name']}"} for v in volumes]}],
        "volumes": volumes}}


DATA = {"name": "data", "persistentVolumeClaim": {"claimName": "data"}}
CACHE = {"name": "cache", "emptyDir": {}}
SCRATCH = {"name": "scratch", "emptyDir": {}}
CONFIG = {"name": "config", "configMap": {"name": "settings"}}
TOKEN = {"name": "kube-api-access-x1", "projected": {"sources": []}}
HOST = {"name": "host", "hostPath": {"path": "/etc"}}


@pytest.fixture
def kubelet(kube: Kube, tmp_path: Path) -> Kubelet:
    return Kubelet(kube, tmp_path / "kubelet")


@contextmanager
def node_agent(kube: Kube, kubelet: Kubelet, concurrency: int = 2) -> Iterator[NodeAgent]:
    agent = NodeAgent(kube, NodeAgentOptions(node_name=NODE, kubelet_root=str(kubelet.root), namespace=NS,
                                             concurrency=concurrency, resync=0.5, watch_seconds=5)).start()
    try:
        yield agent
    finally:
        agent.stop(grace=10)


def bucket_store(kube: Kube) -> BucketView:
    files = SecretFiles()
    try:
        return BucketView(open_location(kube, kube.get(BSLS, NS, "default"), files))
    finally:
        files.close()  # the S3 client read the credentials when it was made


def kbrowse_out(kube_api: KubeApi, *args: str) -> str:  # noqa: F811
    """`kbrowse ARGS...` on the cluster; its standard output, after a zero exit."""
    proc = subprocess.run([sys.executable, "-m", "kbrowse.cli", *args, "--kubeconfig", str(kube_api.kubeconfig_path)],
                          capture_output=True, text=True, check=False, cwd=ROOT)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    return proc.stdout


def repo_password(kube: Kube) -> str:
    secret = kube.get(SECRETS, NS, "velero-repo-credentials")
    return base64.b64decode(secret["data"]["repository-password"]).decode()


def restic(kube: Kube, s3: S3Server, location: str, ns: str) -> Restic:
    return Restic(f"s3:{s3.endpoint_url}/{location}/restic/{ns}", repo_password(kube), env_extra=s3.env())


def pvbs_of(kube: Kube, backup: str) -> dict[str, Obj]:
    """The backup's PodVolumeBackups by ``pod/volume``."""
    items = kube.list(POD_VOLUME_BACKUPS, NS, label_selector=f"velero.io/backup-name={backup}")["items"]
    return {f"{p['spec']['pod']['name']}/{p['spec']['volume']}": p for p in items}


def fs_backup(kube: Kube, name: str, namespace: str) -> None:
    """A backup of ``namespace`` with every pod volume (``defaultVolumesToFsBackup``)."""
    kube.create(BACKUPS, NS, velero_object("Backup", name, {"includedNamespaces": [namespace],
                                                            "defaultVolumesToFsBackup": True}))


def fill(path: Path, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        (path / rel).parent.mkdir(parents=True, exist_ok=True)
        (path / rel).write_bytes(data)


def big_file(path: Path, mib: int) -> None:
    path.mkdir(parents=True, exist_ok=True)
    with open(path / "big.bin", "wb") as f:
        f.writelines(os.urandom(1 << 20) for _ in range(mib))


def shop(kube: Kube, kubelet: Kubelet, tmp_path: Path) -> tuple[Obj, Obj]:
    """Namespace shop: web-0 and web-1 share the claim ``data``; web-0 has an emptyDir
    ``cache``, web-1 one called ``scratch``; both opt their volumes in by annotation."""
    kube.create(NAMESPACES, None, {"metadata": {"name": "shop"}})
    claim(kube, "shop", "data", "pv-data")
    web0 = kubelet.start(kube.create(PODS, "shop", pod_body(
        "web-0", [DATA, CACHE, CONFIG, TOKEN], {"backup.velero.io/backup-volumes": "data,cache,config"})))
    web1 = kubelet.start(kube.create(PODS, "shop", pod_body(
        "web-1", [DATA, SCRATCH, HOST], {"backup.velero.io/backup-volumes": "data,host",
                                          "backup.velero.io/backup-volumes-excludes": "scratch"})))
    data = kubelet.volume_dir(web0, "data")
    shutil.rmtree(data)
    make_full_tree(data)
    # The same claim mounted in both pods: one volume, two mount points.
    shared = kubelet.volume_dir(web1, "data")
    shared.rmdir()
    shared.symlink_to(data)
    fill(kubelet.volume_dir(web0, "cache"), {"index.html": b"<h1>shop</h1>\n", "img/logo.svg": b"<svg/>"})
    fill(kubelet.volume_dir(web1, "scratch"), {"tmp.txt": b"scratch data"})
    return web0, web1


# -- the round trip ------------------------------------------------------------------------------

def test_volumes_back_up_and_restore_into_a_mapped_namespace(kube: Kube, location: str, kubelet: Kubelet,
                                                             s3_server: S3Server, tmp_path: Path,
                                                             kube_api: KubeApi) -> None:  # noqa: F811
    web0, _ = shop(kube, kubelet, tmp_path)
    with running_server(kube), node_agent(kube, kubelet):
        b = kube.create(BACKUPS, NS, velero_object("Backup", "b1", {"includedNamespaces": ["shop"]}))
        b = wait_phase(kube, BACKUPS, "b1", timeout=60)
        assert phase(b) == "Completed", b["status"]

        pvbs = pvbs_of(kube, "b1")
        # The claim once (from web-0); never the config map, the token or the host path.
        assert sorted(pvbs) == ["web-0/cache", "web-0/data"]
        data = pvbs["web-0/data"]
        assert data["metadata"]["labels"]["velero.io/backup-uid"] == b["metadata"]["uid"]
        assert data["metadata"]["labels"]["velero.io/pvc-uid"] == kube.get(PVCS, "shop", "data")["metadata"]["uid"]
        assert data["metadata"]["annotations"]["velero.io/pvc-name"] == "data"
        assert data["metadata"]["ownerReferences"][0]["name"] == "b1"
        spec = data["spec"]
        assert spec["node"] == NODE and spec["pod"]["uid"] == web0["metadata"]["uid"]
        assert spec["backupStorageLocation"] == "default" and spec["uploaderType"] == "restic"
        assert spec["repoIdentifier"] == f"s3:{s3_server.endpoint_url}/{location}/restic/shop"
        assert spec["tags"]["pvc-uid"] == data["metadata"]["labels"]["velero.io/pvc-uid"]
        for p in pvbs.values():
            assert p["status"]["phase"] == "Completed", p["status"]
            assert re.fullmatch(r"[0-9a-f]{8}", p["status"]["snapshotID"])
            assert p["status"]["progress"]["bytesDone"] == p["status"]["progress"]["totalBytes"] > 0
            assert p["status"]["startTimestamp"] and p["status"]["completionTimestamp"]
        assert "velero.io/pvc-uid" not in pvbs["web-0/cache"]["metadata"]["labels"]

        # The server made the password: a random one, never Velero's static default.
        assert len(repo_password(kube)) >= 32 and repo_password(kube) != DEFAULT_PASSWORD
        repos = kube.list(BACKUP_REPOSITORIES, NS)["items"]
        assert len(repos) == 1 and repos[0]["status"]["phase"] == "Ready"
        assert repos[0]["spec"]["volumeNamespace"] == "shop" and repos[0]["spec"]["repositoryType"] == "restic"
        assert repos[0]["metadata"]["labels"]["velero.io/storage-location"] == "default"

        # The bucket: both files list the volumes; the repository is restic's.
        store = bucket_store(kube)
        keys = set(store.store.list(""))
        assert "backups/b1/b1-podvolumebackups.json.gz" in keys and "backups/b1/b1-volumeinfo.json.gz" in keys
        infos = json.loads(gzip.decompress(store.store.get("backups/b1/b1-volumeinfo.json.gz")))
        assert sorted((i["pvbInfo"]["podName"], i["pvbInfo"]["volumeName"], i.get("pvcName", "")) for i in infos) \
            == [("web-0", "cache", ""), ("web-0", "data", "data")]
        assert {i["backupMethod"] for i in infos} == {"PodVolumeBackup"}
        assert all(i["result"] == "succeeded" for i in infos)
        store.close()
        repo = restic(kube, s3_server, location, "shop")
        repo.run("check", "--read-data")
        snaps = json.loads(repo.run("snapshots", "--json").stdout)
        assert {s["short_id"] for s in snaps} == {p["status"]["snapshotID"] for p in pvbs.values()}
        assert all(s["hostname"] == "velero" for s in snaps)

        # kbrowse sees the repository and, in `backup describe`, the volumes.
        listed = kbrowse_out(kube_api, "repo", "get")
        assert listed.splitlines()[0].split() == ["NAME", "STATUS", "LAST", "MAINTENANCE"]
        assert listed.splitlines()[1].split() == [repos[0]["metadata"]["name"], "Ready", "<never>"]
        described = kbrowse_out(kube_api, "backup", "describe", "b1", "--details")
        assert "Pod Volume Backups - restic:" in described and "shop/web-0: cache, data" in described

        # kbrowse --bsl opens the volume: its files come out as they went in.
        env = {**os.environ, **s3_server.env(), "RESTIC_PASSWORD": repo_password(kube)}
        out = tmp_path / "from-kbrowse"
        subprocess.run([sys.executable, "-m", "kbrowse.cli", "cp", "--bsl", f"s3:{s3_server.endpoint_url}/{location}",
                        "b1/volumes/shop/web-0/data:/", str(out)], env=env, check=True, capture_output=True)
        assert_same_tree(kubelet.volume_dir(web0, "data"), out)

        # The namespace goes; the restore brings it back as shop-2, volumes and all.
        # The kubelet leaves the old pod's directories alone: they are what came before.
        original = {v: kubelet.volume_dir(web0, v) for v in ("data", "cache")}
        kube.delete(NAMESPACES, None, "shop")
        wait_for(lambda: kube.get_or_none(NAMESPACES, None, "shop"), lambda n: n is None, what="shop deleted")

        r = kube.create(RESTORES, NS, velero_object("Restore", "r1", {"backupName": "b1",
                                                                       "namespaceMapping": {"shop": "shop-2"}}))
        pod = wait_for(lambda: kube.get_or_none(PODS, "shop-2", "web-0"), lambda p: p is not None, 30, "web-0")
        init = pod["spec"]["initContainers"][0]
        assert init["name"] == "restore-wait" and init["command"] == ["mover", "restore-wait"]
        assert init["args"] == [r["metadata"]["uid"]]
        assert sorted(m["mountPath"] for m in init["volumeMounts"]) == ["/restores/cache", "/restores/data"]
        web1_copy = wait_for(lambda: kube.get_or_none(PODS, "shop-2", "web-1"), lambda p: p is not None, 30)
        assert "initContainers" not in web1_copy["spec"]  # nothing of its own was backed up
        # The provisioner binds the restored claim to a new volume.
        wait_for(lambda: kube.get_or_none(PVCS, "shop-2", "data"), lambda c: c is not None, 30)
        kube.create(PVS, None, {"metadata": {"name": "pv-data-2"}, "spec": {
            "capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteMany"], "csi": {
                "driver": "csi.example.com", "volumeHandle": "pv-data-2"}}})
        kube.patch(PVCS, "shop-2", "data", {"spec": {"volumeName": "pv-data-2"}})
        time.sleep(1.0)
        assert all(phase(p) == "" for p in kube.list(POD_VOLUME_RESTORES, NS)["items"])  # not on a node yet
        pod = kubelet.start(pod, init_running=True)

        r = wait_phase(kube, RESTORES, "r1", timeout=60)
        assert phase(r) == "Completed", r["status"]
        pvrs = kube.list(POD_VOLUME_RESTORES, NS)["items"]
        assert sorted(p["spec"]["volume"] for p in pvrs) == ["cache", "data"]
        for p in pvrs:
            assert p["status"]["phase"] == "Completed" and p["status"]["node"] == NODE, p["status"]
            assert p["spec"]["sourceNamespace"] == "shop" and p["spec"]["pod"]["namespace"] == "shop-2"
            assert p["metadata"]["labels"]["velero.io/restore-uid"] == r["metadata"]["uid"]
            assert p["status"]["progress"]["bytesDone"] == p["status"]["progress"]["totalBytes"] > 0
        lines = [line.strip() for line in kbrowse_out(kube_api, "restore", "describe", "r1", "--details").splitlines()]
        at = lines.index("restic Restores:")
        assert lines[at + 1:at + 3] == ["Completed:", "shop-2/web-0: cache, data"]

    # The init container sees every marker, removes them and lets the pod start.
    restores = tmp_path / "restores"
    restores.mkdir()
    for volume in ("data", "cache"):
        target = kubelet.volume_dir(pod, volume)
        assert (target / ".velero" / r["metadata"]["uid"]).is_file()
        (restores / volume).symlink_to(target)
    waited = subprocess.run([sys.executable, "-m", "mover.cli", "restore-wait", r["metadata"]["uid"], "--dir",
                             str(restores), "--timeout", "10"], check=False, capture_output=True, text=True, cwd=ROOT)
    assert waited.returncode == 0, waited.stderr
    for volume in ("data", "cache"):
        assert_same_tree(original[volume], kubelet.volume_dir(pod, volume))
    repo.run("check", "--read-data")


def test_restore_wait_times_out_with_one_line(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    waited = subprocess.run([sys.executable, "-m", "mover.cli", "restore-wait", "abc", "--dir", str(tmp_path),
                             "--timeout", "0.5"], check=False, capture_output=True, text=True, cwd=ROOT)
    assert waited.returncode == 1
    assert waited.stderr.strip() == f"mover restore-wait: gave up after 0.5s; not restored: {tmp_path / 'data'}"


# -- opt-out, incremental, progress ----------------------------------------------------------------

def database(kube: Kube, kubelet: Kubelet, mib: int = 160) -> Obj:
    """Namespace db: db-0 with a claim holding one big file, and volumes FSB never takes or
    that the pod excludes."""
    kube.create(NAMESPACES, None, {"metadata": {"name": "db"}})
    claim(kube, "db", "data", "pv-db")
    pod = kubelet.start(kube.create(PODS, "db", pod_body(
        "db-0", [DATA, {"name": "logs", "emptyDir": {}}, {"name": "conf", "secret": {"secretName": "db"}},
                 HOST, TOKEN], {"backup.velero.io/backup-volumes-excludes": "logs"})))
    big_file(kubelet.volume_dir(pod, "data"), mib)
    fill(kubelet.volume_dir(pod, "logs"), {"db.log": b"not wanted"})
    return pod


def test_opt_out_backs_up_every_volume_but_the_excluded_and_progress_rises(
        kube: Kube, location: str, kubelet: Kubelet, s3_server: S3Server, tmp_path: Path) -> None:
    database(kube, kubelet)
    with running_server(kube), node_agent(kube, kubelet):
        watch = Watch(kube, POD_VOLUME_BACKUPS)
        fs_backup(kube, "nightly-1", "db")
        b = wait_phase(kube, BACKUPS, "nightly-1", timeout=120)
        events = watch.close()
        assert phase(b) == "Completed", b["status"]
        assert sorted(pvbs_of(kube, "nightly-1")) == ["db-0/data"]
        # Seen through the watch: New, then InProgress with the bytes rising, then Completed.
        seen = [(phase(e) or "New", (e.get("status") or {}).get("progress") or {}) for e in events]
        phases = [p for p, _ in seen]
        assert phases[0] == "New" and phases[-1] == "Completed", phases
        done = [p.get("bytesDone", 0) for ph, p in seen if ph == "InProgress"]
        total = seen[-1][1]["totalBytes"]
        assert total == 160 << 20
        assert any(0 < d < total for d in done), done
        assert done == sorted(done)

        # The next night: parent is the last snapshot of the same claim; nothing new is stored.
        repo = restic(kube, s3_server, location, "db")
        packs = set(repo.run("list", "packs").stdout.split())
        fs_backup(kube, "nightly-2", "db")
        assert phase(wait_phase(kube, BACKUPS, "nightly-2", timeout=120)) == "Completed"
    first_pvb, second_pvb = (pvbs_of(kube, n)["db-0/data"]["status"] for n in ("nightly-1", "nightly-2"))
    assert first_pvb["progress"]["incrementalBytes"] == 160 << 20
    assert second_pvb["progress"]["incrementalBytes"] == 0
    first, second = first_pvb["snapshotID"], second_pvb["snapshotID"]
    snaps = {s["short_id"]: s for s in json.loads(repo.run("snapshots", "--json").stdout)}
    assert snaps[second]["parent"] == snaps[first]["id"]
    assert "tree" in snaps[second] and snaps[second]["tree"] == snaps[first]["tree"]
    new_packs = set(repo.run("list", "packs").stdout.split()) - packs
    assert len(new_packs) <= 1  # at most one of trees: no file was read into new data
    log = gzip.decompress(bucket_store(kube).store.get("backups/nightly-1/nightly-1-logs.gz")).decode()
    assert "level=warning" not in log  # volumes nobody asked for are left out without a word

    # Deleting a backup forgets its volume snapshots; the other backup's stay restorable.
    with running_server(kube):
        request = kube.create(DELETE_BACKUP_REQUESTS, NS, new_request(kube.get(BACKUPS, NS, "nightly-1")))
        done = wait_for(lambda: kube.get(DELETE_BACKUP_REQUESTS, NS, request["metadata"]["name"]),
                        lambda r: phase(r) == "Processed", 30, "the deletion")
        assert not done["status"].get("errors"), done["status"]
    assert [s["short_id"] for s in json.loads(repo.run("snapshots", "--json").stdout)] == [second]
    repo.run("check", "--read-data")

    # Repository maintenance, as Velero's: once maintenanceFrequency has passed, a prune.
    (backup_repo,) = kube.list(BACKUP_REPOSITORIES, NS)["items"]
    assert "lastMaintenanceTime" not in (backup_repo.get("status") or {})  # `repo get` says <never>
    name = backup_repo["metadata"]["name"]
    with running_server(kube):
        kube.patch(BACKUP_REPOSITORIES, NS, name, {"spec": {"maintenanceFrequency": "1s"}})
        maintained = wait_for(lambda: kube.get(BACKUP_REPOSITORIES, NS, name),
                              lambda r: (r.get("status") or {}).get("lastMaintenanceTime"), 60, "maintenance")
    (run,) = maintained["status"]["recentMaintenance"][:1]
    assert run["result"] == "Succeeded", run
    assert [s["short_id"] for s in json.loads(repo.run("snapshots", "--json").stdout)] == [second]
    repo.run("check", "--read-data")
    assert "unused size after prune: 0 B" in repo.run("prune", "--dry-run").stdout  # nothing left to do


# -- cancelled, killed -------------------------------------------------------------------------------

def repo_locks(repo: Restic) -> list[str]:
    return repo.run("list", "locks", "--no-lock").stdout.split()


def wait_moving(kube: Kube, backup: str) -> Obj:
    """The backup's one PodVolumeBackup once some of its bytes are done."""
    return wait_for(lambda: next(iter(pvbs_of(kube, backup).values()), None),
                    lambda p: p is not None and ((p.get("status") or {}).get("progress") or {}).get("bytesDone", 0) > 0,
                    60, f"a pod volume backup of {backup} under way")


def test_a_deleted_or_cancelled_backup_stops_its_volumes_and_leaves_the_repository_valid(
        kube: Kube, location: str, kubelet: Kubelet, s3_server: S3Server) -> None:
    database(kube, kubelet, mib=320)
    with running_server(kube), node_agent(kube, kubelet):
        fs_backup(kube, "gone", "db")
        repo = restic(kube, s3_server, location, "db")
        pvb = wait_moving(kube, "gone")
        assert pvb["status"]["phase"] == "InProgress"
        kube.delete(BACKUPS, NS, "gone")
        # Its volume backup goes with it; the agent stops moving data and lets go of the repository.
        wait_for(lambda: (pvbs_of(kube, "gone"), repo_locks(repo)), lambda v: v == ({}, []), 30,
                 "the volume backup gone and the repository unlocked")
        assert not [k for k in bucket_store(kube).store.list("backups/")]

        fs_backup(kube, "stopped", "db")
        # Cancel as soon as the agent has started: on a quiet machine the second pass over the
        # volume (its data partly in the repository already) ends before the first progress report.
        pvb = wait_for(lambda: next(iter(pvbs_of(kube, "stopped").values()), None),
                       lambda p: p is not None and phase(p) == "InProgress", 60, "the volume backup started")
        kube.patch(POD_VOLUME_BACKUPS, NS, pvb["metadata"]["name"], {"spec": {"cancel": True}})
        b = wait_phase(kube, BACKUPS, "stopped", timeout=60)
        assert phase(b) == "PartiallyFailed" and b["status"]["errors"] == 1, b["status"]
        pvb = kube.get(POD_VOLUME_BACKUPS, NS, pvb["metadata"]["name"])
        assert pvb["status"]["phase"] == "Canceled" and pvb["status"]["message"], pvb["status"]
    assert repo_locks(repo) == []
    assert json.loads(repo.run("snapshots", "--json").stdout) == []
    repo.run("check", "--read-data")


@contextmanager
def agent_process(kube_api: KubeApi, kubelet: Kubelet, log: Path) -> Iterator[subprocess.Popen]:  # noqa: F811
    with open(log, "ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "mover.cli", "node-agent", "--kubeconfig",
                                 str(kube_api.kubeconfig_path), "--node-name", NODE, "--kubelet-root",
                                 str(kubelet.root), "--namespace", NS, "--resync-period", "1s"],
                                stdout=out, stderr=out, cwd=ROOT)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)


def test_an_agent_killed_mid_volume_is_followed_by_one_that_backs_it_up(
        kube: Kube, location: str, kubelet: Kubelet, s3_server: S3Server, kube_api: KubeApi,  # noqa: F811
        tmp_path: Path) -> None:
    pod = database(kube, kubelet, mib=320)
    log = tmp_path / "agent.log"
    with running_server(kube):
        with agent_process(kube_api, kubelet, log) as first:
            fs_backup(kube, "b", "db")
            pvb = wait_moving(kube, "b")
            first.send_signal(signal.SIGKILL)
            first.wait(10)
        assert kube.get(POD_VOLUME_BACKUPS, NS, pvb["metadata"]["name"])["status"]["phase"] == "InProgress"
        with agent_process(kube_api, kubelet, log) as second:
            b = wait_phase(kube, BACKUPS, "b", timeout=120)
            assert second.poll() is None
        assert phase(b) == "Completed", (b["status"], log.read_text()[-3000:])
    pvb = kube.get(POD_VOLUME_BACKUPS, NS, pvb["metadata"]["name"])
    assert pvb["status"]["phase"] == "Completed"
    assert pvb["metadata"]["annotations"]["mover.kbrowse.io/attempt"] == "2"
    assert "running it again (attempt 2)" in log.read_text()
    repo = restic(kube, s3_server, location, "db")
    repo.run("check", "--read-data")
    out = tmp_path / "restored"
    repo.run("restore", pvb["status"]["snapshotID"], "--target", str(out))
    assert_same_tree(kubelet.volume_dir(pod, "data"), out)


def test_node_agent_bad_flags_say_what_to_do(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "NODE_NAME"}

    def agent(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "mover.cli", "node-agent", *args], capture_output=True,
                              text=True, check=False, cwd=ROOT, env=env, timeout=60)

    no_node = agent("--kubelet-root", str(tmp_path))
    assert no_node.returncode == 1 and no_node.stderr.strip() == \
        "mover: error: no node name: give --node-name NODE (or set $NODE_NAME, as the DaemonSet does)"
    no_pods = agent("--node-name", NODE, "--kubelet-root", str(tmp_path))
    assert no_pods.returncode == 1 and no_pods.stderr.strip() == \
        f"mover: error: {tmp_path}/pods is not a directory: give the kubelet's directory with --kubelet-root"
    zero = agent("--node-name", NODE, "--concurrency", "0")
    assert zero.returncode == 2 and "invalid concurrency '0': give a whole number of at least 1" in zero.stderr


def test_a_server_restarted_while_volumes_move_takes_its_volume_backups_over(
        kube: Kube, location: str, kubelet: Kubelet, s3_server: S3Server) -> None:
    database(kube, kubelet, mib=320)
    with node_agent(kube, kubelet):
        with running_server(kube):
            fs_backup(kube, "b", "db")
            pvb = wait_moving(kube, "b")
        assert phase(kube.get(BACKUPS, NS, "b")) == "InProgress"
        with running_server(kube):
            b = wait_phase(kube, BACKUPS, "b", timeout=120)
    assert phase(b) == "Completed", b["status"]
    # The same volume backup, finished once: none made twice.
    assert [p["metadata"]["name"] for p in pvbs_of(kube, "b").values()] == [pvb["metadata"]["name"]]
    stored = json.loads(gzip.decompress(bucket_store(kube).store.get("backups/b/b-podvolumebackups.json.gz")))
    assert [p["status"]["snapshotID"] for p in stored] == [kube.get(POD_VOLUME_BACKUPS, NS, pvb["metadata"]["name"])[
        "status"]["snapshotID"]]
    restic(kube, s3_server, location, "db").run("check", "--read-data")


def test_the_agent_moves_volumes_side_by_side_up_to_its_bound(kube: Kube, location: str, kubelet: Kubelet) -> None:
    kube.create(NAMESPACES, None, {"metadata": {"name": "batch"}})
    for i in range(3):
        pod = kubelet.start(kube.create(PODS, "batch", pod_body(f"job-{i}", [CACHE])))
        big_file(kubelet.volume_dir(pod, "cache"), 120)
    with running_server(kube), node_agent(kube, kubelet, concurrency=2):
        watch = Watch(kube, POD_VOLUME_BACKUPS)
        fs_backup(kube, "b", "batch")
        b = wait_phase(kube, BACKUPS, "b", timeout=120)
        events = watch.close()
    assert phase(b) == "Completed", b["status"]
    latest: dict[str, Obj] = {}
    moving_at_once = []
    for event in events:
        latest[event["metadata"]["name"]] = event
        moving_at_once.append(sum(1 for o in latest.values() if phase(o) == "InProgress"
                                  and ((o.get("status") or {}).get("progress") or {}).get("bytesDone", 0) > 0))
    assert len(latest) == 3 and max(moving_at_once) == 2, moving_at_once


def test_work_an_agent_left_in_progress_never_stays_in_progress(kube: Kube, location: str, kubelet: Kubelet) -> None:
    """What a dead agent left: a volume backup cut short three times, and a volume restore
    half written. The next agent fails both, with the reason."""
    kube.create(NAMESPACES, None, {"metadata": {"name": "db"}})
    pod = kubelet.start(kube.create(PODS, "db", pod_body("db-0", [CACHE])), init_running=True)
    ref = {"kind": "Pod", "namespace": "db", "name": "db-0", "uid": pod["metadata"]["uid"]}
    pvb = kube.create(POD_VOLUME_BACKUPS, NS, velero_object("PodVolumeBackup", "cut", {
        "node": NODE, "pod": ref, "volume": "cache", "backupStorageLocation": "default", "repoIdentifier": "x",
        "uploaderType": "restic"}, annotations={"mover.kbrowse.io/attempt": "3"}))
    pvr = kube.create(POD_VOLUME_RESTORES, NS, velero_object("PodVolumeRestore", "half", {
        "pod": ref, "volume": "cache", "backupStorageLocation": "default", "repoIdentifier": "x",
        "uploaderType": "restic", "snapshotID": "0123abcd", "sourceNamespace": "db"}))
    for res, obj in ((POD_VOLUME_BACKUPS, pvb), (POD_VOLUME_RESTORES, pvr)):
        patch_status(kube, res, NS, obj["metadata"]["name"], {"phase": "InProgress"})
    with node_agent(kube, kubelet):
        cut = wait_phase(kube, POD_VOLUME_BACKUPS, "cut", ("Failed",))
        half = wait_phase(kube, POD_VOLUME_RESTORES, "half", ("Failed",))
    assert cut["status"]["message"] == ("found a podvolumebackup with status InProgress during the node agent "
                                        "starting, mark it as Failed: the node agent stopped 3 times while "
                                        "backing up this volume")
    assert "the node agent stopped while restoring it" in half["status"]["message"]
    assert cut["status"]["completionTimestamp"] and half["status"]["completionTimestamp"]


def test_a_repository_that_does_not_open_fails_the_volumes_with_the_reason(
        kube: Kube, location: str, kubelet: Kubelet, s3_server: S3Server) -> None:
    kube.create(NAMESPACES, None, {"metadata": {"name": "db"}})
    for i in range(2):
        kubelet.start(kube.create(PODS, "db", pod_body(f"db-{i}", [CACHE])))
    # Someone else's repository where the namespace's one belongs.
    Restic(f"s3:{s3_server.endpoint_url}/{location}/restic/db", "not-the-secret", env_extra=s3_server.env()).init()
    with running_server(kube), node_agent(kube, kubelet):
        fs_backup(kube, "b", "db")
        b = wait_phase(kube, BACKUPS, "b", timeout=60)
    assert phase(b) == "PartiallyFailed" and b["status"]["errors"] == 2, b["status"]
    (repo,) = kube.list(BACKUP_REPOSITORIES, NS)["items"]
    assert repo["status"]["phase"] == "NotReady"
    assert repo["status"]["message"].startswith("error opening the repository: "), repo["status"]
    assert pvbs_of(kube, "b") == {}
    log = gzip.decompress(bucket_store(kube).store.get("backups/b/b-logs.gz")).decode()
    assert log.count(f"is not ready: {repo['status']['message']}") == 2


def test_the_agent_checks_its_config_map_at_start(kube: Kube, kube_api: KubeApi, tmp_path: Path) -> None:  # noqa: F811
    from mover.kube.resources import CONFIGMAPS

    (tmp_path / "pods").mkdir()

    def agent(name: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "mover.cli", "node-agent", "--kubeconfig",
                               str(kube_api.kubeconfig_path), "--node-name", NODE, "--kubelet-root",
                               str(tmp_path), "-n", NS, "--node-agent-configmap", name],
                              capture_output=True, text=True, check=False, cwd=ROOT, timeout=60)

    def config_map(name: str, text: str) -> None:
        kube.create(CONFIGMAPS, NS, {"apiVersion": "v1", "kind": "ConfigMap",
                                     "metadata": {"name": name}, "data": {"node-agent-config.json": text}})

    missing = agent("nowhere")
    assert missing.returncode == 1 and missing.stderr.strip() == (
        f"mover: error: config map {NS}/nowhere (--node-agent-configmap) does not exist: create it or "
        "leave the flag out")
    config_map("broken", '{"backupPVC": {"ceph-rbd": {"readOnly": "yes"}}}')
    broken = agent("broken")
    assert broken.returncode == 1 and broken.stderr.strip() == \
        f"mover: error: config map {NS}/broken: backupPVC.ceph-rbd.readOnly must be a bool"
    config_map("not-json", "{backupPVC")
    assert "is not valid JSON" in agent("not-json").stderr


def test_node_agent_config_reads_velero_s_backup_pvc_settings() -> None:
    from mover.errors import RepoError
    from mover.velero.nodeagentconfig import BackupPVC, parse_config

    config = parse_config({"cfg.json": json.dumps({"backupPVC": {
        "ceph-rbd": {"storageClass": "ceph-rbd-ro", "readOnly": True, "spcNoRelabeling": True},
        "standard": {}}, "loadConcurrency": {"globalConfig": 2}})}, "cm")
    assert config.backup_pvc == {"ceph-rbd": BackupPVC("ceph-rbd-ro", True, True), "standard": BackupPVC()}
    with pytest.raises(RepoError, match="exactly one entry"):
        parse_config({"a": "{}", "b": "{}"}, "cm")
