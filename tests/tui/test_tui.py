"""The kbrowse TUI driven with Textual's pilot, on repositories the engine wrote."""

from __future__ import annotations

import asyncio
import filecmp
import functools
import io
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from rich.console import Console
from textual.css.query import NoMatches
from textual.widgets import Input, OptionList

from kbrowse.demo import DEMO_PASSWORD, Demo, run_demo
from kbrowse.tui.app import KbrowseApp
from kbrowse.browse.diff import ADDED, CHANGED
from kbrowse.fuse.mountpoint import MountError, load_fs
from kbrowse.tui.preview_content import HexLines, TextLines
from kbrowse.tui.screens.backups import BackupsScreen
from kbrowse.tui.screens.browser import BrowserScreen
from kbrowse.tui.screens.compare import CompareScreen
from kbrowse.tui.screens.find import FindScreen
from kbrowse.tui.screens.restore import RestoreScreen
from kbrowse.tui.screens.snapshots import SnapshotsScreen
from kbrowse.tui.screens.source_picker import SourcePickerScreen
from kbrowse.tui.ui_thread import deliver
from kbrowse.tui.widgets.dir_tree import DirTree
from kbrowse.tui.widgets.footer import Footer
from kbrowse.tui.widgets.preview import Preview
from kbrowse.tui.widgets.virtual_table import VirtualTable
from mover.repo.open import open_repository
from mover.view.node import Node
from mover.repo.view import RepositoryView
from tests.support.tuikit import big_folder_repo, shows

SIZE = (140, 40)
SNAPSHOTS = 4  # the demo repository: a pod volume and a data upload, in each of two backups


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Demo:
    return run_demo(tmp_path_factory.mktemp("tui") / "kbrowse-demo")


@pytest.fixture
def view(demo: Demo) -> RepositoryView:
    v = RepositoryView(open_repository(str(demo.repo_path), DEMO_PASSWORD))
    yield v
    v.close()


def drive(test: Callable) -> Callable:
    """Run an async pilot test on its own event loop (no asyncio plugin needed)."""
    @functools.wraps(test)
    def run(*args, **kwargs) -> None:
        asyncio.run(test(*args, **kwargs))
    return run


async def until(pilot, cond: Callable[[], object], timeout: float = 10.0, what: str = "") -> None:
    """Let the app run until ``cond()`` holds (workers finish at their own pace)."""
    end = time.monotonic() + timeout
    while not _holds(cond):
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what or cond}")
        await pilot.pause(0.02)


def _holds(cond: Callable[[], object]) -> object:
    try:
        return cond()
    except NoMatches:  # a screen just pushed is still composing: its widgets come next
        return False


def text_of(widget) -> str:
    """What a Static shows, as plain text."""
    console = Console(width=200, record=True, file=io.StringIO())
    console.print(widget.content)
    return console.export_text()


def listing(app: KbrowseApp) -> VirtualTable:
    return app.screen.query_one("#listing", VirtualTable)


def names(app: KbrowseApp) -> list[str]:
    return [n.name for n in listing(app).items]


async def open_browser(pilot, app: KbrowseApp) -> BrowserScreen:
    await until(pilot, lambda: shows(app, SnapshotsScreen) and app.screen.table.items,
                what="snapshots")
    await pilot.press("enter")
    await until(pilot, lambda: shows(app, BrowserScreen) and listing(app).items,
                what="browser listing")
    return app.screen


async def show(pilot, app: KbrowseApp, path: str) -> Node:
    """Put the browser's cursor on ``path`` (as find and compare do) and wait for its preview."""
    browser = app.screen
    assert isinstance(browser, BrowserScreen)
    folder, _, name = path.rpartition("/")
    browser.reveal(path)
    await until(pilot, lambda: browser.dir.path == (folder or "/") and listing(app).current is not None
                and listing(app).current.name == name, what=f"cursor on {path}")
    preview = app.screen.query_one(Preview)
    await until(pilot, lambda: preview.border_title == name and not preview.pending, what="preview")
    return listing(app).current


# ---- snapshots -------------------------------------------------------------------------------


@drive
async def test_snapshots_listed_newest_first_and_filtered(view: RepositoryView) -> None:
    app = KbrowseApp(view, "demo")
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: shows(app, SnapshotsScreen) and len(app.screen.table.items) == SNAPSHOTS)
        screen = app.screen
        table = screen.table
        assert {"backup=shop-daily-2", "volume=data"} <= set(screen.current.tags)
        assert table.has_focus
        assert screen.row(table.items[0])[0] == screen.current.short_id

        await pilot.press("slash", *"backup=shop-daily-1")
        assert screen.query_one("#filter", Input).value == "backup=shop-daily-1"
        assert len(table.items) == 1 and "backup=shop-daily-1" in screen.current.tags
        await pilot.press("escape")
        assert len(table.items) == SNAPSHOTS and table.has_focus
        await pilot.press(*"demo-day=2")  # typing on the table filters too ("d" is not bound)
        assert screen.query_one("#filter", Input).value == "demo-day=2"
        assert len(table.items) == 0
        await pilot.press("escape")
        assert len(table.items) == SNAPSHOTS
        await pilot.press("slash", *screen.all[0].id.hex()[20:30])  # the full id matches, not only the short one
        assert [s.id for s in table.items] == [screen.all[0].id]


