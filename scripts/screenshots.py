#!/usr/bin/env python3
"""Regenerate screenshots/*.svg: build the demo bucket, drive the app, save what it draws.

    python scripts/screenshots.py [OUTDIR]

The demo is built in a fixed temporary directory so the paths shown are the same every run.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from textual.pilot import Pilot

from kbrowse.demo import DEMO_PASSWORD, run_demo
from kbrowse.tui.app import KbrowseApp
from kbrowse.tui.screens.backup import BackupScreen
from kbrowse.tui.screens.backups import BackupsScreen
from kbrowse.tui.screens.browser import BrowserScreen
from kbrowse.tui.screens.compare import CompareScreen
from kbrowse.tui.screens.find import FindScreen
from kbrowse.tui.screens.restore import RestoreScreen
from kbrowse.tui.screens.snapshots import SnapshotsScreen
from kbrowse.tui.widgets.preview import Preview
from mover.repo.open import open_repository
from mover.repo.repository import Repository
from mover.repo.view import RepositoryView
from mover.velero.bsl import BucketView
from mover.velero.repopassword import default_password, fixed

SIZE = (130, 36)
WORK = Path(tempfile.gettempdir()) / "kbrowse-screenshots"
SLOW_BLOB = 0.1  # seconds per restored blob: the demo restores too fast to catch the bar mid-way


async def until(pilot: Pilot, cond: Callable[[], object], timeout: float = 20.0) -> None:
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise SystemExit(f"screenshots: timed out waiting for {cond.__qualname__} on "
                             f"{type(pilot.app.screen).__name__}")
        await asyncio.sleep(0.02)
    await pilot.pause()


async def reveal(pilot: Pilot, browser: BrowserScreen, path: str) -> None:
    browser.reveal(path)
    name = path.rsplit("/", 1)[-1]
    listing = browser.query_one("#listing")
    preview = browser.query_one(Preview)
    await until(pilot, lambda: listing.current is not None and listing.current.name == name
                and preview.border_title == name and not preview.pending)
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


async def shoot_app(view: RepositoryView, repo: Repository, out: Path) -> None:
    app = KbrowseApp(view, "kbrowse demo")

    def save(name: str) -> None:
        app.save_screenshot(f"{name}.svg", str(out))
        print(f"wrote {out / name}.svg")

    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: isinstance(app.screen, SnapshotsScreen) and app.screen.table.items)
        save("snapshots")

        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, BrowserScreen))
        browser = app.screen
        await reveal(pilot, browser, "/config/app.yaml")
        save("browser")
        await reveal(pilot, browser, "/data/app.db")
        save("browser-hex")

        await pilot.press("f")
        await until(pilot, lambda: isinstance(app.screen, FindScreen))
        await pilot.press(*"*2026-11-0[5-8]*")
        status = app.screen.query_one("#find-status")
        await until(pilot, lambda: "done" in str(status.content))
        save("find")
        await pilot.press("escape")

        await pilot.press("c")
        await until(pilot, lambda: isinstance(app.screen, CompareScreen) and app.screen.done)
        save("compare")
        await pilot.press("escape")

        await reveal(pilot, browser, "/data")
        await pilot.press("r")
        await until(pilot, lambda: isinstance(app.screen, RestoreScreen))
        dialog = app.screen
        save("restore-dialog")
        decode = repo.decode_blob

        def slow_decode(*args, **kwargs):
            time.sleep(SLOW_BLOB)
            return decode(*args, **kwargs)

        repo.decode_blob = slow_decode
        dialog.query_one("#restore-target").value = str(WORK / "restored" / "data")
        await pilot.click("#start")
        c = dialog.counters
        await until(pilot, lambda: c.total_bytes and c.bytes > c.total_bytes * 0.4)
        await asyncio.sleep(0.25)  # one progress tick
        save("restore")
        await until(pilot, lambda: dialog.finished)
        repo.decode_blob = decode
        await asyncio.sleep(0.25)
        save("restore-done")


async def shoot_backups(bucket: BucketView, out: Path, names: tuple[str, str], backup_name: str,
                        resource: tuple[str, str, str], label: str = "", scroll_to: str = "") -> None:
    """Bucket mode: the backups with ``backup_name`` described (scrolled to the line
    ``scroll_to``), then that backup's volumes and the YAML of ``resource``."""
    app = KbrowseApp(bucket=bucket, source_label=label)

    def save(name: str) -> None:
        app.save_screenshot(f"{name}.svg", str(out))
        print(f"wrote {out / name}.svg")

    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: isinstance(app.screen, BackupsScreen) and app.screen.table.items)
        screen = app.screen
        screen.table.select_where(lambda b: b.name == backup_name)
        describe = screen.query_one("#describe", Preview)
        await until(pilot, lambda: describe.border_title == f"Describe {backup_name}" and not describe.pending)
        if scroll_to:
            describe.scroll_to(y=describe.plain.split("\n").index(scroll_to) - 1, animate=False)
            await pilot.pause()
        save(names[0])
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, BackupScreen) and app.screen.contents)
        backup = app.screen
        volumes = backup.query_one("#volumes")
        await until(pilot, lambda: volumes.items)
        backup.select_resource(*resource)
        yaml = backup.query_one("#yaml", Preview)
        await until(pilot, lambda: yaml.border_title == resource[2] and not yaml.pending)
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
        save(names[1])


