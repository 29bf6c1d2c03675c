"""A kopia repository in S3 (SeaweedFS), under a prefix as Velero lays it out
(``kopia/<namespace>/``): kbrowse lists, reads and restores it with range reads, as kopia does."""

from __future__ import annotations

import json
import os
from pathlib import Path
from urllib.parse import urlparse

from tests.kopia.kopia_cli import Kopia, kb, restore_differences
from tests.support.s3server import S3Server
from tests.support.treekit import make_full_tree


def test_s3_repository_reads_like_kopia(tmp_path: Path, s3_server: S3Server, s3_bucket: str) -> None:
    src = tmp_path / "src"
    make_full_tree(src)
    aws = {**s3_server.env(), "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
           "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials"),
           "AWS_EC2_METADATA_DISABLED": "true"}
    k = Kopia(tmp_path / "kopia", env_extra=aws)
    endpoint = urlparse(s3_server.endpoint_url)
    k.run("repository", "create", "s3", "--bucket", s3_bucket, "--endpoint", endpoint.netloc,
          "--disable-tls", "--region", s3_server.region, "--prefix", "velero/kopia/demo/",
          "--access-key", s3_server.access_key, "--secret-access-key", s3_server.secret_key)
    k.snapshot(src)
    (src / "later.bin").write_bytes(os.urandom(5 << 20))
    snap = k.snapshot(src)

    repo = f"s3:{s3_server.endpoint_url}/{s3_bucket}/velero/kopia/demo"
    ours = json.loads(kb(repo, "snapshots", "--json", env_extra=aws).stdout)
    assert [s["id"] for s in ours] == [s["id"] for s in k.snapshots()]

    theirs, mine = tmp_path / "kopia-restore", tmp_path / "kbrowse-restore"
    k.restore(snap, theirs)
    proc = kb(repo, "cp", f"{snap}:/", mine, env_extra=aws)
    assert proc.returncode == 0, proc.stderr.decode()
    assert restore_differences(mine, theirs) == []
    cat = kb(repo, "cat", f"{snap[:10]}:/later.bin", env_extra=aws)
    assert cat.returncode == 0, cat.stderr.decode()
    assert cat.stdout == (theirs / "later.bin").read_bytes()
