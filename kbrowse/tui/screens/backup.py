"""One Velero backup: its resources as a tree (resource → namespace → name) with the selected
object's YAML, and its volumes, each opening the Browser on the volume's snapshot."""

from __future__ import annotations

import time
from typing import ClassVar

from rich.markup import escape
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Header, Tree
from textual.worker import get_current_worker

from kbrowse.bucket.printers import to_yaml
from kbrowse.tui.preview_content import TextLines, highlight, note
from kbrowse.tui.screens.browser import BrowserScreen
from kbrowse.tui.ui_thread import deliver
from kbrowse.tui.widgets.footer import Footer
from kbrowse.tui.widgets.preview import Preview
from kbrowse.tui.widgets.virtual_table import Column, VirtualTable
from mover.errors import RepoError, WrongPassword
from mover.progress import human_bytes
from mover.velero.bsl import BucketView
from mover.velero.objects import Backup
from mover.velero.tarball import BackupContents, ResourceRef
from mover.velero.volumes import BackupVolume
from mover.view import SnapshotView
from mover.view.snapshot import Snapshot

PREVIEW_DELAY = 0.05
CLUSTER_LABEL = "(cluster)"  # the "namespace" of cluster-scoped objects


def _volume_row(v: BackupVolume) -> tuple[str, ...]:
    return (v.label, v.pvc or "-", v.method, v.uploader or "-",
            human_bytes(v.size) if v.size else "-", v.snapshot_id or "-", v.result or "-")


def _volume_style(v: BackupVolume) -> str:
    return "" if v.repository is not None else "dim"


VOLUME_COLUMNS: list[Column[BackupVolume]] = [
    Column("volume", "Volume (namespace/pod/volume)"),
    Column("pvc", "PVC", 16),
    Column("method", "Method", 16),
    Column("uploader", "Uploader", 8),
    Column("size", "Size", 10, "right", sort_key=lambda v: v.size),
    Column("snapshot", "Snapshot", 12),
    Column("result", "Result", 10),
]


