"""Screens of the kbrowse TUI as pictures (pytest-textual-snapshot).

The repository is written by the engine from fixed content, with fixed times and a seeded
``os.urandom`` (keys, IVs: hence snapshot ids), so every run draws the same pixels. Update the
pictures with ``pytest tests/tui/test_tui_snapshots.py --snapshot-update`` and look at them.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import Input

from kbrowse.tui.app import KbrowseApp
from kbrowse.tui.screens.browser import BrowserScreen
from kbrowse.tui.screens.compare import CompareScreen
from kbrowse.tui.screens.find import FindScreen
from kbrowse.tui.screens.restore import RestoreScreen
from kbrowse.tui.screens.source_picker import SourcePickerScreen
from kbrowse.tui.widgets.preview import Preview
from kbrowse.tui.widgets.virtual_table import VirtualTable
from mover.golang import gotime
from mover.repo.backend.local import LocalBackend
from mover.repo.blob import BlobType
from mover.repo.open import open_repository
from mover.repo.repository import Repository
from mover.view.snapshot import Snapshot
from mover.view.node import GO_DIR, GO_SYMLINK, Node
from mover.repo.view import RepositoryView
from tests.support.tuikit import shows
from mover.velero.bsl import BucketView

SIZE = (130, 36)
PASSWORD = "snapshot-tests"
DAY1 = gotime.parse_ns("2026-11-07T02:00:00Z")
DAY2 = gotime.parse_ns("2026-11-08T02:00:00Z")

APP_YAML = ("server:\n  port: 8080\n  workers: {workers}\ndatabase:\n  path: /data/app.db\n"
            "  pool: 10\nfeatures:\n  uploads: true\n  audit_log: true\n")
NGINX = "server {\n    listen 80;\n    location / {\n        proxy_pass http://127.0.0.1:8080;\n    }\n}\n"
APP_PY = ("import http.server\n\n\ndef main() -> None:\n    http.server.test(port=8080)\n\n\n"
          "if __name__ == '__main__':\n    main()\n")


class FixedView(RepositoryView):
    """The repository under a name that does not depend on pytest's temporary directory."""

    def location(self) -> str:
        return "/srv/backups/web-0"


def _file(repo: Repository, name: str, data: bytes, mtime: int, mode: int = 0o644) -> Node:
    blob = repo.save_blob(BlobType.DATA, data)[0] if data else None
    return Node(name=name, type="file", mode=mode, mtime=mtime, atime=mtime, ctime=mtime,
                uid=1000, gid=1000, user="app", group="app", inode=0, size=len(data),
                content=[blob] if blob else [])


def _dir(repo: Repository, name: str, children: list[Node], mtime: int) -> Node:
    return Node(name=name, type="dir", mode=GO_DIR | 0o755, mtime=mtime, atime=mtime, ctime=mtime,
                uid=1000, gid=1000, user="app", group="app", subtree=repo.save_tree(children))


def _volume(repo: Repository, day: int, when: int) -> bytes:
    rnd = random.Random(7)
    hour = 3600 * 10**9
    t = DAY1 - 30 * hour
    logs = []
    for d in range(1, 8 if day == 1 else 9):
        lines = [f"2026-11-{d:02d}T{h:02d}:00:00Z GET /api/items 200 {rnd.randint(1, 99)}ms"
                 for h in range(24)]
        logs.append(_file(repo, f"access-2026-11-{d:02d}.log", ("\n".join(lines) + "\n").encode(),
                          DAY1 - (8 - d) * 24 * hour))
    logs.append(Node(name="current.log", type="symlink", mode=GO_SYMLINK | 0o777, mtime=t, atime=t,
                     ctime=t, linktarget="access-2026-11-07.log"))
    db = random.Random(11).randbytes(96 * 1024) + (b"\0" * 4096 if day == 2 else b"")
    uploads = [_file(repo, f"image-{i:03d}.bin", random.Random(i).randbytes(2000 + 300 * i), t)
               for i in range(5)]
    root = [
        _dir(repo, "config", [_file(repo, "app.yaml", APP_YAML.format(workers=4 * day).encode(), when),
                              _file(repo, "nginx.conf", NGINX.encode(), t)], when),
        _dir(repo, "data", [_file(repo, "app.db", db, when, 0o600),
                            _dir(repo, "uploads", uploads, t)], when),
        _dir(repo, "logs", logs, when),
        _file(repo, "README.md", b"# web-0 data volume\n\nBacked up nightly.\n", t),
        _file(repo, "app.py", APP_PY.encode(), t, 0o755),
    ]
    return repo.save_tree(root)


