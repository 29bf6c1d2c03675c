"""`kbrowse mount --bsl B`: a Velero bucket (local directory, built as Velero fills one) mounted
for real: backups/<backup>/volumes/<ns>/<pod>/<volume>/ and .../resources/<res>/<ns>/<name>.yaml.

The bucket comes from tests/support/velerobucket.py: restic writes the volume data, the shop repository
has Velero's default password and the ledger one its own, and kopia-backup's volume is in a
kopia repository with a damaged format blob. Mounts run as subprocesses and are always unmounted.
"""

from __future__ import annotations

import errno
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from mover.velero.objectstore import LocalStore
from mover.velero.repopassword import DEFAULT_PASSWORD
from mover.velero.writer import BackupRecord, write_backup
from tests.fuse.test_mount import (
    _MISSING,
    KBROWSE,
    Mount,
    _is_mounted,
    _server_pids,
    _unmount,
    mounted,
)
from tests.support.restic_cli import Restic
from tests.support.s3server import S3Server
from tests.support.treekit import compare_trees
from tests.support.velerobucket import (
    BuiltBucket,
    PodVolume,
    _backup,
    _restic_backup,
    build,
    copy_to_s3,
    data_upload,
    pvc_item,
)

pytestmark = pytest.mark.skipif(_MISSING is not None, reason=f"cannot mount: {_MISSING}")

WEB = Path("backups/web-backup")
HTML = WEB / "volumes/shop/web-7d9f8/html"


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, restic_bin: str) -> BuiltBucket:
    base = tmp_path_factory.mktemp("velero-bucket")
    return build(base / "bsl", base / "node", restic_bin)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """No password in the environment and no cluster: Velero's default password only."""
    none = tmp_path_factory.mktemp("env") / "none"
    keep = {k: v for k, v in os.environ.items()
            if not k.startswith(("RESTIC_", "AWS_", "KUBECONFIG"))}
    return {**keep, "TZ": "UTC", "KUBECONFIG": str(none)}


def _mount_cmd(bsl: Path, mp: Path, *extra: str) -> list[str]:
    return [*KBROWSE, "mount", "--bsl", os.fspath(bsl), os.fspath(mp), *extra]


@pytest.fixture(scope="module")
def bucket_mount(built: BuiltBucket, env: dict[str, str], tmp_path_factory: pytest.TempPathFactory,
                 monkeypatch_module: None) -> Iterator[Mount]:
    mp = tmp_path_factory.mktemp("bmnt") / "m"
    with mounted(_mount_cmd(built.root, mp, "--foreground"), mp) as m:
        yield m


@pytest.fixture(scope="module")
def monkeypatch_module(env: dict[str, str]) -> Iterator[None]:
    """tests.fuse.test_mount.mounted runs its command in tests.fuse.test_mount._env(): give it ours."""
    import tests.fuse.test_mount as tm

    saved = tm._env
    tm._env = lambda: dict(env)
    try:
        yield
    finally:
        tm._env = saved


def kb(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "kbrowse.cli", *args], env=env,
                          capture_output=True, stdin=subprocess.DEVNULL, timeout=60, check=False)


# ---- listing ---------------------------------------------------------------------------------

def test_listing_of_backups_volumes_and_resources(bucket_mount: Mount) -> None:
    root = bucket_mount.path
    assert os.listdir(root) == ["backups"]
    assert sorted(os.listdir(root / "backups")) == ["kopia-backup", "legacy-backup", "web-backup"]
    assert sorted(os.listdir(root / WEB)) == ["resources", "volumes"]
    assert sorted(os.listdir(root / WEB / "volumes")) == ["ledger", "shop"]
    assert os.listdir(root / WEB / "volumes/shop") == ["web-7d9f8"]
    assert sorted(os.listdir(root / WEB / "volumes/shop/web-7d9f8")) == ["cache", "html"]
    assert os.listdir(root / WEB / "volumes/ledger/db-0") == ["data"]
    assert sorted(os.listdir(root / WEB / "resources")) == [
        "clusterroles.rbac.authorization.k8s.io", "configmaps", "deployments.apps", "namespaces",
        "persistentvolumeclaims", "pods", "secrets", "services"]
    assert os.listdir(root / WEB / "resources/deployments.apps") == ["shop"]
    assert os.listdir(root / WEB / "resources/deployments.apps/shop") == ["web.yaml"]
    assert os.listdir(root / WEB / "resources/namespaces") == ["_cluster"]
    assert os.listdir(root / WEB / "resources/clusterroles.rbac.authorization.k8s.io/_cluster") == [
        "web-reader.yaml"]
    assert os.listdir(root / "backups/legacy-backup/volumes/shop/web-7d9f8") == ["html"]
    # virtual entries: read-only directories and files, the backup's time
    st = os.stat(root / WEB / "volumes/shop")
    assert (st.st_mode & 0o7777, st.st_mode >> 12) == (0o555, 0o4)
    f = os.stat(root / WEB / "resources/deployments.apps/shop/web.yaml")
    assert f.st_mode == 0o100444 and f.st_nlink == 1
    assert f.st_mtime_ns == st.st_mtime_ns > 0
    for p in ("missing", "web-backup/nothing", "web-backup/volumes/shop/nobody"):
        with pytest.raises(FileNotFoundError):
            os.stat(root / "backups" / p)


