"""One snapshot: folder tree, listing, preview and facts, and the actions on the selection."""

from __future__ import annotations

import time
from typing import ClassVar

from rich.markup import escape
from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import Header, Tree
from textual.worker import get_current_worker

from kbrowse.browse import snappath
from kbrowse.fuse.mountpoint import MountError
from kbrowse.tui.fmt import (
    display_name,
    mode_string,
    node_time,
    node_type,
    size_text,
    snapshot_time,
)
from kbrowse.tui.mount_job import Mounts, SnapshotMount, mount, unmount
from kbrowse.tui.preview_content import Lines, describe, note
from kbrowse.tui.screens.compare import CompareResult, CompareScreen
from kbrowse.tui.screens.find import FindScreen
from kbrowse.tui.screens.restore import RestoreScreen, default_target
from kbrowse.tui.ui_thread import deliver
from kbrowse.tui.widgets.dir_tree import DirRef, DirTree
from kbrowse.tui.widgets.facts import Facts
from kbrowse.tui.widgets.footer import Footer
from kbrowse.tui.widgets.preview import Preview
from kbrowse.tui.widgets.virtual_table import Column, VirtualTable
from mover.errors import NotFound, RepoError
from mover.view import SnapshotView
from mover.view.node import Node
from mover.view.snapshot import Snapshot

PREVIEW_DELAY = 0.05  # holding an arrow key should not start a read per row passed


def _row(n: Node) -> tuple[str, ...]:
    name = display_name(n.name)
    if n.type == "dir":
        name += "/"
    elif n.type == "symlink":
        name += " → " + display_name(n.linktarget)
    return name, size_text(n), mode_string(n), node_time(n.mtime), node_type(n)


def _style(n: Node) -> str:
    return {"dir": "bold", "symlink": "cyan"}.get(n.type, "red" if n.error else "")


LISTING_COLUMNS: list[Column[Node]] = [
    Column("name", "Name", sort_key=lambda n: (n.type != "dir", n.name.casefold())),
    Column("size", "Size", 10, "right", sort_key=lambda n: n.size),
    Column("mode", "Mode", 10, sort_key=lambda n: mode_string(n)),
    Column("mtime", "Modified", 19, sort_key=lambda n: n.mtime),
    Column("type", "Type", 9, sort_key=lambda n: n.type),
]


