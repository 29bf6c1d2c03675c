"""The other cluster screens: data movement with live rates, restores from the form, schedules,
and a user without the RBAC right to a verb."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from textual.widgets import Input

from kbrowse.cluster.session import ClusterSession, KubeTarget
from mover.kube.resources import DATA_UPLOADS, POD_VOLUME_RESTORES
from kbrowse.tui.app import KbrowseApp
from kbrowse.tui.screens.cluster_backups import ClusterBackupsScreen
from kbrowse.tui.screens.confirm import ConfirmScreen
from kbrowse.tui.screens.movement import MovementScreen
from kbrowse.tui.screens.restore_form import RestoreFormScreen
from kbrowse.tui.screens.restores import RestoresScreen
from kbrowse.tui.screens.schedules import SchedulesScreen
from mover.kube.framework.client import Kube
from mover.kube.resources import BACKUPS, RESTORES, SCHEDULES
from tests.support.kubeapi.fixtures import KubeApi, write_kubeconfig
from tests.support.velero_env import (
    DEPLOYMENTS,
    NS,
    velero_object,
    wait_for,
    wait_phase,
)
from tests.tui.test_tui import SIZE, drive, record_notifications, until
from tests.support.tuikit import shows

MIB = 1024 * 1024


def data_upload(name: str, backup: str, pvc: str, done: int, total: int, phase: str = "InProgress") -> dict:
    return {"apiVersion": "velero.io/v2alpha1", "kind": "DataUpload",
            "metadata": {"name": name, "labels": {"velero.io/backup-name": backup}},
            "spec": {"snapshotType": "CSI", "sourcePVC": pvc, "sourceNamespace": "shop",
                     "backupStorageLocation": "default", "operationTimeout": "10m0s",
                     "csiSnapshot": {"volumeSnapshot": f"{pvc}-snap", "storageClass": "standard"}},
            "status": {"phase": phase, "node": "worker-1", "startTimestamp": "2026-12-03T10:00:00Z",
                       "progress": {"bytesDone": done, "totalBytes": total}}}


def set_progress(kube: Kube, res, name: str, done: int, phase: str = "InProgress", **status) -> None:
    kube.patch(res, NS, name, {"status": {"phase": phase, "progress": {"bytesDone": done}, **status}},
               subresource="status")


def movement_row(screen: MovementScreen, name: str) -> tuple[str, ...] | None:
    t = next((t for t in screen.table.items if t.name == name), None)
    return None if t is None else tuple(screen.row(t))


@drive
async def test_data_upload_progress_and_rate_follow_the_watch(kube: Kube, session: ClusterSession) -> None:
    upload = kube.create(DATA_UPLOADS, NS, data_upload("shop-1-abcde", "shop-1", "data", 0, 100 * MIB))
    assert "status" not in upload  # the status subresource's: create drops it
    kube.patch(DATA_UPLOADS, NS, "shop-1-abcde", {"status": data_upload("", "", "", 0, 100 * MIB)["status"]},
               subresource="status")
    kube.create(POD_VOLUME_RESTORES, NS, {
        "apiVersion": "velero.io/v1", "kind": "PodVolumeRestore",
        "metadata": {"name": "r-1-xyz", "labels": {"velero.io/restore-name": "r-1"}},
        "spec": {"pod": {"namespace": "shop", "name": "web-0"}, "volume": "cache", "snapshotID": "abc",
                 "backupStorageLocation": "default", "sourceNamespace": "shop",
                 "repoIdentifier": "s3:http://s3.example/velero/restic/shop"}})
    set_progress(kube, POD_VOLUME_RESTORES, "r-1-xyz", 8 * MIB, "Completed", node="worker-2",
                 startTimestamp="2026-12-03T10:00:00Z", completionTimestamp="2026-12-03T10:00:04Z")
    app = KbrowseApp(cluster=session)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: shows(app, ClusterBackupsScreen), what="the Backups screen")
        await pilot.press("6")
        await until(pilot, lambda: shows(app, MovementScreen)
                    and movement_row(app.screen, "shop-1-abcde") is not None, what="the DataUpload row")
        screen = app.screen
        kind, owner, target, node, phase, progress, rate, _eta, _age = movement_row(screen, "shop-1-abcde")
        assert (kind, owner, target, node, phase) == ("DataUpload", "shop-1", "shop/data", "worker-1", "InProgress")
        assert "0%" in progress and "0B/100M" in progress and rate == ""
        finished = movement_row(screen, "r-1-xyz")
        assert finished[:5] == ("PodVolRestore", "r-1", "shop/web-0/cache", "worker-2", "Completed")
        assert finished[6:8] == ("2.0M/s", "4s")  # mean rate and duration from its timestamps

        raised = time.monotonic()
        set_progress(kube, DATA_UPLOADS, "shop-1-abcde", 25 * MIB)
        await until(pilot, lambda: "25.0M/100M" in movement_row(screen, "shop-1-abcde")[5]
                    and movement_row(screen, "shop-1-abcde")[6].endswith("/s"), timeout=5, what="new bytes and a rate")
        assert time.monotonic() - raised < 2.0
        _, _, _, _, _, progress, rate, eta, _ = movement_row(screen, "shop-1-abcde")
        assert "25%" in progress and rate.endswith("M/s") and eta  # 75 MiB left at that rate
        assert screen.table.items[0].name == "shop-1-abcde"  # running ones first

        set_progress(kube, DATA_UPLOADS, "shop-1-abcde", 100 * MIB, "Completed",
                     completionTimestamp="2026-12-03T10:00:50Z")
        await until(pilot, lambda: movement_row(screen, "shop-1-abcde")[4] == "Completed", what="completion")
        row = movement_row(screen, "shop-1-abcde")
        assert row[6:8] == ("2.0M/s", "50s")


@drive
async def test_restore_from_the_form_with_a_namespace_mapping(cluster: Kube, session: ClusterSession,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    cluster.create(BACKUPS, NS, velero_object("Backup", "shop-1", {"includedNamespaces": ["shop"]}))
    wait_phase(cluster, BACKUPS, "shop-1")
    app = KbrowseApp(cluster=session)
    notes = record_notifications(app, monkeypatch)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: shows(app, ClusterBackupsScreen) and app.screen.current is not None
                    and app.screen.current.status.phase == "Completed", what="the completed backup")
        await pilot.press("r")
        await until(pilot, lambda: shows(app, RestoreFormScreen), what="the restore form")
        form = app.screen
        form.query_one("#namespace-mappings", Input).value = "shop"
        await pilot.press("ctrl+s")
        assert "namespace mappings: expected src:dst pairs" in str(form.query_one("#form-problems").content)
        form.query_one("#name", Input).value = "shop-copy"
        form.query_one("#namespace-mappings", Input).value = "shop:shop-copy"
        await pilot.press("ctrl+s")
        await until(pilot, lambda: not shows(app, RestoreFormScreen), what="the form to close")
        await until(pilot, lambda: notes, what="the submission")
        assert notes[-1][0] == 'Restore request "shop-copy" submitted: 2 shows restores.', notes
        await pilot.press("2")
        await until(pilot, lambda: shows(app, RestoresScreen) and any(
            r["metadata"]["name"] == "shop-copy" and (r.get("status") or {}).get("phase") == "Completed"
            for r in app.screen.table.items), timeout=30, what="the restore to complete on screen")
        row = app.screen.row(app.screen.current)
        assert row[:3] == ["shop-copy", "shop-1", "Completed"]
        # the pane followed the restore to its end: `velero restore describe --details`
        pane = app.screen.pane

        def described() -> str:
            return " ".join(pane.plain.split()) if pane.border_title == "Describe shop-copy" else ""

        await until(pilot, lambda: "Phase: Completed" in described() and "Resource List:" in described()
                    and "not found" not in described(), timeout=15, what="the restore's describe")
        text = described()
        assert "Backup: shop-1" in text and "Namespace mappings: shop=shop-copy" in text
        assert "apps/v1/Deployment: - shop-copy/web" in text  # the resource list, downloaded
        assert pane.border_subtitle == "velero restore describe --details"
    restore = cluster.get(RESTORES, NS, "shop-copy")
    assert restore["spec"]["namespaceMapping"] == {"shop": "shop-copy"}
    assert cluster.get(DEPLOYMENTS, "shop-copy", "web")["metadata"]["labels"]["velero.io/restore-name"] == "shop-copy"


@drive
async def test_pause_a_schedule_and_back_up_from_it(cluster: Kube, session: ClusterSession) -> None:
    cluster.create(SCHEDULES, NS, velero_object("Schedule", "nightly", {
        "schedule": "0 3 * * *", "skipImmediately": True, "template": {"includedNamespaces": ["shop"]}}))
    app = KbrowseApp(cluster=session)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: shows(app, ClusterBackupsScreen), what="the Backups screen")
        await pilot.press("3")
        await until(pilot, lambda: shows(app, SchedulesScreen) and app.screen.current is not None
                    and app.screen.row(app.screen.current)[1] == "Enabled", what="the enabled schedule")
        await pilot.press("p")
        await until(pilot, lambda: app.screen.row(app.screen.current)[-1] == "true", what="paused on screen")
        await pilot.press("b")
        wait_for(lambda: [b for b in cluster.list(BACKUPS, NS)["items"]
                          if b["metadata"]["labels"].get("velero.io/schedule-name") == "nightly"],
                 lambda found: found, what="the schedule's backup")
        await pilot.press("1")
        await until(pilot, lambda: shows(app, ClusterBackupsScreen) and any(
            b.name.startswith("nightly-") for b in app.screen.table.items), what="the backup on the Backups screen")


@pytest.fixture
def jane(kube_api: KubeApi, tmp_path) -> Iterator[ClusterSession]:
    """A user of her own (her own token), whom the tests deny rights."""
    path = write_kubeconfig(tmp_path / "jane.kubeconfig", kube_api.url, token="jane-token")
    s = ClusterSession.connect(KubeTarget(str(path), None, NS))
    yield s
    s.close()


@drive
async def test_a_forbidden_verb_is_one_clear_line(cluster: Kube, kube_api: KubeApi, jane: ClusterSession,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    cluster.create(BACKUPS, NS, velero_object("Backup", "shop-1", {"includedNamespaces": ["shop"]}))
    wait_phase(cluster, BACKUPS, "shop-1")
    api = kube_api.server
    api.deny("jane-token", "jane", "create", "velero.io", "deletebackuprequests", NS)
    api.deny("jane-token", "jane", "list", "velero.io", "restores", NS)
    app = KbrowseApp(cluster=jane)
    notes = record_notifications(app, monkeypatch)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: shows(app, ClusterBackupsScreen) and app.screen.current is not None,
                    what="the backup")
        await pilot.press("x")
        await until(pilot, lambda: shows(app, ConfirmScreen), what="the confirm")
        assert "Delete backup shop-1?" in str(app.screen.query_one(".heading").content)
        await pilot.press("y")
        await until(pilot, lambda: any(kw.get("severity") == "error" for _, kw in notes), what="the error")
        message = next(m for m, kw in notes if kw.get("severity") == "error")
        assert message.startswith("not allowed to create deletebackuprequests.velero.io in namespace velero")
        assert 'User "jane" cannot create resource "deletebackuprequests"' in message
        assert "\n" not in message and "Traceback" not in message
        assert cluster.get_or_none(BACKUPS, NS, "shop-1") is not None

        await pilot.press("2")
        await until(pilot, lambda: shows(app, RestoresScreen) and "not allowed to list" in
                    str(app.screen.query_one("#status").content), what="the restores' error")
        status = str(app.screen.query_one("#status").content)
        assert status.startswith("not allowed to list restores.velero.io in namespace velero")

        api.allow_all()  # granted now: the same keys delete it, and the row goes when the backup does
        await pilot.press("1")
        await until(pilot, lambda: shows(app, ClusterBackupsScreen), what="the Backups screen")
        await pilot.press("x", "y")
        await until(pilot, lambda: not app.screen.table.items, timeout=30, what="the deleted backup's row to go")
        assert cluster.get_or_none(BACKUPS, NS, "shop-1") is None