class BackupScreen(Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("t", "focus_resources", "Resources", tooltip="Go to the resource tree"),
        Binding("v", "focus_volumes", "Volumes", tooltip="Go to the volumes"),
        Binding("y", "focus_yaml", "YAML", tooltip="Scroll the YAML of the selected object"),
        Binding("escape", "back", "Back", tooltip="Back to the backups"),
        Binding("q", "app.quit", "Quit"),
    ]

    def __init__(self, bucket: BucketView, backup: Backup) -> None:
        super().__init__()
        self.bucket = bucket
        self.backup = backup
        self.backup_name = backup.name
        self.contents: BackupContents | None = None
        self.shown: ResourceRef | None = None  # the object whose YAML the preview shows
        self.opening: str | None = None  # the volume being opened
        self.branches: dict[int, tuple[str, int]] = {}  # id(tree node) -> (what, objects below)

    def compose(self) -> ComposeResult:
        yield Header()
        with Vertical(id="backup"):
            with Horizontal(id="backup-resources"):
                tree: Tree[ResourceRef | None] = Tree("resources", id="resources")
                tree.show_root = False
                yield tree
                yield Preview(id="yaml")
            yield VirtualTable(VOLUME_COLUMNS, _volume_row, _volume_style,
                               empty_text="reading volumes…", id="volumes")
        yield Footer()

    def on_mount(self) -> None:
        self.title = f"backup {self.backup_name}"
        b = self.backup
        self.sub_title = (f"{b.status.phase or 'New'} · {self.bucket.location()}")
        tree = self.query_one("#resources", Tree)
        tree.border_title = "Resources"
        tree.root.expand()
        tree.root.add_leaf(Text("reading the resources…", style="dim"))
        self.query_one("#volumes").border_title = "Volumes · Enter browses a volume's files"
        self.query_one(Preview).message("Highlight an object to see its YAML.", "YAML")
        tree.focus()
        self._load_resources()
        self._load_volumes()

    # ---- resources -----------------------------------------------------------------------

    @work(thread=True, exclusive=True, group="resources")
    def _load_resources(self) -> None:
        try:
            contents = self.bucket.contents(self.backup_name)
            refs = contents.refs()
        except RepoError as e:
            deliver(self, self._resources_failed, str(e))
            return
        deliver(self, self._resources_loaded, contents, refs)

    def _resources_failed(self, message: str) -> None:
        tree = self.query_one("#resources", Tree)
        tree.root.remove_children()
        tree.root.add_leaf(Text("cannot read the resources", style="red"))
        self.query_one(Preview).message(f"Cannot read the resources: {message}", "YAML")
        self.notify(escape(message), title="Cannot read the resources", severity="error", timeout=10)

    def _resources_loaded(self, contents: BackupContents, refs: list[ResourceRef]) -> None:
        self.contents = contents
        tree = self.query_one("#resources", Tree)
        tree.root.remove_children()
        by_resource: dict[str, dict[str, list[ResourceRef]]] = {}
        for ref in refs:
            by_resource.setdefault(ref.resource, {}).setdefault(ref.namespace, []).append(ref)
        for resource, namespaces in by_resource.items():
            count = sum(len(r) for r in namespaces.values())
            rnode = tree.root.add(Text.assemble(resource, (f" ({count})", "dim")), None)
            self.branches[id(rnode)] = (resource, count)
            for ns, ns_refs in namespaces.items():
                nnode = rnode.add(Text.assemble(ns or CLUSTER_LABEL, (f" ({len(ns_refs)})", "dim")),
                                  None)
                self.branches[id(nnode)] = (f"{resource} in {ns or 'cluster scope'}", len(ns_refs))
                for ref in ns_refs:
                    nnode.add_leaf(ref.name, ref)
        if not refs:
            tree.root.add_leaf(Text("no resources in this backup", style="dim"))
        tree.border_subtitle = f"{len(refs):,} objects"

    @on(Tree.NodeHighlighted, "#resources")
    def _node_highlighted(self, event: Tree.NodeHighlighted[ResourceRef | None]) -> None:
        ref = event.node.data
        preview = self.query_one(Preview)
        if ref is None:
            self.shown = None
            title, count = self.branches.get(id(event.node), ("", 0))
            if title:
                preview.message(f"{title}: {count} object{'s' if count != 1 else ''}. "
                                "Enter or → opens it, ↓ goes through it.", title)
            return
        if ref == self.shown:
            return
        self.shown = ref
        preview.reading(ref.name)
        self._preview(ref, "monokai" if self.app.current_theme.dark else "friendly")

    def select_resource(self, resource: str, namespace: str, name: str) -> bool:
        """Move the tree's cursor to an object (expanding its parents); False if absent."""
        tree = self.query_one("#resources", Tree)
        for rnode in tree.root.children:
            for nnode in rnode.children:
                for leaf in nnode.children:
                    if leaf.data == ResourceRef(resource, namespace, name):
                        rnode.expand()
                        nnode.expand()
                        tree.refresh()
                        self.call_after_refresh(tree.move_cursor, leaf)
                        return True
        return False

    @work(thread=True, exclusive=True, group="yaml")
    def _preview(self, ref: ResourceRef, theme: str) -> None:
        time.sleep(PREVIEW_DELAY)
        worker = get_current_worker()
        if worker.is_cancelled or self.contents is None:
            return
        try:
            lines: TextLines = highlight(ref.name + ".yaml", to_yaml(self.contents.get(ref)).encode(),
                                         theme)
        except RepoError as e:
            lines = note(f"Cannot read {ref.name}: {e}")
        if not worker.is_cancelled:
            deliver(self, self._previewed, ref, lines)

    def _previewed(self, ref: ResourceRef, lines: TextLines) -> None:
        if self.shown == ref:
            where = ref.namespace or "cluster scope"
            self.query_one(Preview).show(lines, ref.name, f"{ref.resource} · {where}")

    # ---- volumes -------------------------------------------------------------------------

    @work(thread=True, exclusive=True, group="volumes")
    def _load_volumes(self) -> None:
        try:
            vols = self.bucket.volumes(self.backup_name)
        except RepoError as e:
            deliver(self, self._volumes_failed, str(e))
            return
        deliver(self, self._volumes_loaded, vols)

    def _volumes_failed(self, message: str) -> None:
        table = self.query_one("#volumes", VirtualTable)
        table.empty_text = f"cannot read the volumes: {message}"
        table.refresh()

    def _volumes_loaded(self, vols: list[BackupVolume]) -> None:
        table = self.query_one("#volumes", VirtualTable)
        table.empty_text = "no volumes in this backup"
        table.set_items(sorted(vols, key=lambda v: v.label))
        table.border_subtitle = f"{len(vols)} volume{'s' if len(vols) != 1 else ''}"

    @on(VirtualTable.Selected, "#volumes")
    def _volume_selected(self, event: VirtualTable.Selected) -> None:
        self.open_volume(event.item)

    def open_volume(self, vol: BackupVolume) -> None:
        if self.opening is not None:
            return
        self.opening = vol.label
        self.notify(f"Opening the snapshot of {escape(vol.label)}…", timeout=3)
        self._open_volume(vol)

    @work(thread=True, exclusive=True, group="open-volume")
    def _open_volume(self, vol: BackupVolume) -> None:
        title = f"Cannot open volume {vol.label}"
        try:
            view, snap = self.bucket.volume_snapshot(self.backup_name, vol)
            root = view.root(snap)  # reads the snapshot's tree: errors show here, not later
            view.list_dir(root)
        except WrongPassword as e:
            deliver(self, self._open_failed, title + " (wrong password)",
                                      f"{e}. Give the right one with --repo-password-file.")
            return
        except RepoError as e:
            deliver(self, self._open_failed, title, str(e))
            return
        except Exception as e:  # a worker must not take the app down
            deliver(self, self._open_failed, title, f"{type(e).__name__}: {e}")
            return
        deliver(self, self._volume_opened, vol, view, snap)

    def _open_failed(self, title: str, message: str) -> None:
        self.opening = None
        self.notify(escape(message), title=title, severity="error", timeout=15)

    def _volume_opened(self, vol: BackupVolume, view: SnapshotView, snap: Snapshot) -> None:
        self.opening = None
        self.app.push_screen(VolumeBrowserScreen(view, snap, [snap],
                                                 context=f"{self.backup_name} · {vol.label}"))

    # ---- focus ---------------------------------------------------------------------------

    def action_focus_resources(self) -> None:
        self.query_one("#resources").focus()

    def action_focus_volumes(self) -> None:
        self.query_one("#volumes").focus()

    def action_focus_yaml(self) -> None:
        self.query_one(Preview).focus()

    def action_back(self) -> None:
        if self.query_one(Preview).has_focus:
            self.query_one("#resources").focus()
        else:
            self.app.pop_screen()


class VolumeBrowserScreen(BrowserScreen):
    """The Browser on a volume's snapshot, its subtitle naming the backup and the volume."""

    def __init__(self, view: SnapshotView, snapshot: Snapshot, snapshots: list[Snapshot],
                 context: str) -> None:
        super().__init__(view, snapshot, snapshots)
        self.context = context

    def _subtitle(self) -> None:
        super()._subtitle()
        self.sub_title = f"{self.context} · {self.sub_title}"