class BrowserScreen(Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("r", "restore", "Restore", tooltip="Restore the selected file or folder"),
        Binding("y", "copy_path", "Copy path", tooltip="Copy the selection's path to the clipboard"),
        Binding("f", "find", "Find", tooltip="Find files by name or glob in this snapshot"),
        Binding("c", "compare", "Compare", tooltip="Compare this snapshot with its parent"),
        Binding("m", "mount", "Mount", tooltip="Mount this snapshot read-only in the background"),
        Binding("u", "unmount", "Unmount", tooltip="Unmount this snapshot"),
        Binding("backspace", "up", "Up", tooltip="Go to the parent folder"),
        Binding("escape", "back", "Back", tooltip="Back to the listing, or to the snapshots"),
        Binding("q", "app.quit", "Quit"),
        Binding("slash", "find", show=False),
    ]

    def __init__(self, view: SnapshotView, snapshot: Snapshot, snapshots: list[Snapshot],
                 reveal: str | None = None) -> None:
        super().__init__()
        self.view = view
        self.snapshot = snapshot
        self.snapshots = snapshots
        self.root = view.root(snapshot)
        self.dir = DirRef("/", self.root)
        self.listed: str | None = None  # the folder whose entries the listing holds
        self.select_after_load: str | None = None
        self.ignore_highlight: str | None = None
        self.initial_path = reveal

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="browser"):
            yield DirTree(self.root, self.view.list_dir, id="tree")
            with Vertical(id="right"):
                yield VirtualTable(LISTING_COLUMNS, _row, _style, empty_text="loading…", id="listing")
                with Horizontal(id="lower"):
                    yield Preview(id="preview")
                    with VerticalScroll(id="facts-pane"):
                        yield Facts(id="facts")
        yield Footer()

    def on_mount(self) -> None:
        self.title = f"snapshot {self.snapshot.short_id}"
        self._subtitle()
        self.query_one("#facts-pane").border_title = "Facts"
        self.query_one(Preview).message("Highlight a file to preview it.", "Preview")
        self.query_one("#listing").focus()
        self.reveal(self.initial_path or "/", enter=not self.initial_path)

    # ---- folders -------------------------------------------------------------------------

    def reveal(self, path: str, enter: bool = False) -> None:
        """Show ``path`` under the cursor in its folder's listing, or with ``enter`` (a folder)
        open it in the listing."""
        self._resolve(snappath.parts(path), enter)

    @work(thread=True, exclusive=True, group="resolve")
    def _resolve(self, parts: list[str], enter: bool) -> None:
        chain: list[tuple[str, list[Node]]] = []
        node, path, select = self.root, "/", None
        try:
            for i, name in enumerate(parts):
                children = self.view.list_dir(node)
                chain.append((path, children))
                child = next((c for c in children if c.name == name), None)
                if child is None:
                    raise NotFound(f"{snappath.join(path, name)} is not in snapshot {self.snapshot.short_id}")
                if child.type != "dir" or (i == len(parts) - 1 and not enter):
                    select = name
                    break
                node, path = child, snappath.join(path, name)
            else:
                chain.append((path, self.view.list_dir(node)))
        except RepoError as e:
            deliver(self, self.notify, str(e), title="Cannot open", severity="error")
            return
        deliver(self, self._resolved, chain, node, select)

    def _resolved(self, chain: list[tuple[str, list[Node]]], node: Node, select: str | None) -> None:
        path, children = chain[-1]
        self.select_after_load = select
        tree = self.query_one(DirTree)
        tnode = tree.reveal(chain)
        if tnode.data is not None and tnode.data.path != path:
            self.ignore_highlight = tnode.data.path  # the tree stops short (a huge folder)
        self._show_dir(DirRef(path, node), children)

    @on(Tree.NodeHighlighted, "#tree")
    def _tree_moved(self, event: Tree.NodeHighlighted[DirRef | None]) -> None:
        ref = event.node.data
        if ref is None or ref.path == self.dir.path:
            return
        if ref.path == self.ignore_highlight:
            self.ignore_highlight = None
            return
        self.select_after_load = None
        self._open_dir(ref)

    @on(Tree.NodeSelected, "#tree")
    def _tree_entered(self, event: Tree.NodeSelected[DirRef | None]) -> None:
        event.node.expand()
        self.query_one("#listing").focus()

    def _open_dir(self, ref: DirRef) -> None:
        self.dir = ref
        listing = self.query_one("#listing", VirtualTable)
        listing.empty_text = "loading…"
        listing.clear()
        listing.border_title = display_name(ref.path)
        listing.border_subtitle = ""
        self._list(ref)

    @work(thread=True, exclusive=True, group="listing")
    def _list(self, ref: DirRef) -> None:
        try:
            children = self.view.list_dir(ref.node)
        except RepoError as e:
            deliver(self, self._list_failed, ref, str(e))
            return
        if not get_current_worker().is_cancelled:
            deliver(self, self._show_dir, ref, children)

    def _list_failed(self, ref: DirRef, message: str) -> None:
        if ref is self.dir:
            listing = self.query_one("#listing", VirtualTable)
            listing.empty_text = f"cannot read this folder: {message}"
            listing.refresh()

    def _show_dir(self, ref: DirRef, children: list[Node]) -> None:
        """Fill the listing; folders first, then names as the snapshot sorts them."""
        self.dir = ref
        self.listed = ref.path
        listing = self.query_one("#listing", VirtualTable)
        listing.empty_text = "empty folder"
        listing.set_items([n for n in children if n.type == "dir"] + [n for n in children if n.type != "dir"])
        listing.border_title = display_name(ref.path)
        listing.border_subtitle = f"{len(children):,} entries"
        if self.select_after_load is not None:
            name = self.select_after_load
            self.select_after_load = None
            listing.select_where(lambda n: n.name == name)
            listing.focus()

    def action_up(self) -> None:
        if self.dir.path != "/":
            self.reveal(self.dir.path)  # selects this folder in its parent's listing

    # ---- listing and preview -------------------------------------------------------------

    @on(VirtualTable.Highlighted, "#listing")
    def _entry_highlighted(self, event: VirtualTable.Highlighted) -> None:
        node: Node | None = event.item
        facts = self.query_one(Facts)
        if node is None:
            facts.show(self.dir.node, self.dir.path)
            return
        path = snappath.join(self.dir.path, node.name)
        facts.show(node, path)
        self.query_one(Preview).reading(display_name(node.name))
        self._preview(node, "monokai" if self.app.current_theme.dark else "friendly")

    @on(VirtualTable.Selected, "#listing")
    def _entry_opened(self, event: VirtualTable.Selected) -> None:
        node: Node = event.item
        if node.type == "dir":
            self.reveal(snappath.join(self.dir.path, node.name), enter=True)
        else:
            self.query_one(Preview).focus()

    @work(thread=True, exclusive=True, group="preview")
    def _preview(self, node: Node, theme: str) -> None:
        time.sleep(PREVIEW_DELAY)
        worker = get_current_worker()
        if worker.is_cancelled:
            return
        try:
            lines, subtitle = describe(self.view, node, theme)
        except RepoError as e:
            lines, subtitle = note(f"Cannot read: {e}"), ""
        if not worker.is_cancelled:
            deliver(self, self._previewed, node, lines, subtitle)

    def _previewed(self, node: Node, lines: Lines, subtitle: str) -> None:
        if self.query_one("#listing", VirtualTable).current is node:  # else the cursor moved on
            self.query_one(Preview).show(lines, display_name(node.name), subtitle)

    # ---- actions -------------------------------------------------------------------------

    def selection(self) -> tuple[str, Node]:
        """The entry the actions apply to: the tree's folder when the tree has focus, else
        the listing's row (or its folder when empty)."""
        tree = self.query_one(DirTree)
        if tree.has_focus and tree.current is not None:
            return tree.current.path, tree.current.node
        node = self.query_one("#listing", VirtualTable).current
        if node is None or self.listed != self.dir.path:
            return self.dir.path, self.dir.node
        return snappath.join(self.dir.path, node.name), node

    def action_restore(self) -> None:
        path, node = self.selection()
        self.app.push_screen(RestoreScreen(self.view, node, path,
                                           default_target(self.snapshot, path)))

    def action_copy_path(self) -> None:
        path, _ = self.selection()
        self.app.copy_to_clipboard(path)
        self.notify(escape(display_name(path)), title="Path copied")

    def action_find(self) -> None:
        self.app.push_screen(FindScreen(self.view, self.snapshot, self.root), self._found)

    def _found(self, path: str | None) -> None:
        if path:
            self.reveal(path)

    def action_compare(self) -> None:
        self.app.push_screen(CompareScreen(self.view, self.snapshot, self.snapshots),
                             lambda result: show_compare_result(self.app, self.view, self.snapshots,
                                                                result, self))

    def action_back(self) -> None:
        preview = self.query_one(Preview)
        if preview.has_focus:  # Enter on a file went there; Escape comes back
            self.query_one("#listing").focus()
        else:
            self.app.pop_screen()

    # ---- mount ---------------------------------------------------------------------------

    @property
    def _mounts(self) -> Mounts:
        from kbrowse.tui.app import KbrowseApp  # which imports this screen

        app = self.app
        assert isinstance(app, KbrowseApp)
        return app.mounts

    @property
    def mounted(self) -> SnapshotMount | None:
        return self._mounts.get(self.snapshot)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "mount":
            return self.mounted is None
        if action == "unmount":
            return self.mounted is not None
        return True

    def action_mount(self) -> None:
        self.notify(f"Mounting snapshot {self.snapshot.short_id}…")
        self._mount()

    @work(thread=True, exclusive=True, group="mount")
    def _mount(self) -> None:
        try:
            m = mount(self.view, self.snapshot)
        except RepoError as e:
            deliver(self, self.notify, str(e), title="Cannot mount", severity="error",
                                      timeout=10)
            return
        deliver(self, self._mounted, m)

    def _mounted(self, m: SnapshotMount) -> None:
        self._mounts.add(m)
        self.app.copy_to_clipboard(m.mountpoint)
        self.notify(f"{escape(m.mountpoint)} (path copied). Unmounted when kbrowse exits.",
                    title=f"Snapshot {self.snapshot.short_id} mounted", timeout=10)
        self._subtitle()
        self.refresh_bindings()

    def action_unmount(self) -> None:
        m = self.mounted
        if m is not None:
            self._unmount(m)

    @work(thread=True, exclusive=True, group="mount")
    def _unmount(self, m: SnapshotMount) -> None:
        try:
            unmount(m)
        except MountError as e:
            deliver(self, self.notify, str(e), title="Cannot unmount", severity="error",
                                      timeout=10)
            return
        deliver(self, self._unmounted, m)

    def _unmounted(self, m: SnapshotMount) -> None:
        self._mounts.remove(m)
        self.notify(f"{escape(m.mountpoint)} unmounted.", title="Unmounted")
        self._subtitle()
        self.refresh_bindings()

    def _subtitle(self) -> None:
        s = self.snapshot
        where = f" · mounted at {self.mounted.mountpoint}" if self.mounted else ""
        self.sub_title = f"{s.hostname} · {snapshot_time(s)} · {', '.join(s.paths)}{where}"


def show_compare_result(app: App, view: SnapshotView, snapshots: list[Snapshot],
                        result: CompareResult, browser: BrowserScreen | None = None) -> None:
    """Show an entry picked in a comparison: in ``browser`` when it browses that snapshot,
    else in a new browser."""
    if result is None:
        return
    snap, path = result
    if browser is not None and browser.snapshot.id == snap.id:
        browser.reveal(path)
    else:
        app.push_screen(BrowserScreen(view, snap, snapshots, reveal=path))
