"""The snapshot's folders as a tree whose branches are read only when opened."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

from rich.text import Text
from textual import work
from textual.binding import Binding, BindingType
from textual.widgets import Tree
from textual.widgets.tree import TreeNode
from textual.worker import get_current_worker

from kbrowse.browse import snappath
from kbrowse.tui.fmt import display_name
from kbrowse.tui.ui_thread import deliver
from mover.errors import RepoError
from mover.view.node import Node

# A tree line per folder is cheap, but not 100,000 of them: past this the listing shows the rest.
MAX_CHILDREN = 1000


@dataclass
class DirRef:
    path: str
    node: Node
    loaded: bool = False


class DirTree(Tree[DirRef | None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("right", "open_branch", "Open folder", show=False),
        Binding("left", "close_branch", "Close folder", show=False),
    ]

    def __init__(self, root: Node, list_dir: Callable[[Node], list[Node]], *,
                 id: str | None = None) -> None:
        super().__init__(Text("/"), DirRef("/", root), id=id)
        self.list_dir = list_dir
        self.auto_expand = False  # Enter opens the folder in the listing; arrows open branches
        self.show_root = True

    def on_mount(self) -> None:
        self.root.expand()

    def on_tree_node_expanded(self, event: Tree.NodeExpanded[DirRef | None]) -> None:
        ref = event.node.data
        if ref is not None and not ref.loaded:
            self._load(event.node)

    @work(thread=True, group="dir-tree")
    def _load(self, tnode: TreeNode[DirRef | None]) -> None:
        ref = tnode.data
        assert ref is not None
        try:
            children = self.list_dir(ref.node)
        except RepoError as e:
            deliver(self, self.notify, str(e), title="Cannot read folder", severity="error")
            return
        if not get_current_worker().is_cancelled:
            deliver(self, self.fill, tnode, children)

    def fill(self, tnode: TreeNode[DirRef | None], children: list[Node]) -> None:
        """Add a folder's subfolders, once."""
        ref = tnode.data
        if ref is None or ref.loaded:
            return
        ref.loaded = True
        dirs = [n for n in children if n.type == "dir"]
        for n in dirs[:MAX_CHILDREN]:
            tnode.add(Text(display_name(n.name)), DirRef(snappath.join(ref.path, n.name), n),
                      allow_expand=True)
        if len(dirs) > MAX_CHILDREN:
            tnode.add_leaf(Text(f"… {len(dirs) - MAX_CHILDREN:,} more folders: see the listing",
                                style="dim italic"), None)
        if not dirs:
            tnode.allow_expand = False

    def reveal(self, chain: list[tuple[str, list[Node]]]) -> TreeNode[DirRef | None]:
        """Open the branches down a path and put the cursor on its last folder.

        ``chain`` is the path's folders from the root down, each with its children (read by
        the caller's worker), so branches not yet loaded are filled here without more I/O.
        """
        tnode: TreeNode[DirRef | None] = self.root
        for i, (_path, children) in enumerate(chain):
            self.fill(tnode, children)
            tnode.expand()
            if i + 1 < len(chain):
                name = snappath.basename(chain[i + 1][0])
                nxt = next((c for c in tnode.children if c.data and c.data.node.name == name), None)
                if nxt is None:  # beyond MAX_CHILDREN: the listing still shows it
                    break
                tnode = nxt
        # Nodes just added have no line until the tree's lines are rebuilt, which asking for
        # last_line does now. (Moving after the next refresh instead would come after keys the
        # user pressed meanwhile on a busy machine, and undo them.)
        if self.last_line >= 0:
            self.move_cursor(tnode)
        return tnode

    @property
    def current(self) -> DirRef | None:
        node = self.cursor_node
        return node.data if node is not None else None

    def action_open_branch(self) -> None:
        node = self.cursor_node
        if node is None:
            return
        if node.allow_expand and not node.is_expanded:
            node.expand()
        elif node.children:
            self.move_cursor(node.children[0])

    def action_close_branch(self) -> None:
        node = self.cursor_node
        if node is None:
            return
        if node.is_expanded and node is not self.root:
            node.collapse()
        elif node.parent is not None:
            self.move_cursor(node.parent)
