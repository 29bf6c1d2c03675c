"""mover, restic 0.14 and kbrowse on the same S3 server (SeaweedFS), both ways, and an outage.

- mover writes to S3; `restic check --read-data` accepts it and `restic restore` gives the
  source tree back;
- restic writes to S3; `kbrowse cp` gives the source tree back;
- the server dies in the middle of a `mover backup`: one clear error line, no hang (bounded
  retries), a repository restic still accepts, and a retry after the restart completes.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.mover_cli import TEST_PASSWORD, Mover
from tests.support.restic_cli import Restic
from tests.support.s3server import S3Server
from tests.support.treekit import assert_same_tree

MiB = 1024 * 1024
IS_ROOT = os.geteuid() == 0


@pytest.fixture
def env(s3_server: S3Server, tmp_path: Path) -> dict[str, str]:
    """The server's credentials, and nothing from the developer's AWS set-up."""
    return {**s3_server.env(), "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials"),
            "AWS_EC2_METADATA_DISABLED": "true"}


def url(server: S3Server, bucket: str, prefix: str = "velero/restic/demo") -> str:
    return f"s3:{server.endpoint_url}/{bucket}/{prefix}"


def assert_restic_accepts(r: Restic, read_data: bool) -> str:
    proc = r.check(read_data=read_data)
    assert proc.returncode == 0, f"restic check failed:\n{proc.stdout}\n{proc.stderr}"
    assert "no errors were found" in proc.stdout
    return proc.stdout


def test_mover_writes_restic_reads(
    full_tree: tuple[Path, dict], tmp_path: Path, s3_server: S3Server, s3_bucket: str,
    restic_bin: str, env: dict[str, str],
) -> None:
    root, _ = full_tree
    repo = url(s3_server, s3_bucket)
    m = Mover(repo, env_extra=env)
    m.init()
    summary = m.backup(["."], cwd=root, host="velero", tags=["backup=b1", "volume=data"])
    assert summary["_returncode"] == 0 and summary["errors"] == 0

    r = Restic(repo, TEST_PASSWORD, env_extra=env, binary=restic_bin)
    assert_restic_accepts(r, read_data=True)
    (snap,) = r.snapshots()
    assert snap["id"] == summary["snapshot_id"]
    r.restore("latest", tmp_path / "restored")
    assert_same_tree(root, tmp_path / "restored", check_owner=IS_ROOT)


def test_restic_writes_kbrowse_reads(
    full_tree: tuple[Path, dict], tmp_path: Path, s3_server: S3Server, s3_bucket: str,
    restic_bin: str, env: dict[str, str],
) -> None:
    root, _ = full_tree
    repo = url(s3_server, s3_bucket)
    r = Restic(repo, TEST_PASSWORD, env_extra=env, binary=restic_bin)
    r.init()
    snap = r.backup(["."], cwd=root, host="velero", extra=["--with-atime"])

    proc = subprocess.run(
        [sys.executable, "-m", "kbrowse.cli", "-r", repo, "cp", f"{snap[:8]}:/",
         tmp_path / "restored"],
        env={**os.environ, **env, "RESTIC_PASSWORD": TEST_PASSWORD}, capture_output=True,
        text=True, stdin=subprocess.DEVNULL, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "restored" in proc.stdout
    assert_same_tree(root, tmp_path / "restored", check_atime=True, check_owner=IS_ROOT)


def _data_objects(server: S3Server, bucket: str, prefix: str) -> list[str]:
    page = server.client().list_objects_v2(Bucket=bucket, Prefix=f"{prefix}/data/")
    return [o["Key"] for o in page.get("Contents", ())]


def test_server_stops_mid_backup(
    tmp_path: Path, s3_server: S3Server, s3_bucket: str, restic_bin: str, env: dict[str, str],
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    # 384 MiB: 24 packs through 4 upload threads, so the backup is still sending when the
    # first pack is listed (with 8 packs a quiet machine stored them all before the kill)
    for i in range(12):
        (src / f"part-{i}.bin").write_bytes(os.urandom(32 * MiB))
    prefix = "velero/restic/big"
    repo = url(s3_server, s3_bucket, prefix)
    m = Mover(repo, env_extra=env)
    m.init()

    cmd = [sys.executable, "-m", "mover.cli", "-r", repo, "backup", "."]
    backup = subprocess.Popen(cmd, cwd=src, env=m.env, stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not _data_objects(s3_server, s3_bucket, prefix):
            assert backup.poll() is None, "the backup ended before its first pack was stored"
            assert time.monotonic() < deadline, "no pack stored within 60 s"
            time.sleep(0.02)
        s3_server.stop()
        stopped = time.monotonic()
        out, err = backup.communicate(timeout=120)
        waited = time.monotonic() - stopped
    finally:
        backup.kill()
        s3_server.start()

    # Bounded retries: the default RetryPolicy gives up after 20 s, not never.
    assert waited < 45, f"mover took {waited:.0f} s to give up"
    assert backup.returncode not in (0, None)
    assert "Traceback" not in out + err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("mover: error: cannot reach S3 endpoint ") and \
        lines[0].endswith("is the URL right and the server up?"), err

    # restic accepts what is there: a stale lock (removed by `restic unlock`) and packs no
    # index names (check says they can be pruned), never an error.
    r = Restic(repo, TEST_PASSWORD, env_extra=env, binary=restic_bin)
    assert r.snapshots() == []
    r.run("unlock")
    assert "not referenced in any index" in assert_restic_accepts(r, read_data=False)

    retry = m.backup(["."], cwd=src)
    assert retry["_returncode"] == 0
    assert_restic_accepts(r, read_data=True)
    assert [s["id"] for s in r.snapshots()] == [retry["snapshot_id"]]
