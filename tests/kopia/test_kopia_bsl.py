"""A Velero bucket whose volumes are in a kopia repository (Velero's default uploader): pod
volume backups and CSI data uploads, snapshotted by the real kopia under Velero's naming, with
Velero's default password. kbrowse --bsl lists, reads and restores them as kopia restores them."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from mover.velero.objectstore import LocalStore
from mover.velero.repopassword import DEFAULT_PASSWORD
from mover.velero.writer import BackupRecord, write_backup
from tests.fuse.test_mount import _MISSING, mounted
from tests.kopia.kopia_cli import Kopia, restore_differences
from tests.support.treekit import make_full_tree
from tests.support.velerobucket import (
    PodVolume,
    _backup,
    _items,
    _pvb,
    _volume_info,
    data_upload,
    pvc_item,
)


def _kb(bsl: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RESTIC_", "KOPIA_"))}
    env["KUBECONFIG"] = "/nonexistent"  # no cluster: Velero's default password is tried
    return subprocess.run([sys.executable, "-m", "kbrowse.cli", "--bsl", str(bsl), *args], env=env,
                          capture_output=True, stdin=subprocess.DEVNULL, timeout=300)


def test_velero_kopia_volumes(tmp_path: Path) -> None:
    bsl = tmp_path / "bucket"
    k = Kopia(tmp_path / "kopia", password=DEFAULT_PASSWORD)
    k.create_filesystem(bsl / "kopia" / "shop")

    pod_vol = PodVolume("shop", "web-1", "html", "web-html", {})
    src = tmp_path / "host_pods" / pod_vol.pod_uid / "volumes" / "kubernetes.io~csi" / "html"
    make_full_tree(src)
    # Velero before 1.17 names the source by the node path; user and host are "default"
    pvb_snap = k.snapshot(src, f"--override-source=default@default:{src}")
    pvc_src = tmp_path / "pvc"
    pvc_src.mkdir()
    (pvc_src / "db.bin").write_bytes(os.urandom(3 << 20))
    du_snap = k.snapshot(
        pvc_src, "--override-source=default@default:/snapshot-data-upload-download/kopia/shop/data")

    # a block PVC: Velero's block data mover snapshots a directory holding the device's bytes
    # as one file
    disk_src = tmp_path / "disk"
    disk_src.mkdir()
    (disk_src / "disk").write_bytes(os.urandom(5 << 20))
    disk_snap = k.snapshot(
        disk_src, "--override-source=default@default:/snapshot-data-upload-download/kopia/shop/disk")

    uid = str(uuid.uuid4())
    pvb = _pvb(pod_vol, "kopia-web", uid, "kopia", str(bsl / "kopia/shop"), pvb_snap, 1000)
    data_uploads = [data_upload("shop", "data", "kopia", du_snap, 3 << 20),
                    data_upload("shop", "disk", "kopia", disk_snap, 5 << 20)]
    items = [*_items(), pvc_item("shop", "data", "Filesystem"), pvc_item("shop", "disk", "Block")]
    write_backup(LocalStore(bsl), BackupRecord(
        backup=_backup("kopia-web", uid, ["shop"], len(items)), items=items,
        pod_volume_backups=[pvb], volume_infos=[_volume_info(pod_vol, pvb), *data_uploads]))

    vol = "kopia-web/volumes/shop/web-1/html"
    ls = _kb(bsl, "ls", f"{vol}:/")
    assert ls.returncode == 0, ls.stderr.decode()
    assert b"random-3m.bin\n" in ls.stdout
    theirs, ours = tmp_path / "kopia-restore", tmp_path / "kbrowse-restore"
    k.restore(pvb_snap, theirs)
    cp = _kb(bsl, "cp", f"{vol}:/", str(ours))
    assert cp.returncode == 0, cp.stderr.decode()
    assert restore_differences(ours, theirs) == []
    cat = _kb(bsl, "cat", f"{vol}:/random-3m.bin")
    assert cat.stdout == (theirs / "random-3m.bin").read_bytes()

    # data uploads have no pod: they are at the _pvc level, the block one as its one file
    assert _kb(bsl, "ls", "kopia-web/volumes/shop").stdout == b"_pvc\nweb-1\n"
    assert _kb(bsl, "ls", "kopia-web/volumes/shop/_pvc").stdout == b"data\ndisk\n"
    cat = _kb(bsl, "cat", "kopia-web/volumes/shop/_pvc/data:/db.bin")
    assert cat.returncode == 0, cat.stderr.decode()
    assert cat.stdout == (pvc_src / "db.bin").read_bytes()
    k.restore(disk_snap, tmp_path / "kopia-disk")
    cat = _kb(bsl, "cat", "kopia-web/volumes/shop/_pvc/disk")
    assert cat.returncode == 0, cat.stderr.decode()
    assert cat.stdout == (tmp_path / "kopia-disk" / "disk").read_bytes()
    assert _kb(bsl, "ls", "-l", "kopia-web/volumes/shop/_pvc/disk").stdout.endswith(b" disk\n")
    inside = _kb(bsl, "cat", "kopia-web/volumes/shop/_pvc/disk:/x")
    assert inside.returncode != 0 and b"block device" in inside.stderr
    assert len(inside.stderr.splitlines()) == 1 and b"Traceback" not in inside.stderr
    cp = _kb(bsl, "cp", "kopia-web/volumes/shop/_pvc/disk", str(tmp_path / "disk.img"))
    assert cp.returncode == 0, cp.stderr.decode()
    assert (tmp_path / "disk.img").read_bytes() == cat.stdout

    if _MISSING is None:  # the bucket mount has the same _pvc level
        with mounted([sys.executable, "-m", "kbrowse.cli", "mount", "--foreground", "--bsl", str(bsl),
                      "--kubeconfig", "/nonexistent", str(tmp_path / "mnt")], tmp_path / "mnt") as m:
            pvcs = m.path / "backups/kopia-web/volumes/shop/_pvc"
            assert sorted(os.listdir(pvcs)) == ["data", "disk"]
            assert (pvcs / "data/db.bin").read_bytes() == (pvc_src / "db.bin").read_bytes()
            # the block volume is its device's bytes, one file, as ls/cat/cp show it
            assert {e.name: e.is_file() for e in os.scandir(pvcs)} == {"data": False, "disk": True}
            st = os.stat(pvcs / "disk")
            assert stat.S_ISREG(st.st_mode) and st.st_size == 5 << 20
            assert (pvcs / "disk").read_bytes() == cat.stdout
            with pytest.raises(NotADirectoryError):
                os.listdir(pvcs / "disk")