def build_bucket(where: Path) -> BucketView:
    from tests.support.velerobucket import LEDGER_PASSWORD, build

    restic = shutil.which("restic")
    if restic is None:
        raise SystemExit("screenshots: bucket mode needs the restic binary (Debian package restic)")
    build(where / "bsl", where / "node", restic)
    return BucketView.open(str(where / "bsl"),
                           passwords=[default_password(), fixed("ledger", LEDGER_PASSWORD)])


async def shoot_picker(out: Path) -> None:
    app = KbrowseApp(None)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(0.3)
        app.save_screenshot("source-picker.svg", str(out))
        print(f"wrote {out}/source-picker.svg")


async def shoot_cluster(out: Path) -> None:
    """Cluster mode on the Kubernetes API double with the mover server (a local-directory
    storage location): the Backups screen with describe, the new-backup form, and the Data
    movement screen mid-transfer (its objects written as a node agent would update them)."""
    from kbrowse.cluster.session import ClusterSession, KubeTarget
    from kbrowse.cluster.store import DATA_UPLOADS, POD_VOLUME_BACKUPS
    from kbrowse.tui.screens.backup_form import BackupFormScreen
    from kbrowse.tui.screens.cluster_backups import ClusterBackupsScreen
    from kbrowse.tui.screens.movement import MovementScreen
    from kbrowse.tui.screens.restores import RestoresScreen
    from mover.kube.framework.client import Kube, load_api_client
    from mover.kube.resources import BACKUPS, BSLS, RESTORES
    from tests.kube.test_controllers import make_app
    from tests.support.kubeapi import KubeApiServer
    from tests.support.kubeapi.fixtures import write_kubeconfig
    from tests.support.velero_env import (
        NS,
        install,
        running_server,
        velero_object,
        wait_phase,
    )

    server = KubeApiServer().start()
    kubeconfig = str(write_kubeconfig(WORK / "kubeconfig", server.url, namespace=NS))
    kube = Kube(load_api_client(kubeconfig))
    install(kube)
    (WORK / "cluster-bsl").mkdir()
    kube.create(BSLS, NS, velero_object("BackupStorageLocation", "default", {
        "provider": "local", "default": True, "objectStorage": {"bucket": str(WORK / "cluster-bsl")}}))
    for ns in ("shop", "ledger"):
        make_app(kube, ns)
    with running_server(kube):
        for name, spec in (("shop-nightly", {"includedNamespaces": ["shop"], "labelSelector": {
                                "matchLabels": {"app": "web"}}}),
                           ("ledger-before-upgrade", {"includedNamespaces": ["ledger"], "ttl": "2160h0m0s"}),
                           ("everything", {"excludedResources": ["secrets"]})):
            kube.create(BACKUPS, NS, velero_object("Backup", name, spec))
            wait_phase(kube, BACKUPS, name)
        kube.create(BACKUPS, NS, velero_object("Backup", "wrong-location", {"storageLocation": "archive"}))
        wait_phase(kube, BACKUPS, "wrong-location")
        transfers = _moving(kube, DATA_UPLOADS, POD_VOLUME_BACKUPS)
        session = ClusterSession.connect(KubeTarget(kubeconfig, None, NS))
        app = KbrowseApp(cluster=session)

        def save(name: str) -> None:
            app.save_screenshot(f"{name}.svg", str(out))
            print(f"wrote {out / name}.svg")

        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: isinstance(app.screen, ClusterBackupsScreen) and len(app.screen.table.items) == 4)
            screen = app.screen
            screen.table.select_where(lambda b: b.name == "shop-nightly")
            describe = screen.query_one("#describe", Preview)
            await until(pilot, lambda: describe.border_title == "Describe shop-nightly" and not describe.pending)
            save("cluster-backups")
            await pilot.press("6")
            await until(pilot, lambda: isinstance(app.screen, MovementScreen) and len(app.screen.table.items) == 3)
            for step in range(1, 4):  # updates as the node agent sends them: rates and ETAs follow
                transfers(step)
                await asyncio.sleep(1.0)
            await pilot.pause()
            save("cluster-movement")
            await pilot.press("1", "n")
            await until(pilot, lambda: isinstance(app.screen, BackupFormScreen))
            form = app.screen
            for field, value in (("name", "shop_before_upgrade"), ("include-namespaces", "shop"),
                                 ("selector", "app=web"), ("ttl", "3 days")):
                form.query_one(f"#{field}").value = value
            await pilot.press("ctrl+s")
            await pilot.pause()
            save("cluster-new-backup")
            await pilot.press("escape")
            kube.create(RESTORES, NS, velero_object("Restore", "shop-copy", {
                "backupName": "shop-nightly", "namespaceMapping": {"shop": "shop-copy"}}))
            wait_phase(kube, RESTORES, "shop-copy")
            await pilot.press("2")
            await until(pilot, lambda: isinstance(app.screen, RestoresScreen) and app.screen.table.items)
            describe = app.screen.query_one("#describe", Preview)
            def described() -> bool:  # finished, with the resource list downloaded
                text = " ".join(describe.plain.split())
                return (describe.border_title == "Describe shop-copy" and not describe.pending
                        and "Phase: Completed" in text and "list not found" not in text)

            try:
                await until(pilot, described)
            except SystemExit:
                print(describe.border_title, describe.plain[:2000])
                raise
            save("cluster-restores")
    server.stop()