@drive
async def test_snapshots_sort_by_key_and_header_click(view: RepositoryView) -> None:
    app = KbrowseApp(view, "demo")
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: shows(app, SnapshotsScreen) and len(app.screen.table.items) == SNAPSHOTS)
        screen = app.screen
        table = screen.table
        oldest_first = sorted(screen.snapshots, key=lambda s: (s.time, s.id))
        await pilot.press("S")  # reverse the default: oldest first
        assert [s.short_id for s in table.items] == [s.short_id for s in oldest_first]
        await pilot.press("s")
        assert table.sort_column == "host"
        await pilot.click("#snapshots", offset=(3, 1))  # the ID header (inside the border)
        assert table.sort_column == "id" and not table.sort_reverse
        ids = [s.short_id for s in table.items]
        assert ids == sorted(ids)


@drive
async def test_footer_follows_the_bindings_and_a_click_presses_its_key(view: RepositoryView) -> None:
    app = KbrowseApp(view, "demo")
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: shows(app, SnapshotsScreen) and len(app.screen.table.items) == SNAPSHOTS)
        screen = app.screen
        footer = screen.query_one(Footer)
        line = footer.render().plain
        assert " / Filter " in line and line.rstrip().endswith("^p palette")
        assert "Back" not in line  # Escape has nothing to do yet: not offered
        await pilot.click(Footer, offset=(line.index("Filter"), 0))
        assert screen.query_one("#filter", Input).has_focus
        await until(pilot, lambda: "esc Back" in footer.render().plain, what="the footer to offer Escape")
        await pilot.click(Footer, offset=(footer.render().plain.index("Back"), 0))
        assert screen.table.has_focus
        await until(pilot, lambda: "Back" not in footer.render().plain, what="Escape to leave the footer")


@drive
async def test_enter_opens_the_browser_on_the_newest_snapshot(view: RepositoryView) -> None:
    app = KbrowseApp(view, "demo")
    async with app.run_test(size=SIZE) as pilot:
        browser = await open_browser(pilot, app)
        assert {"backup=shop-daily-2", "volume=data"} <= set(browser.snapshot.tags)
        assert names(app) == ["config", "data", "logs", "README.md", "app.py"]  # folders first
        await pilot.press("escape")
        assert isinstance(app.screen, SnapshotsScreen)


# ---- browser ---------------------------------------------------------------------------------


@drive
async def test_tree_navigation_lists_folders(view: RepositoryView) -> None:
    app = KbrowseApp(view, "demo")
    async with app.run_test(size=SIZE) as pilot:
        browser = await open_browser(pilot, app)
        tree = browser.query_one(DirTree)
        await until(pilot, lambda: len(tree.root.children) == 3, what="tree root children")
        tree.focus()
        await pilot.press("down")  # config
        await until(pilot, lambda: names(app) == ["app.yaml", "nginx.conf"], what="config listing")
        assert browser.dir.path == "/config"
        preview = browser.query_one(Preview)  # the listing's first file, though the tree has focus
        await until(pilot, lambda: preview.border_title == "app.yaml" and not preview.pending)
        await pilot.press("down", "right")  # open the data branch
        await until(pilot, lambda: [c.data.path for c in tree.cursor_node.children] == ["/data/uploads"])
        await pilot.press("right")  # onto uploads
        await until(pilot, lambda: len(names(app)) == 20 and browser.dir.path == "/data/uploads")
        await pilot.press("enter")  # the tree hands over to the listing
        assert listing(app).has_focus
        await pilot.press("backspace")
        await until(pilot, lambda: browser.dir.path == "/data" and listing(app).current.name == "uploads")
        await pilot.press("enter")  # back into uploads, from the listing
        await until(pilot, lambda: browser.dir.path == "/data/uploads")


@drive
async def test_preview_text_is_highlighted(view: RepositoryView, demo: Demo) -> None:
    app = KbrowseApp(view, "demo")
    async with app.run_test(size=SIZE) as pilot:
        await open_browser(pilot, app)
        await show(pilot, app, "/config/app.yaml")
        preview = app.screen.query_one(Preview)
        await pilot.press("enter")  # into the preview, and back
        assert preview.has_focus
        await pilot.press("escape")
        assert listing(app).has_focus and isinstance(app.screen, BrowserScreen)
        assert isinstance(preview.lines, TextLines) and preview.lines.language == "yaml"
        assert preview.border_subtitle == "yaml"
        text = (demo.source / "config" / "app.yaml").read_text()
        assert [ln.plain for ln in preview.lines.lines] == text.rstrip("\n").split("\n")
        assert any(span.style for ln in preview.lines.lines for span in ln.spans)  # colours
        facts = text_of(app.screen.query_one("#facts"))
        assert "-rw-r--r--" in facts and f"{len(text):,} bytes" in facts