# ---- resources -------------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["deployments.apps/shop/web", "configmaps/shop/web-config",
                                  "clusterroles.rbac.authorization.k8s.io/_cluster/web-reader",
                                  "namespaces/_cluster/shop"])
def test_resource_yaml_equals_kbrowse_cat(bucket_mount: Mount, built: BuiltBucket,
                                          env: dict[str, str], path: str) -> None:
    cat = kb(env, "--bsl", os.fspath(built.root), "cat", f"web-backup/resources/{path}")
    assert cat.returncode == 0, cat.stderr.decode()
    f = bucket_mount.path / WEB / "resources" / f"{path}.yaml"
    assert os.stat(f).st_size == len(cat.stdout)  # stat is right before any read
    assert f.read_bytes() == cat.stdout
    with open(f, "rb") as fh:  # reads at offsets
        fh.seek(5)
        assert fh.read(7) == cat.stdout[5:12]


# ---- volumes ---------------------------------------------------------------------------------

def test_pod_volume_files_equal_the_source(bucket_mount: Mount, built: BuiltBucket) -> None:
    vol = bucket_mount.path / HTML
    src = built.volume_dirs["shop/web-7d9f8/html"]
    for rel, data in built.volumes["shop/web-7d9f8/html"].files.items():
        assert (vol / rel).read_bytes() == data
        assert os.stat(vol / rel).st_size == len(data)
    for name in ("img", "deep"):  # the snapshot's own directories: a faithful tree
        assert compare_trees(src / name, vol / name) == []
    assert (bucket_mount.path / WEB / "volumes/shop/web-7d9f8/cache/cache.db").read_bytes() == \
        b"\0" * 4096
    legacy = bucket_mount.path / "backups/legacy-backup/volumes/shop/web-7d9f8/html/index.html"
    assert legacy.read_bytes() == b"<h1>old shop</h1>\n"


