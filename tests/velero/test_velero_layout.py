"""The pure parts of Velero support: keys, object JSON, durations, tables, paths. No I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from kbrowse.bucket import paths as bucketpaths

from kbrowse.bucket import printers as bucketfmt
from mover.golang.tabwriter import tabwrite
from mover.ui.cliargs import UsageError
from mover.errors import RepoError
from mover.velero import layout, volumes
from mover.golang.duration import format_duration, parse_duration, short_human
from mover.velero.objects import (
    Backup,
    BackupSpec,
    ObjectMeta,
    PodVolumeBackup,
    VolumeInfo,
    decode,
    encode,
    from_json,
)
from mover.velero.tarball import BackedUpItem, ResourceRef, parse_path, resource_list

NOW = datetime(2024, 6, 1, 12, 0, 0, tzinfo=UTC)


def test_backup_and_restore_keys() -> None:
    assert layout.backup_metadata_key("b1") == "backups/b1/velero-backup.json"
    assert layout.backup_file_key("b1", layout.BACKUP_CONTENTS) == "backups/b1/b1.tar.gz"
    assert layout.backup_file_key("b1", layout.VOLUME_INFO) == "backups/b1/b1-volumeinfo.json.gz"
    assert layout.backup_file_key("b1", layout.CSI_VOLUME_SNAPSHOT_CLASSES) == \
        "backups/b1/b1-csi-volumesnapshotclasses.json.gz"
    assert layout.restore_file_key("r1", layout.RESTORE_LOG) == "restores/r1/restore-r1-logs.gz"
    assert layout.restore_volume_info_key("r1") == "restores/r1/r1-volumeinfo.json.gz"
    assert layout.repository_prefix("restic", "shop") == "restic/shop"
    assert layout.repository_prefix("kopia", "shop") == "kopia/shop"
    assert layout.revision_key() == "metadata/revision"
    with pytest.raises(RepoError, match="not one of Velero's backup files"):
        layout.backup_file_key("b1", "-secrets.gz")
    with pytest.raises(RepoError, match="unknown uploader type"):
        layout.repository_prefix("borg", "shop")


def test_only_velero_top_level_folders_are_writable() -> None:
    for key in ("backups/b/x", "restores/r/x", "restic/ns/config", "kopia/ns/x",
                "metadata/revision", "plugins/p/x"):
        assert layout.check_writable(key) == key
    for key in ("other/x", "Backups/b/x", "backups", "/backups/x", "backups/../x", "config"):
        with pytest.raises(RepoError, match="refusing to write"):
            layout.check_writable(key)
    assert layout.unexpected_top_level(["backups", "restic", "tmp", "x"]) == ["tmp", "x"]


def test_object_json_round_trip_keeps_velero_names() -> None:
    doc = {"kind": "PodVolumeBackup", "apiVersion": "velero.io/v1",
           "metadata": {"name": "b-x", "namespace": "velero",
                        "creationTimestamp": "2024-06-01T12:00:00Z"},
           "spec": {"pod": {"kind": "Pod", "namespace": "shop", "name": "web"}, "volume": "data",
                    "uploaderType": "restic", "tags": {"backup": "b"}},
           "status": {"phase": "Completed", "snapshotID": "1a2b3c4d",
                      "progress": {"totalBytes": 10, "bytesDone": 10}}}
    pvb = from_json(PodVolumeBackup, doc, "pvb")
    assert pvb.status.snapshot_id == "1a2b3c4d" and pvb.spec.pod.name == "web"
    assert pvb.metadata.creation_timestamp == NOW
    assert pvb.raw is doc
    assert pvb.to_json() == doc
    # *bool: an explicit false is kept, "unset" is left out
    spec = BackupSpec(snapshot_move_data=False)
    assert encode(spec) == {"snapshotMoveData": False}
    assert decode(BackupSpec, {"snapshotMoveData": False}).snapshot_move_data is False
    assert decode(BackupSpec, {}).snapshot_move_data is None
    with pytest.raises(RepoError, match="pvb: not a valid PodVolumeBackup"):
        from_json(PodVolumeBackup, {"spec": {"volume": 3}}, "pvb")


def test_go_durations() -> None:
    for text, out in (("720h0m0s", "720h0m0s"), ("24h", "24h0m0s"), ("1h30m", "1h30m0s"),
                      ("1.5s", "1.5s"), ("300ms", "300ms"), ("0s", "0s"), ("-2m", "-2m0s"),
                      ("90s", "1m30s")):
        assert format_duration(parse_duration(text)) == out
    for bad in ("", "5", "1x", "h", "-"):
        with pytest.raises(ValueError):
            parse_duration(bad)
    day = 86400 * 10**9
    assert [short_human(n) for n in (0, 59 * 10**9, 3600 * 10**9, 29 * day + 1, 800 * day)] == \
        ["0s", "59s", "1h", "29d", "2y"]


def test_tabwriter_matches_velero_describer() -> None:
    # from Velero's backup_describer_test.go (TestDescribeBackupSpec, TestDescribeNativeSnapshots)
    text = ("Resources:\n\tIncluded:\t*\n\tExcluded:\t<none>\n\tCluster-scoped:\tauto\n\n"
            "Velero-Native Snapshot PVs:\tauto\nSnapshot Move Data:\tauto\nData Mover:\tvelero\n"
            "Backup Volumes:\n"  # a line without tabs ends the column block above
            "\t\tpv-1:\n\t\t\tSnapshot ID:\tsnapshot-1\n\t\t\tAvailability Zone:\tus-east-2\n")
    assert tabwrite(text, 0, 2) == (
        "Resources:\n  Included:        *\n  Excluded:        <none>\n  Cluster-scoped:  auto\n\n"
        "Velero-Native Snapshot PVs:  auto\nSnapshot Move Data:          auto\n"
        "Data Mover:                  velero\nBackup Volumes:\n"
        "    pv-1:\n      Snapshot ID:        snapshot-1\n      Availability Zone:  us-east-2\n")
    assert tabwrite("NAME\tSTATUS\tE\nb-1\tCompleted\t0\n", 6, 3) == (
        "NAME   STATUS      E\nb-1    Completed   0\n")


def test_label_selectors_as_apimachinery_prints_them() -> None:
    assert bucketfmt.label_selector(None) == "<none>"
    assert bucketfmt.label_selector({}) == "<none>"
    assert bucketfmt.label_selector({
        "matchLabels": {"tier": "web", "app": "shop"},
        "matchExpressions": [{"key": "env", "operator": "In", "values": ["prod", "dev"]},
                             {"key": "legacy", "operator": "DoesNotExist"}]}) == \
        "app=shop,env in (dev,prod),legacy,tier=web".replace("legacy", "!legacy")


def _backup(name: str, **status: object) -> Backup:
    b = Backup(metadata=ObjectMeta(name=name, creation_timestamp=NOW - timedelta(days=1)),
               spec=BackupSpec(ttl="720h0m0s"))
    for k, v in status.items():
        setattr(b.status, k, v)
    return b


def test_backup_get_order_status_and_expiry() -> None:
    names = ["daily-20240101000000", "b", "weekly-20240101000000", "daily-20240301000000", "a",
             "daily-db", "daily-20240201000000", "weekly-20240108000000", "daily"]
    assert [b.name for b in bucketfmt.sort_backups([_backup(n) for n in names])] == [
        "a", "b", "daily", "daily-20240301000000", "daily-20240201000000", "daily-20240101000000",
        "daily-db", "weekly-20240108000000", "weekly-20240101000000"]
    b = _backup("b")
    assert bucketfmt.status(b) == "New"
    assert bucketfmt.time_from_now(bucketfmt.expiration(b), NOW) == "29d"  # creation + TTL
    b.status.expiration = NOW - timedelta(hours=3)
    assert bucketfmt.time_from_now(bucketfmt.expiration(b), NOW) == "3h ago"
    b.metadata.deletion_timestamp = NOW
    assert bucketfmt.status(b) == "Deleting"
    assert bucketfmt.time_from_now(None, NOW) == "n/a"


def test_tarball_paths_and_resource_list() -> None:
    dep = BackedUpItem("deployments", {"apiVersion": "apps/v1", "kind": "Deployment",
                                       "metadata": {"name": "web", "namespace": "shop"}})
    ns = BackedUpItem("namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                     "metadata": {"name": "shop"}})
    assert dep.ref.path() == "resources/deployments.apps/namespaces/shop/web.json"
    assert dep.ref.path("v1-preferredversion") == \
        "resources/deployments.apps/v1-preferredversion/namespaces/shop/web.json"
    assert ns.ref.path() == "resources/namespaces/cluster/shop.json"
    assert parse_path("resources/deployments.apps/namespaces/shop/web.json") == \
        ResourceRef("deployments.apps", "shop", "web")
    assert parse_path("resources/namespaces/cluster/shop.json") == ResourceRef("namespaces", "", "shop")
    assert parse_path("resources/namespaces/v1-preferredversion/cluster/shop.json") is None
    assert parse_path("metadata/version") is None
    assert resource_list([dep, ns]) == {"apps/v1/Deployment": ["shop/web"], "v1/Namespace": ["shop"]}


def test_volumes_from_volume_info_and_pod_volume_backups() -> None:
    infos = [from_json(VolumeInfo, d, "vi") for d in (
        {"pvcName": "data", "pvcNamespace": "db", "backupMethod": "PodVolumeBackup",
         "result": "succeeded", "pvbInfo": {"snapshotHandle": "1a2b3c4d", "size": 5,
                                            "uploaderType": "restic", "volumeName": "data",
                                            "podName": "db-0", "podNamespace": "db"}},
        {"pvcName": "logs", "pvcNamespace": "db", "backupMethod": "CSISnapshot",
         "snapshotDataMoved": True, "result": "succeeded",
         "snapshotDataMovementInfo": {"uploaderType": "kopia", "snapshotHandle": "k9e8",
                                      "size": 7}},
        {"pvName": "pv-9", "backupMethod": "NativeSnapshot", "nativeSnapshotInfo": {"snapshotHandle": "snap-1"}},
        {"pvcName": "tmp", "backupMethod": "PodVolumeBackup", "skipped": True})]
    pvb, moved, native = volumes.from_volume_info(infos)
    assert (pvb.label, pvb.repository, pvb.snapshot_id, pvb.size) == (
        "db/db-0/data", "restic/db", "1a2b3c4d", 5)
    assert (moved.label, moved.repository, moved.data_mover) == ("db/logs", "kopia/db", "velero")
    assert native.repository is None  # the data is in the cloud provider, not the bucket

    (legacy,) = volumes.from_pod_volume_backups([from_json(PodVolumeBackup, {
        "metadata": {"annotations": {"velero.io/pvc-name": "data"}},
        "spec": {"pod": {"namespace": "db", "name": "db-0"}, "volume": "data",
                 "uploaderType": "restic"},
        "status": {"phase": "Completed", "snapshotID": "5e6f7a8b"}}, "pvb")])
    assert (legacy.label, legacy.pvc, legacy.repository) == ("db/db-0/data", "data", "restic/db")


def test_backup_paths() -> None:
    p = bucketpaths.parse("b1/resources/deployments.apps/_cluster/x")
    assert (p.backup, p.area, p.parts, p.namespace) == ("b1", "resources",
                                                        ("deployments.apps", "_cluster", "x"), "")
    p = bucketpaths.parse("b1/volumes/shop/web/html:/img/logo.bin")
    assert p.is_volume and p.parts == ("shop", "web", "html") and p.inner == "/img/logo.bin"
    assert bucketpaths.parse("b1/volumes/shop/web/html/img/logo.bin") == p
    assert str(p) == "b1/volumes/shop/web/html:/img/logo.bin"
    assert bucketpaths.parse("") == bucketpaths.BackupPath() == bucketpaths.parse("/")
    for bad in ("b1/other", "b1/resources/a/b/c/d", "b1/resources/a:/x", "b1/volumes/ns:/x",
                "b1/volumes/a/b/c:/../etc", "b1/volumes/a/b/c/d:/e"):
        with pytest.raises(UsageError):
            bucketpaths.parse(bad)


def test_describe_volume_blocks_match_velero() -> None:
    """Expected text from Velero's backup_describer_test.go (TestCSISnapshots, native)."""
    infos = [from_json(VolumeInfo, d, "vi") for d in (
        {"pvName": "pv-1", "backupMethod": "NativeSnapshot", "result": "succeeded",
         "nativeSnapshotInfo": {"snapshotHandle": "snapshot-1", "volumeType": "ebs",
                                "volumeAZ": "us-east-2", "iops": "1000 mbps"}},
        {"pvcNamespace": "pvc-ns-2", "pvcName": "pvc-2", "backupMethod": "CSISnapshot",
         "preserveLocalSnapshot": True, "result": "succeeded",
         "csiSnapshotInfo": {"snapshotHandle": "snapshot-2", "size": 1024, "driver": "fake-driver",
                             "vscName": "vsc-2", "operationID": "fake-operation-2"}},
        {"pvcNamespace": "pvc-ns-4", "pvcName": "pvc-4", "backupMethod": "CSISnapshot",
         "snapshotDataMoved": True, "result": "succeeded",
         "snapshotDataMovementInfo": {"dataMover": "velero", "uploaderType": "kopia",
                                      "snapshotHandle": "fake-repo-id-4",
                                      "operationID": "fake-operation-4"}})]
    text = bucketfmt.describe_backup(bucketfmt.BackupDetails(
        backup=_backup("b"), results=None, resource_list=None, item_operations=[],
        pod_volume_backups=[], volume_infos=infos, volumes=volumes.from_volume_info(infos),
        logs_hint="kbrowse logs b"))
    assert """Backup Volumes:
  Velero-Native Snapshots:
    pv-1:
      Snapshot ID:        snapshot-1
      Type:               ebs
      Availability Zone:  us-east-2
      IOPS:               1000 mbps
      Result:             succeeded

  CSI Snapshots:
    pvc-ns-2/pvc-2:
      Snapshot:
        Operation ID: fake-operation-2
        Snapshot Content Name: vsc-2
        Storage Snapshot ID: snapshot-2
        Snapshot Size (bytes): 1024
        CSI Driver: fake-driver
        Result: succeeded
    pvc-ns-4/pvc-4:
      Data Movement:
        Operation ID: fake-operation-4
        Data Mover: velero
        Uploader Type: kopia
        Moved data Size (bytes): 0
        Result: succeeded

  Pod Volume Backups: <none included>
""" in text
    assert "Resource List:  <backup resource list not found>" in text
    assert "    pvc-ns-4/pvc-4:\n      Method:        CSISnapshot (data movement)\n" \
           "      Uploader:      kopia\n      Repository:    kopia/pvc-ns-4\n" in text