def _moving(kube, uploads, pvbs) -> Callable[[int], None]:
    """Two DataUploads and two PodVolumeBackups of shop-nightly; ``step(n)`` moves them on."""
    from tests.support.velero_env import NS

    mib = 2**20
    specs = [(uploads, "shop-nightly-7xk2p", {"snapshotType": "CSI", "sourcePVC": "data", "sourceNamespace": "shop",
                                              "backupStorageLocation": "default", "operationTimeout": "10m0s",
                                              "csiSnapshot": {"volumeSnapshot": "velero-data-x1", "storageClass": "csi"}},
              "worker-1", 4096 * mib, 96 * mib),
             (uploads, "ledger-before-upgrade-m2q9d", {"snapshotType": "CSI", "sourcePVC": "journal",
                                                       "sourceNamespace": "ledger", "backupStorageLocation": "default",
                                                       "operationTimeout": "10m0s", "csiSnapshot": {
                                                           "volumeSnapshot": "velero-journal-x2", "storageClass": "csi"}},
              "worker-2", 1024 * mib, 40 * mib),
             (pvbs, "shop-nightly-pvb-web-0", {"node": "worker-1", "pod": {"namespace": "shop", "name": "web-0"},
                                               "volume": "uploads", "backupStorageLocation": "default",
                                               "repoIdentifier": "local:/bsl/restic/shop", "uploaderType": "kopia"},
              "worker-1", 512 * mib, 0)]
    for res, name, spec, _, _, _ in specs:
        owner = name.rsplit("-", 1)[0].removesuffix("-pvb-web")
        kube.create(res, NS, {"apiVersion": res.api_version, "kind": res.kind, "spec": spec,
                              "metadata": {"name": name, "labels": {"velero.io/backup-name": owner}}})
    kube.patch(pvbs, NS, "shop-nightly-pvb-web-0", {"status": {
        "phase": "Completed", "node": "worker-1", "startTimestamp": "2026-12-03T02:00:00Z",
        "completionTimestamp": "2026-12-03T02:00:41Z",
        "progress": {"bytesDone": 512 * mib, "totalBytes": 512 * mib}}}, subresource="status")

    def step(n: int) -> None:
        for res, name, _, node, total, per_second in specs:
            if per_second:
                kube.patch(res, NS, name, {"status": {
                    "phase": "InProgress", "node": node, "startTimestamp": "2026-12-03T02:00:00Z",
                    "progress": {"bytesDone": per_second * (n + 5), "totalBytes": total}}}, subresource="status")

    return step


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else ROOT / "screenshots").resolve()
    out.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    demo = run_demo(WORK / "kbrowse-demo")
    for var in ("RESTIC_REPOSITORY", "RESTIC_PASSWORD", "RESTIC_PASSWORD_FILE"):
        os.environ.pop(var, None)
    os.chdir(WORK)  # the source picker finds ./kbrowse-demo
    repo = open_repository(str(demo.repo_path), DEMO_PASSWORD)
    view = RepositoryView(repo)
    try:
        asyncio.run(shoot_app(view, repo, out))
    finally:
        view.close()
    asyncio.run(shoot_picker(out))
    # `kbrowse demo`: a pod volume and a claim moved by the data mover, and the DataUpload
    with BucketView.open(str(demo.bucket)) as demo_bucket:
        asyncio.run(shoot_backups(demo_bucket, out, ("demo-backups", "demo-backup"), "shop-daily-2",
                                  ("datauploads.velero.io", "velero", "shop-daily-2-x7k2p"),
                                  scroll_to="Backup Volumes:"))
    bucket = build_bucket(WORK / "velero")
    try:
        asyncio.run(shoot_backups(bucket, out, ("bucket", "bucket-backup"), "web-backup",
                                  ("deployments.apps", "shop", "web"), "velero bucket (local copy)"))
    finally:
        bucket.close()
    asyncio.run(shoot_cluster(out))


if __name__ == "__main__":
    main()
