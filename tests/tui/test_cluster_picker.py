"""The source picker offers the kubeconfig's contexts and the storage locations found there."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import OptionList

from kbrowse.tui.app import KbrowseApp
from kbrowse.tui.screens.backups import BackupsScreen
from kbrowse.tui.screens.cluster_backups import ClusterBackupsScreen
from kbrowse.tui.screens.source_picker import SourcePickerScreen
from mover.kube.framework.client import Kube
from tests.support.kubeapi.fixtures import CONTEXT, KubeApi
from tests.support.s3server import S3Server
from tests.support.velero_env import credentials_secret, s3_location
from tests.tui.test_tui import SIZE, drive, until
from tests.support.tuikit import shows


def labels(options: OptionList) -> list[str]:
    return [str(options.get_option_at_index(i).prompt) for i in range(options.option_count)]


@drive
async def test_picker_offers_contexts_and_their_storage_locations(
        kube: Kube, kube_api: KubeApi, s3_server: S3Server, s3_bucket: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    s3_location(kube, s3_server, s3_bucket, credential=credentials_secret(kube, s3_server))
    monkeypatch.chdir(tmp_path)
    for var in ("RESTIC_REPOSITORY", "RESTIC_PASSWORD", "RESTIC_PASSWORD_FILE", "KUBERNETES_SERVICE_HOST"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("KUBECONFIG", str(kube_api.kubeconfig_path))
    app = KbrowseApp(None)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: shows(app, SourcePickerScreen) and app.screen.query("#sources")
                    and app.screen.query_one("#sources", OptionList).option_count == 2, what="two sources")
        options = app.screen.query_one("#sources", OptionList)
        cluster, location = labels(options)
        assert cluster.startswith(f"cluster  {CONTEXT}") and "namespace velero" in cluster
        assert location.startswith("storage location  default") and s3_bucket in location
        options.focus()
        await pilot.press("down", "enter")
        await until(pilot, lambda: shows(app, BackupsScreen)
                    and not shows(app, ClusterBackupsScreen), what="the bucket's backups")
        await until(pilot, lambda: "0 backups" in str(app.screen.query_one("#status").content), what="listed")
        await pilot.press("escape")
        await until(pilot, lambda: shows(app, SourcePickerScreen), what="back to the picker")
        options.focus()
        await pilot.press("up", "enter")
        await until(pilot, lambda: shows(app, ClusterBackupsScreen), what="the cluster's backups")


@drive
async def test_enter_on_a_storage_location_opens_its_bucket(cluster: Kube, session) -> None:
    from mover.kube.resources import BACKUPS
    from tests.support.velero_env import NS, velero_object, wait_phase

    cluster.create(BACKUPS, NS, velero_object("Backup", "shop-1", {"includedNamespaces": ["shop"]}))
    wait_phase(cluster, BACKUPS, "shop-1")
    app = KbrowseApp(cluster=session)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: shows(app, ClusterBackupsScreen), what="the Backups screen")
        await pilot.press("4")
        await until(pilot, lambda: getattr(app.screen, "TAB", "") == "locations" and app.screen.current is not None
                    and app.screen.row(app.screen.current)[3] == "Available", what="the available location")
        await pilot.press("enter")
        await until(pilot, lambda: type(app.screen) is BackupsScreen and app.screen.table.items, timeout=20,
                    what="the bucket's backups")
        assert [b.name for b in app.screen.table.items] == ["shop-1"]  # read from the bucket, not the cluster
        await pilot.press("escape")
        await until(pilot, lambda: getattr(app.screen, "TAB", "") == "locations", what="back on the locations")
