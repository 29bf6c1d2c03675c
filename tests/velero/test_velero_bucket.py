"""kbrowse on a Velero backup storage location with no cluster, in SeaweedFS and on disk.

The bucket is built as Velero builds it (tests/support/velerobucket.py): restic itself writes the
volume snapshots (host ``velero``, Velero's tags, the volume as working directory, path ``.``),
and PodVolumeBackups carry the 8-hex short id. The layout test reads the raw files without
mover.velero, so the writer is checked against Velero's layout, not against its own reader.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest
import yaml
from kubernetes import client

from kbrowse.bucket import commands as bucketcmd

from kbrowse.bucket import paths as bucketpaths
from mover.errors import NotFound, RepoError
from mover.velero import layout
from mover.velero.bsl import BucketView
from mover.velero.objects import Backup, ObjectMeta, Restore
from mover.velero.objectstore import LocalStore, S3Store, open_store
from mover.velero.repopassword import Unavailable, default_password, fixed, kube_secret
from mover.velero.writer import BackupRecord, RestoreRecord, write_backup, write_restore
from tests.support.kubeapi.fixtures import KubeApi, kube_api  # noqa: F401  (fixture)
from tests.support.s3server import S3Server, free_ports
from tests.support.treekit import assert_same_tree
from tests.support.velerobucket import (
    LEDGER_PASSWORD,
    OLD_STARTED,
    STARTED,
    BuiltBucket,
    build,
    copy_to_s3,
)

PREFIX = "velero"  # the BSL prefix inside the S3 bucket


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, restic_bin: str) -> BuiltBucket:
    base = tmp_path_factory.mktemp("velero-bucket")
    return build(base / "bsl", base / "node", restic_bin)


@pytest.fixture(scope="module")
def s3_bsl(built: BuiltBucket, s3_server: S3Server) -> str:
    """The same bucket, copied key for key into SeaweedFS below a prefix."""
    s3_server.start()
    bucket = s3_server.make_bucket()
    copy_to_s3(built.root, s3_server.client(), bucket, PREFIX)
    return f"s3:{s3_server.endpoint_url}/{bucket}/{PREFIX}"


@pytest.fixture(params=["local", "s3"])
def bsl(request: pytest.FixtureRequest, built: BuiltBucket) -> str:
    if request.param == "local":
        return str(built.root)
    return request.getfixturevalue("s3_bsl")


@pytest.fixture
def env(s3_server: S3Server, tmp_path: Path) -> dict[str, str]:
    """A clean environment: S3 credentials, UTC, no password, no kubeconfig."""
    keep = {k: v for k, v in os.environ.items()
            if not k.startswith(("RESTIC_", "AWS_", "KUBECONFIG"))}
    return {**keep, **s3_server.env(), "TZ": "UTC",
            "AWS_CONFIG_FILE": str(tmp_path / "none"),
            "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
            "AWS_EC2_METADATA_DISABLED": "true", "KUBECONFIG": str(tmp_path / "no-kubeconfig")}


def kb(bsl: str, env: dict[str, str], *args: str | os.PathLike) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "kbrowse.cli", "--bsl", bsl, *map(str, args)],
                          env=env, capture_output=True, stdin=subprocess.DEVNULL, timeout=120,
                          check=False)
    assert b"Traceback" not in proc.stderr, proc.stderr.decode()
    return proc


def ok(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 0, proc.stderr.decode()
    return proc.stdout.decode()


def fails(proc: subprocess.CompletedProcess) -> str:
    """A failure is one line on stderr and a non-zero exit."""
    err = proc.stderr.decode()
    assert proc.returncode != 0, proc.stdout.decode()
    assert len(err.strip().splitlines()) == 1, err
    return err


def go_time(when) -> str:  # type: ignore[no-untyped-def]
    return when.strftime("%Y-%m-%d %H:%M:%S +0000 UTC")


# -- the layout, read raw ---------------------------------------------------------------------


def test_bucket_has_velero_layout(built: BuiltBucket) -> None:
    root = built.root
    assert sorted(p.name for p in root.iterdir()) == ["backups", "kopia", "metadata", "restic"]
    web = root / "backups" / "web-backup"
    assert sorted(p.name for p in web.iterdir()) == sorted(
        ["velero-backup.json"] + [f"web-backup{s}" for s in (
            ".tar.gz", "-logs.gz", "-podvolumebackups.json.gz", "-volumeinfo.json.gz",
            "-results.gz", "-resource-list.json.gz", "-itemoperations.json.gz",
            "-volumesnapshots.json.gz", "-csi-volumesnapshots.json.gz",
            "-csi-volumesnapshotcontents.json.gz", "-csi-volumesnapshotclasses.json.gz")])
    assert not (root / "backups" / "legacy-backup" / "legacy-backup-volumeinfo.json.gz").exists()
    assert re.fullmatch(r"[0-9a-f-]{36}", (root / "metadata" / "revision").read_text())

    meta = json.loads((web / "velero-backup.json").read_text())
    assert (meta["kind"], meta["apiVersion"]) == ("Backup", "velero.io/v1")
    assert meta["status"]["phase"] == "Completed" and meta["status"]["formatVersion"] == "1.1.0"
    assert meta["spec"]["snapshotMoveData"] is False  # an explicit false survives (*bool)

    def gz_json(suffix: str):  # type: ignore[no-untyped-def]
        return json.loads(gzip.decompress((web / f"web-backup{suffix}").read_bytes()))

    html = built.volumes["shop/web-7d9f8/html"]
    pvbs = {p["spec"]["volume"] + "@" + p["spec"]["pod"]["namespace"]: p
            for p in gz_json("-podvolumebackups.json.gz")}
    pvb = pvbs["html@shop"]
    assert pvb["kind"] == "PodVolumeBackup" and pvb["spec"]["uploaderType"] == "restic"
    assert pvb["status"]["snapshotID"] == html.snapshot_id[:8]
    assert pvb["spec"]["tags"]["backup"] == "web-backup"
    infos = gz_json("-volumeinfo.json.gz")
    assert {i["pvbInfo"]["snapshotHandle"] for i in infos} == \
        {v.snapshot_id[:8] for v in built.volumes.values()}
    assert all(i["backupMethod"] == "PodVolumeBackup" for i in infos)
    assert gz_json("-resource-list.json.gz")["apps/v1/Deployment"] == ["shop/web"]
    assert gz_json("-resource-list.json.gz")["rbac.authorization.k8s.io/v1/ClusterRole"] == ["web-reader"]
    assert gz_json("-itemoperations.json.gz") is None  # Go's nil slice
    assert gz_json("-results.gz")["warnings"]["namespaces"]["shop"]

    with tarfile.open(web / "web-backup.tar.gz") as tar:
        names = set(tar.getnames())
        assert tar.extractfile("metadata/version").read() == b"1.1.0\n"  # type: ignore[union-attr]
        deployment = json.load(tar.extractfile("resources/deployments.apps/namespaces/shop/web.json"))  # type: ignore[arg-type]
    assert deployment["kind"] == "Deployment"
    for path in ("resources/deployments.apps/v1-preferredversion/namespaces/shop/web.json",
                 "resources/configmaps/namespaces/shop/web-config.json",
                 "resources/configmaps/v1-preferredversion/namespaces/shop/web-config.json",
                 "resources/namespaces/cluster/shop.json",
                 "resources/clusterroles.rbac.authorization.k8s.io/cluster/web-reader.json",
                 "resources/clusterroles.rbac.authorization.k8s.io/v1-preferredversion/cluster/web-reader.json"):
        assert path in names
    assert len(names) == 1 + 2 * len(built.items)


# -- backups and describe ------------------------------------------------------------------------


def test_backups_like_velero_backup_get(bsl: str, env: dict[str, str]) -> None:
    lines = ok(kb(bsl, env, "backups")).splitlines()
    assert lines[0].split() == ["NAME", "STATUS", "ERRORS", "WARNINGS", "CREATED", "EXPIRES",
                                "STORAGE", "LOCATION", "SELECTOR"]
    assert lines[0].startswith("NAME            STATUS      ERRORS   WARNINGS   CREATED  ")
    rows = {line.split()[0]: line for line in lines[1:]}
    assert list(rows) == ["kopia-backup", "legacy-backup", "web-backup"]
    fields = re.split(r"\s{2,}", rows["web-backup"].strip())
    assert fields == ["web-backup", "Completed", "0", "1", go_time(STARTED), "29d", "default",
                      "<none>"]
    assert re.split(r"\s{2,}", rows["legacy-backup"])[4:6] == [go_time(OLD_STARTED), "10d ago"]

    doc = json.loads(ok(kb(bsl, env, "backups", "-o", "json")))
    assert doc["kind"] == "BackupList"
    assert [b["metadata"]["name"] for b in doc["items"]] == [
        "kopia-backup", "legacy-backup", "web-backup"]


def test_velero_credentials_file(s3_bsl: str, s3_server: S3Server, env: dict[str, str],
                                 tmp_path: Path) -> None:
    """The cloud-credentials secret Velero mounts, as the only credentials."""
    creds = tmp_path / "cloud"
    creds.write_text(f"[default]\naws_access_key_id = {s3_server.access_key}\n"
                     f"aws_secret_access_key = {s3_server.secret_key}\n")
    bare = {k: v for k, v in env.items() if k not in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    assert "no S3 credentials found" in fails(kb(s3_bsl, bare, "backups"))
    assert "web-backup" in ok(kb(s3_bsl, bare, "backups", "--credentials-file", creds))
    stale = {**env, "AWS_SECRET_ACCESS_KEY": "stale"}
    assert "S3 refused the credentials" in fails(kb(s3_bsl, stale, "backups"))
    assert "web-backup" in ok(kb(s3_bsl, stale, "--credentials-file", creds, "backups"))


def test_describe_like_velero_describe_details(bsl: str, env: dict[str, str],
                                               built: BuiltBucket) -> None:
    text = ok(kb(bsl, env, "describe", "web-backup", "--details"))
    spec = text[text.index("\nNamespaces:\n") + 1:text.index("Backup Format Version:")]
    assert spec == """Namespaces:
  Included:  shop, ledger
  Excluded:  <none>