@drive
async def test_tree_keys_right_after_a_reveal_are_kept(view: RepositoryView) -> None:
    app = KbrowseApp(view, "demo")
    async with app.run_test(size=SIZE) as pilot:
        browser = await open_browser(pilot, app)
        tree = browser.query_one(DirTree)
        tree.focus()
        tree.reveal([("/", view.list_dir(browser.root))])  # as find and compare results do
        tree.action_cursor_down()  # the user's Down, before the tree is drawn again
        await pilot.pause()
        assert tree.current is not None and tree.current.path == "/config"


@drive
async def test_preview_binary_is_a_hex_dump(view: RepositoryView, demo: Demo) -> None:
    app = KbrowseApp(view, "demo")
    async with app.run_test(size=SIZE) as pilot:
        await open_browser(pilot, app)
        await show(pilot, app, "/data/app.db")
        preview = app.screen.query_one(Preview)
        assert isinstance(preview.lines, HexLines)
        head = (demo.source / "data" / "app.db").read_bytes()[:16]
        assert preview.lines.line(0).plain.startswith("00000000  " + " ".join(f"{b:02x}" for b in head[:8]))
        assert len(preview.lines) * preview.lines.per_line == 256 * 1024  # only the first 256 KiB
        assert "first 256.0 KiB of" in preview.border_subtitle


@drive
async def test_preview_of_a_symlink_and_a_folder(view: RepositoryView) -> None:
    app = KbrowseApp(view, "demo")
    async with app.run_test(size=SIZE) as pilot:
        await open_browser(pilot, app)
        await show(pilot, app, "/logs/current.log")
        assert "Symbolic link to access-2026-11-07.log" in app.screen.query_one(Preview).plain
        await show(pilot, app, "/data/uploads")
        assert "20 other entries" in app.screen.query_one(Preview).plain


@drive
async def test_copy_path(view: RepositoryView) -> None:
    app = KbrowseApp(view, "demo")
    async with app.run_test(size=SIZE) as pilot:
        await open_browser(pilot, app)
        await show(pilot, app, "/config/nginx.conf")
        await pilot.press("y")
        assert app.clipboard == "/config/nginx.conf"
        app.screen.query_one(DirTree).focus()  # with the tree focused, its folder is the selection
        await pilot.press("y")
        assert app.clipboard == "/config"


# ---- restore ---------------------------------------------------------------------------------


async def restore_via_dialog(pilot, app: KbrowseApp, target: Path, skip: bool = False) -> RestoreScreen:
    await pilot.press("r")
    await until(pilot, lambda: shows(app, RestoreScreen))
    dialog = app.screen
    dialog.query_one("#restore-target", Input).value = str(target)
    if skip:
        await pilot.click("#skip")
    await pilot.click("#start")
    await until(pilot, lambda: dialog.finished, timeout=30, what="restore")
    return dialog


@drive
async def test_restore_a_file(view: RepositoryView, demo: Demo, tmp_path: Path) -> None:
    app = KbrowseApp(view, "demo")
    async with app.run_test(size=SIZE) as pilot:
        await open_browser(pilot, app)
        await show(pilot, app, "/data/app.db")
        await pilot.press("r")
        await until(pilot, lambda: shows(app, RestoreScreen))
        short = app.screen_stack[-2].snapshot.short_id
        target = app.screen.query_one("#restore-target", Input).value
        assert target == f"./kbrowse-restore/{short}/data/app.db"
        await pilot.press("escape")
        assert isinstance(app.screen, BrowserScreen)

        dialog = await restore_via_dialog(pilot, app, tmp_path / "out" / "app.db")
        assert dialog.outcome.ok and dialog.outcome.result.files == 1
        assert (tmp_path / "out" / "app.db").read_bytes() == (demo.source / "data" / "app.db").read_bytes()
        assert "Restored 1 file, 0 folders" in text_of(dialog.query_one("#restore-status"))
        bar = dialog.query_one("#restore-progress")
        assert bar.percentage == 1
        await pilot.press("escape")
        assert isinstance(app.screen, BrowserScreen)


def same_tree(a: Path, b: Path) -> bool:
    cmp = filecmp.dircmp(a, b)
    if cmp.left_only or cmp.right_only or cmp.funny_files:
        return False
    _, mismatch, errors = filecmp.cmpfiles(a, b, cmp.common_files, shallow=False)
    return not mismatch and not errors and all(same_tree(a / d, b / d) for d in cmp.common_dirs)


@drive
async def test_restore_a_folder(view: RepositoryView, demo: Demo, tmp_path: Path) -> None:
    app = KbrowseApp(view, "demo")
    async with app.run_test(size=SIZE) as pilot:
        await open_browser(pilot, app)
        await show(pilot, app, "/data")
        dialog = await restore_via_dialog(pilot, app, tmp_path / "data")
        assert dialog.outcome.ok and dialog.outcome.result.files == 21
        assert same_tree(tmp_path / "data", demo.source / "data")