def test_s3_bucket_mount_with_a_small_cache(built: BuiltBucket, env: dict[str, str],
                                            s3_bucket: str, s3_server: S3Server,
                                            tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same bucket in SeaweedFS; a 64 KiB blob cache shared by all volume repositories
    still reads every file right (blobs are evicted and fetched again)."""
    copy_to_s3(built.root, s3_server.client(), s3_bucket, "velero")
    url = f"s3:{s3_server.endpoint_url}/{s3_bucket}/velero"
    import tests.fuse.test_mount as tm

    monkeypatch.setattr(tm, "_env", lambda: {**env, **s3_server.env(),
                                             "AWS_CONFIG_FILE": os.fspath(tmp_path / "none"),
                                             "AWS_SHARED_CREDENTIALS_FILE": os.fspath(tmp_path / "none")})
    mp = tmp_path / "m"
    with mounted(_mount_cmd(url, mp, "--foreground", "--cache-size", "64K"), mp) as m:
        assert sorted(os.listdir(m.path / "backups")) == ["kopia-backup", "legacy-backup",
                                                          "web-backup"]
        for _ in range(2):
            for rel, data in built.volumes["shop/web-7d9f8/html"].files.items():
                assert (m.path / HTML / rel).read_bytes() == data
        src = built.volume_dirs["shop/web-7d9f8/html"]
        assert compare_trees(src / "deep", m.path / HTML / "deep") == []
        assert os.listdir(m.path / WEB / "volumes/ledger/db-0") == ["data"]
        yaml = (m.path / WEB / "resources/deployments.apps/shop/web.yaml").read_text()
        assert "kind: Deployment" in yaml


def test_backups_that_come_and_go_while_mounted(built: BuiltBucket, tmp_path: Path,
                                                monkeypatch_module: None) -> None:
    bsl = tmp_path / "bsl"
    shutil.copytree(built.root, bsl, symlinks=True)
    parked = tmp_path / "parked"
    parked.mkdir()
    (bsl / "backups/legacy-backup").rename(parked / "legacy-backup")
    with mounted(_mount_cmd(bsl, tmp_path / "m", "--foreground"), tmp_path / "m") as m:
        backups = m.path / "backups"
        assert sorted(os.listdir(backups)) == ["kopia-backup", "web-backup"]
        assert (m.path / HTML / "index.html").read_bytes() == b"<h1>shop</h1>\n"  # opens shop
        # Velero uploads a finished backup and deletes another
        (parked / "legacy-backup").rename(bsl / "backups/legacy-backup")
        shutil.rmtree(bsl / "backups/kopia-backup")
        deadline = time.monotonic() + 20
        while "legacy-backup" not in os.listdir(backups) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert sorted(os.listdir(backups)) == ["legacy-backup", "web-backup"]
        old = backups / "legacy-backup/volumes/shop/web-7d9f8/html/index.html"
        assert old.read_bytes() == b"<h1>old shop</h1>\n"


def test_unopenable_volume_is_an_error_of_that_directory(bucket_mount: Mount) -> None:
    root = bucket_mount.path
    # the ledger repository has its own password: stat works (nothing opened), entering fails
    ledger = root / WEB / "volumes/ledger/db-0/data"
    assert os.path.isdir(ledger)
    with pytest.raises(PermissionError):
        os.listdir(ledger)
    with pytest.raises(PermissionError):
        (ledger / "ledger.csv").read_bytes()
    kopia = root / "backups/kopia-backup/volumes/shop/web-7d9f8/html"
    with pytest.raises(OSError) as e:
        os.listdir(kopia)
    assert e.value.errno == errno.EIO
    assert os.path.ismount(root) and bucket_mount.proc.poll() is None
    assert (root / HTML / "index.html").read_bytes() == b"<h1>shop</h1>\n"
    log = bucket_mount.log.read_text(errors="replace")
    assert f"kbrowse mount: error: /{WEB}/volumes/ledger/db-0/data: cannot open" in log, log
    assert "no password opens repository" in log, log
    assert "kopia" in log, log


# ---- read-only -------------------------------------------------------------------------------

def test_every_write_is_erofs(bucket_mount: Mount) -> None:
    root = bucket_mount.path
    yml = root / WEB / "resources/deployments.apps/shop/web.yaml"
    index = root / HTML / "index.html"
    attempts = {
        "create a resource": lambda: os.open(yml.with_name("new.yaml"), os.O_CREAT | os.O_WRONLY),
        "open a resource for writing": lambda: os.open(yml, os.O_WRONLY),
        "open a volume file for writing": lambda: os.open(index, os.O_RDWR),
        "truncate": lambda: os.truncate(yml, 0),
        "mkdir in backups": lambda: os.mkdir(root / "backups/new"),
        "mkdir in a volume": lambda: os.mkdir(root / HTML / "new"),
        "rmdir": lambda: os.rmdir(root / HTML / "deep/a/b"),
        "unlink": lambda: os.unlink(yml),
        "rename": lambda: os.rename(index, root / HTML / "moved"),
        "symlink": lambda: os.symlink("x", root / WEB / "volumes/link"),
        "chmod": lambda: os.chmod(yml, 0o644),
        "utime": lambda: os.utime(index, (0, 0)),
        "setxattr": lambda: os.setxattr(yml, "user.x", b"1"),
    }
    for what, attempt in attempts.items():
        with pytest.raises(OSError) as e:
            attempt()
        assert e.value.errno == errno.EROFS, f"{what}: {e.value}"


# ---- mounting and unmounting -----------------------------------------------------------------

def test_background_bucket_mount_and_kbrowse_umount(built: BuiltBucket, env: dict[str, str],
                                                    tmp_path: Path) -> None:
    mp = tmp_path / "m"
    mp.mkdir()
    try:
        proc = kb(env, "mount", "--bsl", os.fspath(built.root), os.fspath(mp))
        assert proc.returncode == 0, proc.stderr.decode()
        assert (mp / HTML / "deep/a/b/c.txt").read_bytes() == b"deep\n"
        proc = kb(env, "umount", os.fspath(mp))
        assert proc.returncode == 0, proc.stderr.decode()
        assert not _is_mounted(mp)
        deadline = time.monotonic() + 15
        while _server_pids(mp) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _server_pids(mp), "the serving process did not exit after umount"
    finally:
        _unmount(mp)


def test_sigterm_unmounts_cleanly(built: BuiltBucket, tmp_path: Path,
                                  monkeypatch_module: None) -> None:
    with mounted(_mount_cmd(built.root, tmp_path / "m", "--foreground"), tmp_path / "m") as m:
        assert (m.path / HTML / "index.html").read_bytes() == b"<h1>shop</h1>\n"
        m.proc.send_signal(signal.SIGTERM)
        assert m.proc.wait(timeout=15) == 0, m.log.read_text(errors="replace")
        assert not _is_mounted(m.path)


@pytest.mark.parametrize("problem", ["not a bucket", "with -r", "with a SNAPSHOT"])
def test_bad_bucket_mount_is_a_one_line_error(built: BuiltBucket, env: dict[str, str],
                                              tmp_path: Path, problem: str) -> None:
    mp = tmp_path / "m"
    mp.mkdir()
    args = {"not a bucket": ["--bsl", os.fspath(tmp_path / "nowhere")],
            "with -r": ["--bsl", os.fspath(built.root), "-r", os.fspath(built.root)],
            "with a SNAPSHOT": ["--bsl", os.fspath(built.root)]}[problem]
    extra = ["latest"] if problem == "with a SNAPSHOT" else []
    proc = kb(env, "mount", *args, os.fspath(mp), *extra)
    err = proc.stderr.decode()
    assert proc.returncode != 0 and err.count("\n") == 1 and "Traceback" not in err, err
    assert not _is_mounted(mp)


def test_the_demo_s_data_mover_claim_is_a_directory_of_the_mount(
        tmp_path: Path, env: dict[str, str], monkeypatch_module: None) -> None:
    """A claim moved from its CSI snapshot has no pod: it sits under volumes/<ns>/_pvc/."""
    from kbrowse.demo import run_demo

    demo = run_demo(tmp_path / "demo")
    mp = tmp_path / "m"
    with mounted(_mount_cmd(demo.bucket, mp, "--foreground"), mp) as m:
        vols = m.path / "backups/shop-daily-1/volumes/shop"
        assert sorted(os.listdir(vols)) == ["_pvc", "web-0"]
        assert os.listdir(vols / "_pvc") == ["db-data"]
        assert os.listdir(vols / "_pvc/db-data/pgdata/pg_wal") == ["000000010000000000000001"]
        conf = vols / "_pvc/db-data/pgdata/postgresql.conf"
        assert conf.read_bytes() == (demo.db_source / "pgdata/postgresql.conf").read_bytes()
        assert "workers: 4" in (vols / "web-0/data/config/app.yaml").read_text()  # before day 2's edit


def test_a_block_claim_is_its_device_file(tmp_path: Path, env: dict[str, str], restic_bin: str,
                                          monkeypatch_module: None) -> None:
    """A block claim (volumeMode Block) moved into a restic repository is one file in the mount,
    the device's bytes, as `kbrowse cat` reads it (kopia's: tests/kopia/test_kopia_bsl.py)."""
    bsl = tmp_path / "bsl"
    restic = Restic(os.fspath(bsl / "restic/shop"), DEFAULT_PASSWORD, binary=restic_bin)
    restic.init(version=2)
    disk = tmp_path / "disk"
    disk.mkdir()
    device = os.urandom(3 << 20)
    (disk / "disk").write_bytes(device)
    uid = str(uuid.uuid4())
    snap = _restic_backup(restic, disk, PodVolume("shop", "", "disk", "disk", {}), "blocks", uid)
    items = [pvc_item("shop", "disk", "Block")]
    write_backup(LocalStore(bsl), BackupRecord(
        backup=_backup("blocks", uid, ["shop"], len(items)), items=items,
        volume_infos=[data_upload("shop", "disk", "restic", snap[:8], len(device))]))
    with mounted(_mount_cmd(bsl, tmp_path / "m", "--foreground"), tmp_path / "m") as m:
        pvcs = m.path / "backups/blocks/volumes/shop/_pvc"
        assert [(e.name, e.is_file()) for e in os.scandir(pvcs)] == [("disk", True)]
        st = os.stat(pvcs / "disk")
        assert stat.S_ISREG(st.st_mode) and st.st_size == len(device)
        assert (pvcs / "disk").read_bytes() == device
        with pytest.raises(NotADirectoryError):
            os.listdir(pvcs / "disk")
