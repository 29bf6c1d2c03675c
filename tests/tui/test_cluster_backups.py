"""The Backups screen on a cluster: what `kbrowse backup get` lists, kept current by watches;
backups made from the form; restores from the form; delete."""

from __future__ import annotations

import json
import re

import pytest
from textual.widgets import Input

from kbrowse.cli import main
from kbrowse.cluster.session import ClusterSession
from kbrowse.tui.app import KbrowseApp
from kbrowse.tui.screens.backup import BackupScreen
from kbrowse.tui.screens.backup_form import BackupFormScreen
from kbrowse.tui.screens.cluster_backups import ClusterBackupsScreen
from kbrowse.tui.widgets.preview import Preview
from mover.kube.framework.client import Kube
from mover.kube.resources import BACKUPS
from tests.support.kubeapi.fixtures import KubeApi
from tests.support.velero_env import NS, velero_object, wait_phase
from tests.tui.test_tui import SIZE, drive, until
from tests.support.tuikit import shows


def backup_get(kube_api: KubeApi, capsys: pytest.CaptureFixture[str]) -> list[list[str]]:
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main(["backup", "get", "--kubeconfig", str(kube_api.kubeconfig_path)])
    out = capsys.readouterr().out
    return [re.split(r"\s{3,}", line.strip()) for line in out.splitlines()[1:]]


@drive
async def test_backups_screen_lists_what_backup_get_lists(cluster: Kube, session: ClusterSession,
                                                          kube_api: KubeApi,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    for name, namespaces in (("shop-1", ["shop"]), ("everything", ["*"])):
        cluster.create(BACKUPS, NS, velero_object("Backup", name, {"includedNamespaces": namespaces}))
        wait_phase(cluster, BACKUPS, name)
    cluster.create(BACKUPS, NS, velero_object("Backup", "broken", {"storageLocation": "nowhere"}))
    wait_phase(cluster, BACKUPS, "broken")
    expected = backup_get(kube_api, capsys)
    app = KbrowseApp(cluster=session)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: shows(app, ClusterBackupsScreen) and len(app.screen.table.items) == 3,
                    what="three backups")
        screen = app.screen
        shown = sorted([list(screen.row(b)) for b in screen.table.items])
        assert shown == sorted(expected)
        assert "3 backups" in str(screen.query_one("#status").content)


async def backups_screen(pilot, app: KbrowseApp) -> ClusterBackupsScreen:
    await until(pilot, lambda: shows(app, ClusterBackupsScreen) and app.screen.session.store.synced("backups")
                and app.screen.session.store.synced("locations"), what="the Backups screen")
    return app.screen


def phases(screen: ClusterBackupsScreen) -> dict[str, str]:
    return {b.name: b.status.phase for b in screen.table.items}


@drive
async def test_backup_from_the_form_completes_and_its_row_follows(cluster: Kube, session: ClusterSession,
                                                                 kube_api: KubeApi,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    app = KbrowseApp(cluster=session)
    async with app.run_test(size=SIZE) as pilot:
        screen = await backups_screen(pilot, app)
        await pilot.press("n")
        await until(pilot, lambda: shows(app, BackupFormScreen), what="the form")
        form = app.screen
        fill(form, name="Bad_Name", **{"include-namespaces": "shop", "ttl": "soon", "selector": "app in web"})
        await pilot.press("ctrl+s")
        problems = str(form.query_one("#form-problems").content)
        assert "not a valid object name" in problems and "TTL 'soon' is not a duration" in problems
        assert "label selector" in problems and app.screen is form  # nothing submitted
        fill(form, name="shop-form", ttl="48h", selector="app=web")
        await pilot.press("ctrl+s")
        await until(pilot, lambda: app.screen is screen, what="the form to close")
        seen: list[str] = []

        def completed() -> bool:
            phase = phases(screen).get("shop-form")
            if phase is not None and (not seen or seen[-1] != phase):
                seen.append(phase)
            return phase == "Completed"

        await until(pilot, completed, timeout=30, what="shop-form to complete on screen")  # no key pressed
        assert screen.current is not None and screen.current.name == "shop-form"  # the cursor went to it
    made = cluster.get(BACKUPS, NS, "shop-form")
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main(["backup", "create", "shop-form", "--include-namespaces", "shop", "--ttl", "48h", "--selector",
              "app=web", "--storage-location", "default", "-o", "json"])
    cli = json.loads(capsys.readouterr().out)["spec"]
    assert {k: made["spec"][k] for k in cli} == cli  # as the CLI makes it (the server adds its defaults)
    assert made["spec"]["labelSelector"] == {"matchLabels": {"app": "web"}}
    assert seen[-1] == "Completed"


def fill(form, **values: str) -> None:
    for field, value in values.items():
        form.query_one(f"#{field}", Input).value = value


@drive
async def test_describe_logs_and_enter_through_the_storage_location(cluster: Kube, session: ClusterSession) -> None:
    cluster.create(BACKUPS, NS, velero_object("Backup", "shop-1", {"includedNamespaces": ["shop"]}))
    wait_phase(cluster, BACKUPS, "shop-1")
    app = KbrowseApp(cluster=session)
    async with app.run_test(size=SIZE) as pilot:
        screen = await backups_screen(pilot, app)
        pane = screen.query_one("#describe", Preview)
        await until(pilot, lambda: pane.border_title == "Describe shop-1" and not pane.pending
                    and "Resource List:" in pane.plain, timeout=20, what="the describe pane")
        lines = pane.plain.splitlines()
        for line in ("Phase:  Completed", "  apps/v1/Deployment:", "    - shop/web"):
            assert line in lines, line  # the resource list came through a DownloadRequest

        await pilot.press("l")
        await until(pilot, lambda: pane.border_title == "Log of shop-1" and not pane.pending, what="the log")
        assert 'msg="Backed up a total of' in pane.plain

        await pilot.press("enter")  # through the backup's storage location, with the bucket's screens
        await until(pilot, lambda: shows(app, BackupScreen) and app.screen.contents is not None,
                    timeout=20, what="the backup's contents")
        backup = app.screen
        assert backup.select_resource("deployments.apps", "shop", "web")
        yaml = backup.query_one("#yaml", Preview)
        await until(pilot, lambda: yaml.border_title == "web" and not yaml.pending, what="the YAML")
        assert "image: nginx:1.27" in yaml.plain
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is screen, what="back on the Backups screen")
