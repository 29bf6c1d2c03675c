"""`kbrowse demo`: the bucket it writes is Velero's layout, restic 0.14 reads its repository,
and `kbrowse --bsl` reaches both of its volumes (the pod volume and the data-mover claim)."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import pytest

from kbrowse import demo as demo_mod
from kbrowse.demo import Demo, run_demo
from mover.velero.repopassword import DEFAULT_PASSWORD
from tests.support.restic_cli import Restic

KBROWSE = str(Path(sys.executable).with_name("kbrowse"))


def kbrowse(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([KBROWSE, *args], capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if check and proc.returncode != 0:
        raise AssertionError(f"kbrowse {' '.join(args)} exited {proc.returncode}: {proc.stderr}")
    return proc


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Demo, str]:
    """The demo as a newcomer runs it (no terminal: it prints and does not open the app)."""
    root = tmp_path_factory.mktemp("demo") / "kbrowse-demo"
    out = kbrowse("demo", "--dir", str(root)).stdout
    return Demo(root), out


def gz_json(path: Path) -> object:
    return json.loads(gzip.decompress(path.read_bytes()))


def test_demo_prints_the_backups_and_what_to_try(built: tuple[Demo, str]) -> None:
    demo, out = built
    assert "building a Velero bucket" in out
    table = [line.split()[:2] for line in out.splitlines() if line.startswith("shop-daily-")]
    assert table == [["shop-daily-1", "Completed"], ["shop-daily-2", "Completed"]]
    assert f"kbrowse --bsl {demo.bucket} describe shop-daily-2" in out
    again = kbrowse("demo", "--dir", str(demo.root)).stdout  # a complete demo is not rebuilt
    assert "building" not in again and "shop-daily-2" in again


def test_velero_files_describe_both_volumes(built: tuple[Demo, str]) -> None:
    demo, _ = built
    d2 = demo.bucket / "backups" / "shop-daily-2"
    (pvb,) = gz_json(d2 / "shop-daily-2-podvolumebackups.json.gz")
    assert pvb["kind"] == "PodVolumeBackup" and pvb["status"]["phase"] == "Completed"
    assert pvb["spec"]["pod"]["name"] == "web-0" and pvb["spec"]["volume"] == "data"
    infos = {i["backupMethod"]: i for i in gz_json(d2 / "shop-daily-2-volumeinfo.json.gz")}
    assert set(infos) == {"PodVolumeBackup", "CSISnapshot"}
    moved = infos["CSISnapshot"]
    assert moved["snapshotDataMoved"] is True and moved["pvcName"] == "db-data"
    movement = moved["snapshotDataMovementInfo"]
    assert movement["dataMover"] == "velero" and movement["phase"] == "Completed"
    assert movement["operationID"].startswith("du-")
    (operation,) = gz_json(d2 / "shop-daily-2-itemoperations.json.gz")
    assert operation["spec"]["operationID"] == movement["operationID"]
    backup = json.loads((d2 / "velero-backup.json").read_text())
    assert backup["spec"]["snapshotMoveData"] is True and backup["status"]["phase"] == "Completed"
    resources = gz_json(d2 / "shop-daily-2-resource-list.json.gz")
    assert resources["velero.io/v2alpha1/DataUpload"] == ["velero/shop-daily-2-x7k2p"]

    # restic itself reads the repository: tags as Velero's uploaders write them, parents chained
    restic = Restic(str(demo.repo_path), DEFAULT_PASSWORD)
    restic.run("check")
    snaps = json.loads(restic.run("snapshots", "--json").stdout)
    assert len(snaps) == 4 and {s["hostname"] for s in snaps} == {"velero"}
    fs = sorted((s for s in snaps if "volume=data" in s["tags"]), key=lambda s: s["time"])
    assert [f"backup=shop-daily-{n}" in s["tags"] for n, s in ((1, fs[0]), (2, fs[1]))] == [True, True]
    assert {t.split("=")[0] for t in fs[1]["tags"]} == {
        "backup", "backup-uid", "ns", "pod", "pod-uid", "volume", "pvc-uid"}
    assert fs[1]["parent"] == fs[0]["id"] and pvb["status"]["snapshotID"] == fs[1]["short_id"]
    du = sorted((s for s in snaps if "snapshot-requester=snapshot-data-upload-download" in s["tags"]),
                key=lambda s: s["time"])
    assert len(du) == 2 and du[1]["parent"] == du[0]["id"]
    assert f"velero.io/async-operation-id={movement['operationID']}" in du[1]["tags"]
    assert movement["snapshotHandle"] == du[1]["id"]


def test_bsl_commands_reach_both_volumes(built: tuple[Demo, str]) -> None:
    demo, _ = built
    bsl = ["--bsl", str(demo.bucket)]
    assert kbrowse(*bsl, "ls", "shop-daily-2/volumes/shop").stdout.split() == ["_pvc", "web-0"]
    assert kbrowse(*bsl, "ls", "shop-daily-2/volumes/shop/_pvc").stdout.split() == ["db-data"]
    conf = kbrowse(*bsl, "cat", "shop-daily-2/volumes/shop/_pvc/db-data:/pgdata/postgresql.conf").stdout
    assert conf == (demo.db_source / "pgdata" / "postgresql.conf").read_text()
    wal = kbrowse(*bsl, "ls", "shop-daily-1/volumes/shop/_pvc/db-data/pgdata/pg_wal").stdout.split()
    assert wal == ["000000010000000000000001"]  # the first backup, before the second segment
    app_yaml = kbrowse(*bsl, "cat", "shop-daily-1/volumes/shop/web-0/data:/config/app.yaml").stdout
    assert "workers: 4" in app_yaml  # the day-2 edit is not in the first backup
    describe = kbrowse(*bsl, "describe", "shop-daily-2").stdout
    assert "Path:          shop-daily-2/volumes/shop/_pvc/db-data" in describe
    assert "Path:          shop-daily-2/volumes/shop/web-0/data" in describe
    missing = kbrowse(*bsl, "ls", "shop-daily-2/volumes/shop/_pvc/nope", check=False)
    assert missing.returncode == 1 and missing.stderr.count("\n") == 1
    assert "no volume shop/nope" in missing.stderr and "Traceback" not in missing.stderr


def test_an_interrupted_build_leaves_no_bucket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write = demo_mod._write_backup
    calls = []

    def interrupted(store, repo, demo, name, started) -> None:  # Ctrl-C during the second backup
        calls.append(name)
        if len(calls) == 2:
            raise KeyboardInterrupt
        write(store, repo, demo, name, started)

    monkeypatch.setattr(demo_mod, "_write_backup", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_demo(tmp_path)
    assert not (tmp_path / "bucket").exists()
    monkeypatch.setattr(demo_mod, "_write_backup", write)
    demo = run_demo(tmp_path)  # the next run builds it from scratch
    assert sorted(p.name for p in (demo.bucket / "backups").iterdir()) == ["shop-daily-1", "shop-daily-2"]
    assert not (tmp_path / ".bucket-building").exists()