Resources:
  Included:        *
  Excluded:        <none>
  Cluster-scoped:  auto

Label selector:  <none>

Or label selector:  <none>

Storage Location:  default

Velero-Native Snapshot PVs:  auto
Snapshot Move Data:          false
Data Mover:                  velero

TTL:  720h0m0s

CSISnapshotTimeout:    10m0s
ItemOperationTimeout:  4h0m0s

Hooks:  <none>

"""
    assert text.startswith("Name:         web-backup\nNamespace:    velero\n")
    assert "\nPhase:  Completed\n" in text
    assert "  Namespaces:\n    shop:  pod shop/web-7d9f8: volume cache is an emptyDir\n" in text
    assert f"Started:    {go_time(STARTED)}\n" in text
    assert "Total items to be backed up:  8\nItems backed up:              8\n" in text
    assert "Resource List:\n  apps/v1/Deployment:\n    - shop/web\n" in text
    assert "  v1/Namespace:\n    - shop\n" in text
    assert ("  Pod Volume Backups - restic:\n    Completed:\n      ledger/db-0: data\n"
            "      shop/web-7d9f8: cache, html\n") in text
    html = built.volumes["shop/web-7d9f8/html"]
    assert (f"    shop/web-7d9f8/html:\n"
            f"      Method:        PodVolumeBackup\n"
            f"      Uploader:      restic\n"
            f"      Repository:    restic/shop\n"
            f"      Snapshot ID:   {html.snapshot_id[:8]}\n"
            f"      Size (bytes):  {sum(map(len, html.files.values()))}\n") in text
    assert "Repository:    restic/ledger" in text

    legacy = ok(kb(bsl, env, "describe", "legacy-backup"))  # volumes from PodVolumeBackups
    assert "CSI Snapshots: <none included or not detectable>" in legacy
    assert f"Snapshot ID:   {built.legacy.snapshot_id[:8]}" in legacy

    assert "no backup 'nope'" in fails(kb(bsl, env, "describe", "nope"))
    if bsl.startswith("s3:"):
        wrong, why = bsl.replace("/t-", "/nope-"), "bucket 'nope-"
    else:
        wrong, why = bsl + "-typo", "-typo is not a directory"
    assert why in fails(kb(wrong, env, "backups"))


# -- resources ----------------------------------------------------------------------------------


def test_ls_levels(bsl: str, env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with BucketView(open_store(bsl)) as view:
        def ls(path: str = "") -> list[str]:
            return bucketcmd.children(view, bucketpaths.parse(path))

        assert ls() == ["kopia-backup", "legacy-backup", "web-backup"]
        assert ls("web-backup") == ["resources", "volumes"]
        assert ls("web-backup/resources") == [
            "clusterroles.rbac.authorization.k8s.io", "configmaps", "deployments.apps",
            "namespaces", "persistentvolumeclaims", "pods", "secrets", "services"]
        assert ls("web-backup/resources/clusterroles.rbac.authorization.k8s.io") == ["_cluster"]
        assert ls("web-backup/resources/deployments.apps/shop") == ["web"]
        assert ls("web-backup/resources/secrets/shop/web-tls") == ["web-tls"]
        assert ls("web-backup/volumes") == ["ledger", "shop"]
        assert ls("web-backup/volumes/shop") == ["web-7d9f8"]
        assert ls("web-backup/volumes/shop/web-7d9f8") == ["cache", "html"]
        with pytest.raises(NotFound, match="no configmaps in namespace ledger in backup web-backup"):
            ls("web-backup/resources/configmaps/ledger")
    # the same through the command line, down into a volume's snapshot
    assert ok(kb(bsl, env, "ls", "web-backup/resources/configmaps")) == "shop\n"
    assert ok(kb(bsl, env, "ls", "web-backup/volumes/shop/web-7d9f8/html")).splitlines() == \
        ["deep", "img", "index.html"]
    assert "no configmaps in namespace ledger" in fails(
        kb(bsl, env, "ls", "web-backup/resources/configmaps/ledger"))


def test_cat_resource_as_yaml(bsl: str, env: dict[str, str], built: BuiltBucket) -> None:
    objects = {(i.ref.resource, i.ref.namespace, i.ref.name): i.obj for i in built.items}
    out = ok(kb(bsl, env, "cat", "web-backup/resources/deployments.apps/shop/web"))
    assert yaml.safe_load(out) == objects[("deployments.apps", "shop", "web")]
    assert out.startswith("apiVersion: apps/v1\nkind: Deployment\nmetadata:\n")
    out = ok(kb(bsl, env, "cat",
                "web-backup/resources/clusterroles.rbac.authorization.k8s.io/_cluster/web-reader"))
    assert yaml.safe_load(out) == objects[("clusterroles.rbac.authorization.k8s.io", "", "web-reader")]
    err = fails(kb(bsl, env, "cat", "web-backup/resources/secrets/shop/nope"))
    assert "secrets nope in namespace shop is not in backup web-backup" in err
    assert "is a directory" in fails(kb(bsl, env, "cat", "web-backup/resources/secrets"))


# -- volumes ------------------------------------------------------------------------------------


def test_cp_from_pod_volume(bsl: str, env: dict[str, str], built: BuiltBucket,
                            tmp_path: Path) -> None:
    html = built.volumes["shop/web-7d9f8/html"]
    ok(kb(bsl, env, "cp", "web-backup/volumes/shop/web-7d9f8/html:/img/logo.bin", tmp_path))
    assert (tmp_path / "logo.bin").read_bytes() == html.files["img/logo.bin"]
    ok(kb(bsl, env, "cp", "web-backup/volumes/shop/web-7d9f8/html", tmp_path / "vol"))
    assert_same_tree(built.volume_dirs["shop/web-7d9f8/html"], tmp_path / "vol",
                     check_dir_mtime=False)
    # an older backup of the same volume, found through its PodVolumeBackup alone
    out = kb(bsl, env, "cat", "legacy-backup/volumes/shop/web-7d9f8/html/index.html")
    assert out.stdout == built.legacy.files["index.html"]


def test_cp_resources_as_yaml(bsl: str, env: dict[str, str], built: BuiltBucket,
                              tmp_path: Path) -> None:
    ok(kb(bsl, env, "cp", "web-backup/resources", tmp_path))
    files = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.yaml"))
    assert len(files) == len(built.items)
    assert "namespaces/_cluster/shop.yaml" in files
    assert yaml.safe_load((tmp_path / "configmaps/shop/web-config.yaml").read_text())["data"] == \
        {"nginx.conf": "server { listen 80; }\n"}


def test_damaged_kopia_repository_gives_plain_error(bsl: str, env: dict[str, str]) -> None:
    # the bucket's kopia repository is only a kopia.repository of "{}" in the filesystem
    # store's naming, which an S3 store does not read (tests/kopia has real ones)
    err = fails(kb(bsl, env, "ls", "kopia-backup/volumes/shop/web-7d9f8/html"))
    if bsl.startswith("s3:"):
        assert "no kopia repository for namespace shop at kopia/shop" in err
    else:
        assert "kopia/shop: kopia.repository is not a kopia format blob" in err


# -- the repository password -----------------------------------------------------------------------


LEDGER_FILE = "web-backup/volumes/ledger/db-0/data:/ledger.csv"


def test_password_explicit_default_and_none(built: BuiltBucket, env: dict[str, str],
                                            tmp_path: Path) -> None:
    bsl = str(built.root)
    # shop's repository has Velero's default password: found with nothing given
    assert ok(kb(bsl, env, "cat", "web-backup/volumes/shop/web-7d9f8/html/index.html")) == \
        "<h1>shop</h1>\n"
    # ledger's has its own: neither the (absent) secret nor the default opens it
    err = fails(kb(bsl, env, "cat", LEDGER_FILE))
    assert err == (f"kbrowse: error: no password opens repository {built.root}/restic/ledger; "
                   "tried: secret velero-repo-credentials in namespace velero (no kubeconfig); "
                   "Velero's default password static-passw0rd (wrong)\n")
    right, wrong = tmp_path / "right", tmp_path / "wrong"
    right.write_text(LEDGER_PASSWORD + "\n")
    wrong.write_text("not-it\n")
    assert ok(kb(bsl, env, "cat", LEDGER_FILE, "--repo-password-file", right)) == \
        built.volumes["ledger/db-0/data"].files["ledger.csv"].decode()
    assert ok(kb(bsl, {**env, "RESTIC_PASSWORD": LEDGER_PASSWORD}, "cat", LEDGER_FILE))
    err = fails(kb(bsl, env, "cat", LEDGER_FILE, "--repo-password-file", wrong))
    assert err.endswith(f"tried: --repo-password-file {wrong} (wrong)\n")  # given: only that


def test_password_from_velero_secret(built: BuiltBucket, env: dict[str, str],
                                     kube_api: KubeApi) -> None:  # noqa: F811
    core = client.CoreV1Api(kube_api.api_client())
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="velero")))
    core.create_namespaced_secret("velero", client.V1Secret(
        metadata=client.V1ObjectMeta(name="velero-repo-credentials"),
        string_data={"repository-password": LEDGER_PASSWORD}))
    kube_env = {**env, "KUBECONFIG": str(kube_api.kubeconfig_path)}
    bsl = str(built.root)
    assert ok(kb(bsl, kube_env, "cat", LEDGER_FILE)) == "id,amount\n1,42\n"
    err = fails(kb(bsl, kube_env, "-n", "elsewhere", "cat", LEDGER_FILE))
    assert "secret velero-repo-credentials in namespace elsewhere (not found)" in err


def test_unreachable_cluster_is_skipped_quickly(built: BuiltBucket, env: dict[str, str],
                                                tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "gone",
        "clusters": [{"name": "gone", "cluster": {"server": f"http://127.0.0.1:{free_ports(1)[0]}"}}],
        "users": [{"name": "gone", "user": {"token": "t"}}],
        "contexts": [{"name": "gone", "context": {"cluster": "gone", "user": "gone"}}]}))
    out = kb(str(built.root), {**env, "KUBECONFIG": str(kubeconfig)},
             "cat", "web-backup/volumes/shop/web-7d9f8/html/index.html")
    assert ok(out) == "<h1>shop</h1>\n"  # on to Velero's default, silently
    # Timed in this process: the command's own start (imports, key derivation) takes seconds
    # on a busy machine, asking the cluster must not.
    started = time.monotonic()
    with pytest.raises(Unavailable, match="no cluster reachable"):
        kube_secret("velero", str(kubeconfig)).fetch()
    assert time.monotonic() - started < 3
    err = fails(kb(str(built.root), {**env, "KUBECONFIG": str(kubeconfig)}, "cat", LEDGER_FILE))
    assert "(no cluster reachable)" in err


# -- the API the mount and the TUI use, and the writer's guard -----------------------------------


def test_bucket_view_api(built: BuiltBucket) -> None:
    with BucketView(LocalStore(built.root)) as view:
        assert [b.name for b in view.backups().items] == ["kopia-backup", "legacy-backup", "web-backup"]
        vols = {v.label: v for v in view.volumes("web-backup")}
        assert set(vols) == set(built.volumes)
        html = vols["shop/web-7d9f8/html"]
        assert (html.repository, html.uploader) == ("restic/shop", "restic")
        repo, snap = view.volume_snapshot("web-backup", html)
        assert snap.id.hex() == built.volumes["shop/web-7d9f8/html"].snapshot_id
        assert snap.hostname == "velero" and "backup=web-backup" in snap.tags
        assert repo.lookup(snap, "/index.html").size == 14
        assert view.repository("restic", "shop") is repo  # opened once
        assert "Setting up backup" in view.log("web-backup")
        assert view.unexpected_prefixes() == []


def test_writer_never_creates_another_top_level_prefix(
        tmp_path: Path, s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> None:
    record = BackupRecord(Backup(metadata=ObjectMeta(name="b1", namespace="velero")))
    local = LocalStore(tmp_path / "bsl")
    keys = write_backup(local, record)
    assert {k.split("/")[0] for k in keys} == {"backups", "metadata"}
    restore = RestoreRecord(Restore(metadata=ObjectMeta(name="r1")), log="restored\n",
                            volume_infos=[])
    assert sorted(write_restore(local, restore)) == [
        "restores/r1/r1-volumeinfo.json.gz", "restores/r1/restore-r1-itemoperations.json.gz",
        "restores/r1/restore-r1-logs.gz", "restores/r1/restore-r1-resource-list.json.gz",
        "restores/r1/restore-r1-results.gz"]
    assert sorted(p.name for p in (tmp_path / "bsl").iterdir()) == ["backups", "metadata",
                                                                     "restores"]
    view = BucketView(local)
    assert view.restore_names() == ["r1"] and view.restore_log("r1") == "restored\n"

    s3_server.start()
    bucket = s3_server.make_bucket()
    for name, value in s3_server.env().items():
        monkeypatch.setenv(name, value)
    store = open_store(f"s3:{s3_server.endpoint_url}/{bucket}/{PREFIX}")
    assert isinstance(store, S3Store)
    write_backup(store, record)
    raw = {o["Key"] for o in s3_server.client().list_objects_v2(Bucket=bucket)["Contents"]}
    assert {k.split("/")[:2][1] for k in raw} == {"backups", "metadata"}
    assert all(k.startswith(f"{PREFIX}/") for k in raw)

    for bad in ("junk/x", "backups", "../backups/x", "backups//x", "restic/../junk/x"):
        with pytest.raises(RepoError, match="refusing to write"):
            layout.check_writable(bad)
    for name in ("Upper", "../b", "a/b", ""):
        with pytest.raises(RepoError, match="not a valid backup name"):
            write_backup(local, BackupRecord(Backup(metadata=ObjectMeta(name=name))))
    local.put("junk/x", b"?")  # someone else's folder: the reader says Velero will object
    assert BucketView(local).unexpected_prefixes() == ["junk"]


def test_volume_repositories_share_one_blob_budget(built: BuiltBucket) -> None:
    """`kbrowse mount --bsl --cache-size` bounds all volumes' decrypted blobs together."""
    limit = 1024
    passwords = [default_password(), fixed("ledger", LEDGER_PASSWORD)]
    with BucketView.open(str(built.root), passwords=passwords, cache_bytes=limit) as bucket:
        views = []
        for name in bucket.backup_names():
            for vol in bucket.volumes(name):
                try:
                    view, snap = bucket.volume_snapshot(name, vol)
                except RepoError:
                    continue  # kopia, or no data in the bucket
                views.append(view)
                for rel in ("index.html", "data"):
                    try:
                        node = view.lookup(snap, rel)
                    except NotFound:
                        continue
                    assert view.read(node, 0, node.size)
        assert len({id(v) for v in views}) >= 2  # shop and ledger: two repositories
        cache = views[0].cache
        assert all(v.cache is cache for v in views) and cache.limit == limit
        assert 0 < cache._bytes <= limit or len(cache._blobs) == 1