@drive
async def test_restore_skip_keeps_existing_files(view: RepositoryView, demo: Demo, tmp_path: Path) -> None:
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "access-2026-11-01.log").write_text("mine\n")
    app = KbrowseApp(view, "demo")
    async with app.run_test(size=SIZE) as pilot:
        await open_browser(pilot, app)
        await show(pilot, app, "/logs")
        dialog = await restore_via_dialog(pilot, app, tmp_path / "logs", skip=True)
        assert dialog.outcome.ok and dialog.outcome.skipped == 1
        assert (tmp_path / "logs" / "access-2026-11-01.log").read_text() == "mine\n"
        for name in ("access-2026-11-02.log", "access-2026-11-08.log"):
            assert (tmp_path / "logs" / name).read_bytes() == (demo.source / "logs" / name).read_bytes()
        assert os.readlink(tmp_path / "logs" / "current.log") == "access-2026-11-07.log"
        assert sorted(os.listdir(tmp_path)) == ["logs"]  # the staging folder is gone


@drive
async def test_restore_can_be_cancelled(demo: Demo, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    gate = threading.Event()
    repo = open_repository(str(demo.repo_path), DEMO_PASSWORD)
    view = RepositoryView(repo)
    load = repo.backend.load

    def slow_load(*args, **kwargs):  # packs arrive only once the test has pressed Cancel
        gate.wait(10)
        return load(*args, **kwargs)

    monkeypatch.setattr(repo.backend, "load", slow_load)
    app = KbrowseApp(view, "demo")
    async with app.run_test(size=SIZE) as pilot:
        gate.set()
        await open_browser(pilot, app)
        await show(pilot, app, "/data")
        gate.clear()
        await pilot.press("r")
        await until(pilot, lambda: shows(app, RestoreScreen))
        dialog = app.screen
        dialog.query_one("#restore-target", Input).value = str(tmp_path / "data")
        await pilot.click("#start")
        await until(pilot, lambda: dialog.running)
        await pilot.click("#cancel")
        assert dialog.cancel_event.is_set()
        gate.set()
        await until(pilot, lambda: dialog.finished, what="cancelled restore")
        assert dialog.outcome.result.cancelled
        assert "Cancelled" in text_of(dialog.query_one("#restore-status"))
        await pilot.pause(0.3)  # a button ignores clicks while it shows the last one
        await pilot.click("#cancel")  # now "Close"
        await until(pilot, lambda: shows(app, BrowserScreen))
    view.close()


# ---- find and compare ------------------------------------------------------------------------


@drive
async def test_find_streams_results_and_jumps_to_the_entry(view: RepositoryView) -> None:
    app = KbrowseApp(view, "demo")
    async with app.run_test(size=SIZE) as pilot:
        browser = await open_browser(pilot, app)
        await pilot.press("f")
        await until(pilot, lambda: shows(app, FindScreen))
        find = app.screen
        results = find.query_one("#find-results", VirtualTable)
        await pilot.press(*"*.yaml")
        await until(pilot, lambda: "done" in text_of(find.query_one("#find-status")))
        assert [p for p, _ in results.items] == ["/config/app.yaml"]

        find.query_one(Input).value = "IMAGE-01"  # a substring, any case
        await pilot.pause()
        await until(pilot, lambda: "done" in text_of(find.query_one("#find-status")))
        assert [p for p, _ in results.items] == [f"/data/uploads/image-01{i}.bin" for i in range(10)]
        await pilot.press("down", "enter")
        await until(pilot, lambda: app.screen is browser and browser.dir.path == "/data/uploads"
                    and listing(app).current.name == "image-011.bin")


@drive
async def test_compare_with_parent_shows_the_demo_changes(view: RepositoryView) -> None:
    app = KbrowseApp(view, "demo")
    async with app.run_test(size=SIZE) as pilot:
        browser = await open_browser(pilot, app)
        await pilot.press("c")
        await until(pilot, lambda: shows(app, CompareScreen) and app.screen.done)
        compare = app.screen
        assert {"backup=shop-daily-1", "volume=data"} <= set(compare.parent_snapshot.tags)
        changes = {(c.kind, c.path) for c in compare.query_one(VirtualTable).items}
        assert changes == {(CHANGED, "/config/app.yaml"), (CHANGED, "/data/app.db"),
                           (ADDED, "/logs/access-2026-11-08.log")}
        summary = text_of(compare.query_one("#compare-summary"))
        assert "1 added" in summary and "2 changed" in summary and "0 removed" in summary
        table = compare.query_one(VirtualTable)
        table.select_where(lambda c: c.path == "/data/app.db")
        await pilot.press("enter")
        await until(pilot, lambda: app.screen is browser and browser.dir.path == "/data"
                    and listing(app).current.name == "app.db")


@drive
async def test_compare_from_the_snapshots_screen(view: RepositoryView) -> None:
    app = KbrowseApp(view, "demo")
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: shows(app, SnapshotsScreen) and len(app.screen.table.items) == SNAPSHOTS)
        # newest first: the pod volume's and the data upload's snapshots of each backup
        await pilot.press("down", "down", "c")  # the pod volume's first snapshot has no parent
        await until(pilot, lambda: shows(app, CompareScreen))
        assert "has no parent" in text_of(app.screen.query_one("#compare-summary"))
        await pilot.press("escape", "up", "up", "c")
        await until(pilot, lambda: shows(app, CompareScreen) and app.screen.done)
        app.screen.query_one(VirtualTable).select_where(lambda c: c.path.endswith("08.log"))
        await pilot.press("enter")  # opens a browser on that snapshot
        await until(pilot, lambda: shows(app, BrowserScreen) and app.screen.dir.path == "/logs"
                    and listing(app).current.name == "access-2026-11-08.log")