@pytest.fixture(scope="module")
def fixed_repo(tmp_path_factory: pytest.TempPathFactory) -> str:
    where = str(tmp_path_factory.mktemp("snapshots") / "repo")
    rnd = random.Random(2026)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(os, "urandom", rnd.randbytes)  # keys and IVs, so the snapshot ids are fixed
        repo = Repository.init(LocalBackend(where), PASSWORD)
        parent = None
        for day, when in ((1, DAY1), (2, DAY2)):
            tree = _volume(repo, day, when)
            repo.flush()
            snap = Snapshot(time=when, tree=tree, paths=["/var/lib/kubelet/pods/web-0/volumes/data"],
                            hostname="web-0", username="root", tags=["nightly", f"day={day}"],
                            parent=parent.id if parent else None)
            repo.save_snapshot(snap)
            parent = snap
        repo.close()
    return where


@pytest.fixture(autouse=True)
def utc(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.fixture
def app(fixed_repo: str) -> KbrowseApp:
    view = FixedView(open_repository(fixed_repo, PASSWORD))
    yield KbrowseApp(view, "web-0 backups")
    view.close()


async def until(pilot: Pilot, cond: Callable[[], object], timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, "the screen did not get ready"
        await asyncio.sleep(0.02)
    await pilot.pause()


def steady(run_before: Callable[[Pilot], Awaitable[None]]) -> Callable[[Pilot], Awaitable[None]]:
    """``run_before``, then the text cursors stop blinking: on a busy machine the picture may
    be taken half a second later, with the cursor blinked off."""
    async def run(pilot: Pilot) -> None:
        await run_before(pilot)
        for field in pilot.app.screen.query(Input):
            field.cursor_blink = False
        await pilot.pause()

    return run


async def snapshots_ready(pilot: Pilot) -> None:
    def ready() -> bool:
        tables = pilot.app.screen.query("#snapshots")
        return bool(tables) and len(tables.first().items) == 2

    await until(pilot, ready)


async def browse(pilot: Pilot, path: str) -> BrowserScreen:
    """Open the newest snapshot and put the cursor on ``path``, its preview drawn."""
    await snapshots_ready(pilot)
    await pilot.press("enter")
    await until(pilot, lambda: shows(pilot.app, BrowserScreen))
    browser = pilot.app.screen
    browser.reveal(path)
    name = path.rsplit("/", 1)[-1]
    listing = browser.query_one("#listing", VirtualTable)
    preview = browser.query_one(Preview)
    await until(pilot, lambda: listing.current is not None and listing.current.name == name
                and preview.border_title == name and not preview.pending)
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()
    return browser


def test_snapshots_screen(snap_compare, app: KbrowseApp) -> None:
    assert snap_compare(app, terminal_size=SIZE, run_before=snapshots_ready)


def test_snapshots_screen_filtered(snap_compare, app: KbrowseApp) -> None:
    async def run_before(pilot: Pilot) -> None:
        await snapshots_ready(pilot)
        await pilot.press("slash", *"day=1")
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=steady(run_before))


def test_browser_text_preview(snap_compare, app: KbrowseApp) -> None:
    async def run_before(pilot: Pilot) -> None:
        await browse(pilot, "/config/app.yaml")

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_browser_hex_preview(snap_compare, app: KbrowseApp) -> None:
    async def run_before(pilot: Pilot) -> None:
        await browse(pilot, "/data/app.db")

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_restore_dialog(snap_compare, app: KbrowseApp) -> None:
    async def run_before(pilot: Pilot) -> None:
        await browse(pilot, "/logs")
        await pilot.press("r")
        await until(pilot, lambda: shows(pilot.app, RestoreScreen))

    assert snap_compare(app, terminal_size=SIZE, run_before=steady(run_before))


def test_find_dialog(snap_compare, app: KbrowseApp) -> None:
    async def run_before(pilot: Pilot) -> None:
        await browse(pilot, "/README.md")
        await pilot.press("f")
        await until(pilot, lambda: shows(pilot.app, FindScreen))
        await pilot.press(*"*2026-11-0[1-3]*")
        status = pilot.app.screen.query_one("#find-status")
        await until(pilot, lambda: "done" in str(status.content))

    assert snap_compare(app, terminal_size=SIZE, run_before=steady(run_before))


def test_compare_screen(snap_compare, app: KbrowseApp) -> None:
    async def run_before(pilot: Pilot) -> None:
        await snapshots_ready(pilot)
        await pilot.press("c")
        await until(pilot, lambda: shows(pilot.app, CompareScreen) and pilot.app.screen.done)

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_source_picker(snap_compare, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for var in ("RESTIC_REPOSITORY", "RESTIC_PASSWORD", "RESTIC_PASSWORD_FILE", "KUBERNETES_SERVICE_HOST"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-kubeconfig"))  # no clusters offered either

    async def run_before(pilot: Pilot) -> None:
        await until(pilot, lambda: shows(pilot.app, SourcePickerScreen))

    assert snap_compare(KbrowseApp(None), terminal_size=SIZE, run_before=steady(run_before))


# ---- bucket mode ---------------------------------------------------------------------------------

BUCKET_NOW = datetime(2026, 11, 8, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def fixed_bucket(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Velero's metadata for four backups at fixed times (no volume data: the table and the
    describe pane are what is drawn)."""
    from mover.velero.objects import BackupResults, Result
    from mover.velero.objectstore import LocalStore
    from mover.velero.writer import BackupRecord, write_backup
    from tests.support.velerobucket import _backup, _items

    root = tmp_path_factory.mktemp("bucket") / "bsl"
    root.mkdir()
    store = LocalStore(root)
    items = _items()
    specs = [("nightly-20261106020000", ["shop"], 0, 6), ("nightly-20261107020000", ["shop"], 0, 5),
             ("nightly-20261108020000", ["shop", "ledger"], 1, 4), ("before-upgrade", ["ledger"], 0, 30)]
    for i, (name, namespaces, warnings, days_ago) in enumerate(specs):
        started = BUCKET_NOW - timedelta(days=days_ago, hours=10)
        results = BackupResults(warnings=Result(namespaces={"shop": ["pod shop/web-0: volume cache is an emptyDir"]})) if warnings else BackupResults()
        write_backup(store, BackupRecord(
            backup=_backup(name, f"00000000-0000-4000-8000-00000000000{i}", namespaces, len(items),
                           warnings=warnings, started=started),
            items=items, results=results, volume_infos=[]), mtime=started.timestamp())
    return str(root)


class FixedBucket(BucketView):
    def location(self) -> str:
        return "s3:https://minio.example.com/velero"


async def backups_ready(pilot: Pilot) -> None:
    from kbrowse.tui.screens.backups import BackupsScreen

    def ready() -> bool:
        screen = pilot.app.screen
        if not shows(pilot.app, BackupsScreen) or not screen.table.items:
            return False
        describe = screen.query_one("#describe", Preview)
        return describe.border_title.startswith("Describe") and not describe.pending

    await until(pilot, ready)
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


def test_bucket_backups_screen(snap_compare, fixed_bucket: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from kbrowse.tui.screens import backups

    monkeypatch.setattr(backups, "now", lambda: BUCKET_NOW)
    bucket = FixedBucket.open(fixed_bucket)

    async def run_before(pilot: Pilot) -> None:
        await backups_ready(pilot)
        await pilot.press("down", "down")
        await backups_ready(pilot)

    try:
        assert snap_compare(KbrowseApp(bucket=bucket), terminal_size=SIZE, run_before=run_before)
    finally:
        bucket.close()
