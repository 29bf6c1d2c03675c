"""The velero-shaped kbrowse commands (backup, restore, schedule, backup-location) through the
real CLI, against the API double with `mover server` running and a SeaweedFS bucket."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from kbrowse.cli import main
from kbrowse.cluster.wait import wait
from mover.kube.framework.client import Kube
from mover.kube.resources import BACKUPS, BSLS, NAMESPACES, RESTORES, SCHEDULES
from tests.support.kubeapi.fixtures import KubeApi, kube_api  # noqa: F401 - fixture
from tests.support.s3server import S3Server
from tests.kube.test_controllers import make_app
from tests.support.velero_env import (
    CONFIGMAPS,
    DEPLOYMENTS,
    NS,
    credentials_secret,
    install,
    phase,
    running_server,
    s3_location,
    wait_for,
)


@dataclass
class Result:
    code: int
    out: str
    err: str


Run = Callable[..., Result]


@pytest.fixture
def cluster(kube_api: KubeApi, s3_server: S3Server, s3_bucket: str) -> Iterator[Kube]:  # noqa: F811
    kube = Kube(kube_api.api_client())
    install(kube)
    s3_location(kube, s3_server, s3_bucket, credential=credentials_secret(kube, s3_server))
    make_app(kube)
    with running_server(kube):
        yield kube


@pytest.fixture
def kbrowse(kube_api: KubeApi, capsys: pytest.CaptureFixture[str]) -> Run:  # noqa: F811
    """`kbrowse ARGS... --kubeconfig K`, in this process (the server runs in a thread here)."""
    def run(*args: str) -> Result:
        capsys.readouterr()
        with pytest.raises(SystemExit) as exit_:
            main([*args, "--kubeconfig", str(kube_api.kubeconfig_path)])
        out, err = capsys.readouterr()
        assert "Traceback" not in err
        return Result(exit_.value.code, out, err)
    return run


def rows(table: str) -> list[list[str]]:
    return [re.split(r"\s{3,}", line.strip()) for line in table.splitlines()]


def test_backup_commands(cluster: Kube, kbrowse: Run) -> None:
    done = kbrowse("backup", "create", "shop-1", "--include-namespaces", "shop", "--selector", "app=web", "--wait")
    assert done.code == 0, done.err
    assert 'Backup request "shop-1" submitted successfully.' in done.out
    assert "Backup completed with status: Completed." in done.out
    assert re.search(r"backup shop-1: Completed \(\d+/\d+ items\)", done.err)
    backup = cluster.get(BACKUPS, NS, "shop-1")
    assert backup["spec"]["labelSelector"] == {"matchLabels": {"app": "web"}}

    table = rows(kbrowse("backup", "get").out)
    assert table[0] == ["NAME", "STATUS", "ERRORS", "WARNINGS", "CREATED", "EXPIRES", "STORAGE LOCATION",
                        "SELECTOR"]
    name, status, errors, warnings, created, expires, location, selector = table[1]
    assert (name, status, errors, warnings, expires, location, selector) == \
        ("shop-1", "Completed", "0", "0", "29d", "default", "app=web")
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{4} \w+", created)
    as_json = json.loads(kbrowse("backup", "get", "shop-1", "-o", "json").out)
    assert as_json["metadata"]["name"] == "shop-1" and as_json["status"]["phase"] == "Completed"
    listed = yaml.safe_load(kbrowse("backup", "get", "-o", "yaml").out)
    assert listed["kind"] == "BackupList" and len(listed["items"]) == 1

    described = kbrowse("backup", "describe", "shop-1", "--details").out
    for line in ("Phase:  Completed", "  Included:  shop", "Label selector:  app=web", "Storage Location:  default",
                 "TTL:  720h0m0s", "Backup Format Version:  1.1.0", "Resource List:", "  apps/v1/Deployment:",
                 "    - shop/web", "Items backed up:              4"):
        assert line in described.splitlines(), line
    logs = kbrowse("backup", "logs", "shop-1")
    assert logs.code == 0 and 'msg="Backed up a total of 4 items" backup=velero/shop-1' in logs.out

    failed = kbrowse("backup", "create", "nowhere", "--storage-location", "nowhere", "--wait")
    assert failed.code == 1 and "Backup completed with status: FailedValidation." in failed.out
    assert "was not found" in kbrowse("backup", "describe", "nowhere").out

    restored = kbrowse("restore", "create", "--from-backup", "shop-1", "--namespace-mappings", "shop:shop-2",
                       "--wait")
    assert restored.code == 0, restored.err
    restore_name = re.search(r'Restore request "(shop-1-\d{14})" submitted', restored.out).group(1)
    assert "Restore completed with status: Completed." in restored.out
    assert cluster.get(DEPLOYMENTS, "shop-2", "web")["metadata"]["labels"]["velero.io/restore-name"] == restore_name
    assert cluster.get_or_none(CONFIGMAPS, "shop-2", "scratch") is None
    table = rows(kbrowse("restore", "get").out)
    assert table[0][:3] == ["NAME", "BACKUP", "STATUS"] and table[1][:3] == [restore_name, "shop-1", "Completed"]
    described = kbrowse("restore", "describe", restore_name).out
    assert "Namespace mappings:  shop=shop-2" in described and "Backup:  shop-1" in described
    assert 'msg="created namespace shop-2"' in kbrowse("restore", "logs", restore_name).out

    # On a terminal the wait draws a rich bar instead of lines; it ends the same way.
    assert phase(wait(cluster, BACKUPS, NS, "shop-1", "backup", interactive=True)) == "Completed"

    deleted = kbrowse("backup", "delete", "shop-1", "--confirm")
    assert deleted.code == 0 and 'Request to delete backup "shop-1" submitted successfully.' in deleted.out
    wait_for(lambda: cluster.get_or_none(BACKUPS, NS, "shop-1"), lambda b: b is None, what="the deletion")
    assert cluster.get_or_none(RESTORES, NS, restore_name) is None


def test_schedule_commands(cluster: Kube, kbrowse: Run) -> None:
    made = kbrowse("schedule", "create", "nightly", "--schedule", "0 3 * * *", "--include-namespaces", "shop",
                   "--ttl", "48h", "--skip-immediately")
    assert made.code == 0 and 'Schedule "nightly" created successfully.' in made.out
    wait_for(lambda: cluster.get(SCHEDULES, NS, "nightly"), lambda s: phase(s) == "Enabled")
    table = rows(kbrowse("schedule", "get").out)
    assert table[0] == ["NAME", "STATUS", "CREATED", "SCHEDULE", "BACKUP TTL", "LAST BACKUP", "SELECTOR", "PAUSED"]
    assert [table[1][i] for i in (0, 1, 3, 4, 5, 6, 7)] == ["nightly", "Enabled", "0 3 * * *", "48h0m0s", "n/a",
                                                             "<none>", "false"]
    assert "paused successfully" in kbrowse("schedule", "pause", "nightly").out
    assert rows(kbrowse("schedule", "get", "nightly").out)[1][-1] == "true"
    assert "already paused" in kbrowse("schedule", "pause", "nightly").out
    assert "unpaused successfully" in kbrowse("schedule", "unpause", "nightly", "--skip-immediately").out
    assert cluster.get(SCHEDULES, NS, "nightly")["spec"]["paused"] is False

    on_demand = kbrowse("backup", "create", "--from-schedule", "nightly", "--wait")
    assert on_demand.code == 0, on_demand.err
    name = re.search(r'Backup request "(nightly-\d{14})"', on_demand.out).group(1)
    backup = cluster.get(BACKUPS, NS, name)
    assert backup["metadata"]["labels"]["velero.io/schedule-name"] == "nightly"
    assert backup["spec"]["ttl"] == "48h0m0s" and backup["spec"]["includedNamespaces"] == ["shop"]

    bad = kbrowse("schedule", "create", "broken", "--schedule", "at noon")
    assert bad.code == 1 and "invalid --schedule" in bad.err
    assert "Schedule deleted: nightly" in kbrowse("schedule", "delete", "nightly", "--confirm").out
    assert cluster.get_or_none(SCHEDULES, NS, "nightly") is None
    assert cluster.get(BACKUPS, NS, name)  # a schedule's backups outlive it


def test_backup_location_and_dry_runs(cluster: Kube, kbrowse: Run, s3_bucket: str) -> None:
    wait_for(lambda: cluster.get(BSLS, NS, "default"), lambda b: phase(b) == "Available")
    table = rows(kbrowse("backup-location", "get").out)
    assert table[0] == ["NAME", "PROVIDER", "BUCKET/PREFIX", "PHASE", "LAST VALIDATED", "ACCESS MODE", "DEFAULT"]
    assert [table[1][i] for i in (0, 1, 2, 3, 5, 6)] == ["default", "aws", s3_bucket, "Available", "ReadWrite",
                                                          "true"]
    printed = kbrowse("backup", "create", "dry", "--include-namespaces", "shop,blog", "--exclude-resources",
                      "secrets", "--or-selector", "app=web or tier=db", "--snapshot-move-data", "-o", "yaml")
    assert printed.code == 0
    doc = yaml.safe_load(printed.out)
    assert doc["spec"] == {"includedNamespaces": ["shop", "blog"], "excludedResources": ["secrets"],
                           "orLabelSelectors": [{"matchLabels": {"app": "web"}}, {"matchLabels": {"tier": "db"}}],
                           "snapshotMoveData": True}
    assert cluster.get_or_none(BACKUPS, NS, "dry") is None  # -o prints, it does not submit
    restore = yaml.safe_load(kbrowse("restore", "create", "r", "--from-backup", "b", "--existing-resource-policy",
                                     "update", "-o", "yaml").out)
    assert restore["spec"]["existingResourcePolicy"] == "update" and restore["spec"]["backupName"] == "b"
    assert cluster.get_or_none(NAMESPACES, None, "blog") is None


def test_errors_are_one_line(tmp_path: Path) -> None:
    """Through the installed entry point: no cluster, no traceback, a non-zero exit."""
    proc = subprocess.run([sys.executable, "-m", "kbrowse.cli", "backup", "get", "--kubeconfig",
                           str(tmp_path / "nothing")], capture_output=True, text=True, timeout=60, check=False,
                          cwd=Path(__file__).parent.parent)
    assert proc.returncode == 1
    assert proc.stderr.startswith("kbrowse: error: ") and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