@drive
async def test_palette_offers_the_screen_actions(view: RepositoryView) -> None:
    app = KbrowseApp(view, "demo")
    async with app.run_test(size=SIZE) as pilot:
        browser = await open_browser(pilot, app)
        titles = {c.title for c in app.get_system_commands(browser)}
        assert {"Restore", "Copy path", "Find", "Compare", "Up", "Quit"} <= titles
        await show(pilot, app, "/README.md")
        await pilot.press("ctrl+p", *"restore")
        await pilot.pause(0.5)  # the palette searches in the background
        await pilot.press("enter")
        await until(pilot, lambda: shows(app, RestoreScreen))
        assert "Restore /README.md" in text_of(app.screen.query_one(".heading"))


# ---- mount ---------------------------------------------------------------------------------


@drive
async def test_mount_in_the_background_and_unmount_on_exit(view: RepositoryView, demo: Demo) -> None:
    try:
        load_fs()
    except MountError as e:
        pytest.skip(str(e))
    app = KbrowseApp(view, "demo")
    async with app.run_test(size=SIZE) as pilot:
        browser = await open_browser(pilot, app)
        titles = {c.title for c in app.get_system_commands(browser)}
        assert "Mount" in titles and "Unmount" not in titles
        await pilot.press("m")
        await until(pilot, lambda: app.mounts.get(browser.snapshot) is not None, what="mount")
        mp = Path(app.mounts.get(browser.snapshot).mountpoint)
        assert app.clipboard == str(mp) and str(mp) in browser.sub_title
        # the kernel hands these reads to the mount's own threads, outside the event loop
        data = await asyncio.to_thread((mp / "data" / "app.db").read_bytes)
        assert data == (demo.source / "data" / "app.db").read_bytes()
        await pilot.press("u")
        await until(pilot, lambda: app.mounts.get(browser.snapshot) is None)
        assert not mp.exists()
        await pilot.press("m")
        await until(pilot, lambda: app.mounts.get(browser.snapshot) is not None, what="mount again")
        mp = Path(app.mounts.get(browser.snapshot).mountpoint)
        assert os.path.ismount(mp)
    assert not mp.exists()  # unmounted when the app ended


# ---- source picker ---------------------------------------------------------------------------


@pytest.fixture
def no_env_repo(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for var in ("RESTIC_REPOSITORY", "RESTIC_PASSWORD", "RESTIC_PASSWORD_FILE", "KUBERNETES_SERVICE_HOST"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-kubeconfig"))  # and no cluster to offer


def record_notifications(app: KbrowseApp, monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, dict]]:
    notes: list[tuple[str, dict]] = []
    monkeypatch.setattr(app, "notify", lambda message, **kw: notes.append((str(message), kw)))
    return notes


@drive
async def test_source_picker_wrong_password_is_an_error(demo: Demo, tmp_path: Path, no_env_repo,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no ./kbrowse-demo here
    app = KbrowseApp(None)
    notes = record_notifications(app, monkeypatch)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: shows(app, SourcePickerScreen))
        assert not app.screen.query(OptionList)
        await pilot.press(*str(demo.repo_path), "enter", *"not-the-password", "enter")
        await until(pilot, lambda: notes, what="a notification")
        message, kw = notes[0]
        assert kw["severity"] == "error" and "wrong password" in message
        assert isinstance(app.screen, SourcePickerScreen)

        app.screen.query_one("#location", Input).value = str(tmp_path)
        await pilot.press("enter")
        await until(pilot, lambda: len(notes) == 2)
        assert notes[1][1]["severity"] == "error" and "no repository" in notes[1][0]

        app.screen.query_one("#location", Input).value = str(demo.repo_path)
        app.screen.query_one("#password", Input).value = DEMO_PASSWORD
        await pilot.press("enter")
        await until(pilot, lambda: shows(app, SnapshotsScreen))


@drive
async def test_source_picker_offers_the_demo_and_env(demo: Demo, no_env_repo,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(demo.root.parent)
    monkeypatch.setenv("RESTIC_REPOSITORY", str(demo.repo_path))
    app = KbrowseApp(None)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: shows(app, SourcePickerScreen))
        options = app.screen.query_one(OptionList)
        assert options.option_count == 2
        await pilot.press("enter")  # $RESTIC_REPOSITORY, no password known: it is asked for
        assert app.screen.query_one("#password", Input).has_focus
        assert app.screen.query_one("#location", Input).value == str(demo.repo_path)
        options.focus()
        await pilot.press("down", "enter")  # the demo bucket: Velero's default password opens it
        await until(pilot, lambda: shows(app, BackupsScreen) and len(app.screen.table.items) == 2)
        await pilot.press("escape")
        assert isinstance(app.screen, SourcePickerScreen)


# ---- a folder of 100,000 entries -------------------------------------------------------------

@pytest.fixture(scope="module")
def big_repo(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """A snapshot whose only folder holds 100,000 empty files, written with save_tree."""
    where = str(tmp_path_factory.mktemp("big") / "repo")
    big_folder_repo(where, "pw")
    return where, "pw"


@drive
async def test_a_folder_of_100k_entries_opens_and_scrolls_at_once(big_repo: tuple[str, str]) -> None:
    view = RepositoryView(open_repository(*big_repo))
    app = KbrowseApp(view, "big")
    async with app.run_test(size=SIZE) as pilot:
        browser = await open_browser(pilot, app)
        gaps: list[float] = []
        last = [time.perf_counter()]

        def tick() -> None:  # how long the UI thread goes without running its timers
            now = time.perf_counter()
            gaps.append(now - last[0])
            last[0] = now

        app.set_interval(0.01, tick)
        started = time.perf_counter()
        before = set(app.workers)  # the opening's own reveal may still be ending
        browser.reveal("/big", enter=True)
        # awaiting the worker's task, not the pilot (which waits for idle CPU): the loop runs on
        await app.workers.wait_for_complete([w for w in app.workers if w not in before])
        opened = time.perf_counter() - started
        assert len(listing(app).items) == 100_000
        # decoding the 17 MB tree runs in a worker: the UI thread keeps running its timers
        # (its longest stall is json.loads, one C call; compared with the whole load, so that a
        # busy machine slowing both does not fail the test; a load faster than a quarter second
        # cannot freeze the UI noticeably, and leaves too few ticks to compare)
        stall = max(gaps, default=0.0)
        assert stall < max(opened / 2, 0.25), f"UI stalled {stall:.2f}s of {opened:.2f}s"
        # what follows costs the UI thread's CPU, counted with its own clock: a busy machine
        # stretches the wall-clock time, not that
        table = listing(app)
        handed_over = time.thread_time()
        table.set_items(table.items)  # all the UI thread does with the 100,000 entries
        assert time.thread_time() - handed_over < 0.1  # (Textual's DataTable: 8 s)
        await pilot.pause()
        assert time.thread_time() - handed_over < 1.0  # drawn
        table.focus()
        scroll_started = time.thread_time()
        for _ in range(20):
            await pilot.press("pagedown")
        await pilot.press("end")
        await pilot.pause()
        scrolled = time.thread_time() - scroll_started
        assert table.current.name == "file-099999.txt"
        assert scrolled / 21 < 0.5, f"21 page moves took {scrolled:.2f}s of the UI thread"
        await pilot.click("#listing", offset=(3, 1))  # sort by name, descending on the next click
        await pilot.click("#listing", offset=(3, 1))
        assert table.items[0].name == "file-099999.txt"
        print(f"\n100k folder: listed in {opened:.2f}s (tree decode in a worker, longest UI "
              f"stall {stall:.2f}s), 21 page moves in {scrolled:.2f}s of UI-thread CPU")
    view.close()


# ---- bucket mode -------------------------------------------------------------------------------

from kbrowse.tui.screens.backup import BackupScreen, VolumeBrowserScreen
from kbrowse.tui.screens.backups import BackupsScreen
from mover.velero.bsl import BucketView
from mover.velero.repopassword import default_password, fixed
from tests.support.velerobucket import LEDGER_PASSWORD, BuiltBucket
from tests.support.velerobucket import build as build_bucket


@pytest.fixture(scope="module")
def velero_bucket(tmp_path_factory: pytest.TempPathFactory, restic_bin: str) -> BuiltBucket:
    base = tmp_path_factory.mktemp("tui-bucket")
    return build_bucket(base / "bsl", base / "node", restic_bin)


def open_bucket(built: BuiltBucket, *passwords: str) -> BucketView:
    sources = [fixed(f"password {i}", p) for i, p in enumerate(passwords)] or [default_password()]
    return BucketView.open(str(built.root), passwords=sources)


async def backups_ready(pilot, app: KbrowseApp) -> BackupsScreen:
    await until(pilot, lambda: shows(app, BackupsScreen)
                and app.screen.table.items, what="backups")
    return app.screen


async def open_backup(pilot, app: KbrowseApp, name: str) -> BackupScreen:
    screen = await backups_ready(pilot, app)
    screen.table.select_where(lambda b: b.name == name)
    await pilot.press("enter")
    await until(pilot, lambda: shows(app, BackupScreen), what="backup screen")
    backup = app.screen
    await until(pilot, lambda: backup.contents is not None
                and backup.query_one("#volumes", VirtualTable).empty_text != "reading volumes…",
                what="resources and volumes")
    await pilot.pause()
    return backup


@drive
async def test_bucket_backups_listed_described_and_filtered(velero_bucket: BuiltBucket) -> None:
    bucket = open_bucket(velero_bucket)
    app = KbrowseApp(bucket=bucket)
    try:
        async with app.run_test(size=SIZE) as pilot:
            screen = await backups_ready(pilot, app)
            table = screen.table
            assert [b.name for b in table.items] == ["kopia-backup", "legacy-backup", "web-backup"]
            assert [c.label for c in table.columns] == [
                "NAME", "STATUS", "ERRORS", "WARNINGS", "CREATED", "EXPIRES", "STORAGE LOCATION",
                "SELECTOR"]
            web = table.items[2]
            row = table.formatter(web)
            assert row[:4] == ("web-backup", "Completed", "0", "1")
            assert row[5] == "29d" and row[6:] == ("default", "<none>")
            assert table.formatter(table.items[0])[5] == "10d ago"
            assert "3 backups in" in text_of(screen.query_one("#status"))

            describe = screen.query_one("#describe", Preview)
            await until(pilot, lambda: describe.border_title == "Describe kopia-backup"
                        and not describe.pending, what="describe")
            assert "Name:         kopia-backup" in describe.plain

            await pilot.press(*"web")  # typing on the table filters
            assert screen.filter_input.has_focus and screen.filter_input.value == "web"
            assert [b.name for b in table.items] == ["web-backup"]
            assert "1 of 3 backups" in text_of(screen.query_one("#status"))
            await until(pilot, lambda: describe.border_title == "Describe web-backup"
                        and not describe.pending, what="describe of web-backup")
            text = describe.plain
            assert "Phase:  Completed" in text and "Included:  shop, ledger" in text
            assert "pod shop/web-7d9f8: volume cache is an emptyDir" in text
            assert "v1/ConfigMap:" in text  # the resource list
            await pilot.press("escape")
            assert [b.name for b in table.items] == ["kopia-backup", "legacy-backup", "web-backup"]
            assert table.has_focus
    finally:
        bucket.close()


@drive
async def test_bucket_resources_tree_and_yaml_preview(velero_bucket: BuiltBucket) -> None:
    bucket = open_bucket(velero_bucket)
    app = KbrowseApp(bucket=bucket)
    try:
        async with app.run_test(size=SIZE) as pilot:
            backup = await open_backup(pilot, app, "web-backup")
            tree = backup.query_one("#resources")
            top = [str(n.label.plain).split(" (")[0] for n in tree.root.children]
            assert top == sorted({i.ref.resource for i in velero_bucket.items})
            configmaps = tree.root.children[top.index("configmaps")]
            assert [str(n.label.plain) for n in configmaps.children] == ["shop (1)"]
            cluster = tree.root.children[top.index("clusterroles.rbac.authorization.k8s.io")]
            assert [str(n.label.plain) for n in cluster.children] == ["(cluster) (1)"]

            assert backup.select_resource("configmaps", "shop", "web-config")
            preview = backup.query_one("#yaml", Preview)
            await until(pilot, lambda: preview.border_title == "web-config" and not preview.pending,
                        what="YAML preview")
            assert preview.border_subtitle == "configmaps · shop"
            assert isinstance(preview.lines, TextLines) and preview.lines.language == "yaml"
            lines = [ln.plain for ln in preview.lines.lines]
            assert "kind: ConfigMap" in lines and "  name: web-config" in lines
            assert any(span.style for ln in preview.lines.lines for span in ln.spans)  # colours

            await pilot.press("y")
            assert preview.has_focus
            await pilot.press("escape")
            assert tree.has_focus
            await pilot.press("escape")
            assert isinstance(app.screen, BackupsScreen)
    finally:
        bucket.close()


@drive
async def test_bucket_volume_opens_the_browser_previews_and_restores(
        velero_bucket: BuiltBucket, tmp_path: Path) -> None:
    bucket = open_bucket(velero_bucket, "not-it", LEDGER_PASSWORD, "static-passw0rd")
    app = KbrowseApp(bucket=bucket)
    try:
        async with app.run_test(size=SIZE) as pilot:
            backup = await open_backup(pilot, app, "web-backup")
            volumes = backup.query_one("#volumes", VirtualTable)
            assert [v.label for v in volumes.items] == [
                "ledger/db-0/data", "shop/web-7d9f8/cache", "shop/web-7d9f8/html"]
            assert volumes.formatter(volumes.items[2])[2:4] == ("PodVolumeBackup", "restic")
            await pilot.press("v")
            assert volumes.has_focus
            volumes.select_where(lambda v: v.label == "shop/web-7d9f8/html")
            await pilot.press("enter")
            await until(pilot, lambda: shows(app, VolumeBrowserScreen)
                        and listing(app).items, what="the volume's browser")
            browser = app.screen
            html = velero_bucket.volumes["shop/web-7d9f8/html"]
            assert browser.snapshot.id.hex() == html.snapshot_id
            assert "web-backup · shop/web-7d9f8/html" in browser.sub_title
            assert sorted(names(app)) == ["deep", "img", "index.html"]

            await show(pilot, app, "/index.html")
            preview = browser.query_one(Preview)
            assert "<h1>shop</h1>" in preview.plain

            source = velero_bucket.volume_dirs["shop/web-7d9f8/html"]
            await show(pilot, app, "/img/logo.bin")
            dialog = await restore_via_dialog(pilot, app, tmp_path / "logo.bin")
            assert dialog.outcome.ok
            assert (tmp_path / "logo.bin").read_bytes() == (source / "img" / "logo.bin").read_bytes()
            await pilot.press("escape")
            await pilot.press("escape")
            assert isinstance(app.screen, BackupScreen)

            # the ledger repository has its own password: the second source opens it
            volumes.select_where(lambda v: v.label == "ledger/db-0/data")
            volumes.focus()
            await pilot.press("enter")
            await until(pilot, lambda: shows(app, VolumeBrowserScreen)
                        and listing(app).items, what="the ledger volume")
            assert names(app) == ["ledger.csv"]
    finally:
        bucket.close()


@drive
async def test_bucket_volume_errors_are_notifications(velero_bucket: BuiltBucket,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    bucket = open_bucket(velero_bucket)  # Velero's default password only: not the ledger's
    app = KbrowseApp(bucket=bucket)
    notes = record_notifications(app, monkeypatch)
    try:
        async with app.run_test(size=SIZE) as pilot:
            backup = await open_backup(pilot, app, "web-backup")
            volumes = backup.query_one("#volumes", VirtualTable)
            volumes.select_where(lambda v: v.label == "ledger/db-0/data")
            volumes.focus()
            await pilot.press("enter")
            await until(pilot, lambda: any(kw.get("severity") == "error" for _, kw in notes),
                        what="an error")
            message, kw = next((m, kw) for m, kw in notes if kw.get("severity") == "error")
            assert "wrong password" in kw["title"] and "no password opens repository" in message
            assert isinstance(app.screen, BackupScreen)

            await pilot.press("escape")
            backup = await open_backup(pilot, app, "kopia-backup")
            notes.clear()
            volumes = backup.query_one("#volumes", VirtualTable)
            volumes.focus()
            await pilot.press("enter")
            await until(pilot, lambda: any(kw.get("severity") == "error" for _, kw in notes),
                        what="an error")
            message, kw = next((m, kw) for m, kw in notes if kw.get("severity") == "error")
            assert "kopia.repository is not a kopia format blob" in message
            assert isinstance(app.screen, BackupScreen)
    finally:
        bucket.close()


# ---- screens closed while their workers run -------------------------------------------------


@drive
async def test_a_result_for_a_screen_the_user_left_is_dropped(view: RepositoryView) -> None:
    app = KbrowseApp(view, "demo")
    async with app.run_test(size=SIZE) as pilot:
        browser = await open_browser(pilot, app)
        ran: list[str] = []
        await asyncio.to_thread(deliver, browser, ran.append, "shown")  # as a worker does
        await pilot.press("escape")
        assert shows(app, SnapshotsScreen)
        await asyncio.to_thread(deliver, browser, ran.append, "left")
        await pilot.pause()
        assert ran == ["shown"]


# ---- the demo bucket ---------------------------------------------------------------------------


@drive
async def test_demo_bucket_shows_backups_both_volumes_files_and_yaml(demo: Demo) -> None:
    bucket = BucketView.open(str(demo.bucket))  # Velero's default password: nothing to give
    app = KbrowseApp(bucket=bucket)
    try:
        async with app.run_test(size=SIZE) as pilot:
            screen = await backups_ready(pilot, app)
            assert [b.name for b in screen.table.items] == ["shop-daily-1", "shop-daily-2"]
            backup = await open_backup(pilot, app, "shop-daily-2")
            assert backup.select_resource("datauploads.velero.io", "velero", "shop-daily-2-x7k2p")
            yaml_pane = backup.query_one("#yaml", Preview)
            await until(pilot, lambda: yaml_pane.border_title == "shop-daily-2-x7k2p"
                        and not yaml_pane.pending, what="the DataUpload's YAML")
            assert "kind: DataUpload" in yaml_pane.plain and "sourcePVC: db-data" in yaml_pane.plain

            volumes = backup.query_one("#volumes", VirtualTable)
            assert [v.label for v in volumes.items] == ["shop/db-data", "shop/web-0/data"]
            assert [volumes.formatter(v)[2] for v in volumes.items] == ["CSISnapshot", "PodVolumeBackup"]
            volumes.focus()
            volumes.select_where(lambda v: v.label == "shop/db-data")
            await pilot.press("enter")
            await until(pilot, lambda: shows(app, VolumeBrowserScreen) and listing(app).items,
                        what="the data-mover volume's browser")
            assert names(app) == ["pgdata"]
            await show(pilot, app, "/pgdata/postgresql.conf")
            assert "wal_level = replica" in app.screen.query_one(Preview).plain
            await pilot.press("escape")
            await until(pilot, lambda: shows(app, BackupScreen))

            volumes.focus()
            volumes.select_where(lambda v: v.label == "shop/web-0/data")
            await pilot.press("enter")
            await until(pilot, lambda: shows(app, VolumeBrowserScreen) and listing(app).items,
                        what="the pod volume's browser")
            await show(pilot, app, "/config/app.yaml")
            assert "workers: 8" in app.screen.query_one(Preview).plain  # the second day's edit
    finally:
        bucket.close()
