"""Waiting on the kbrowse TUI under the pilot."""

from __future__ import annotations

from textual.app import App
from textual.screen import Screen

from mover.repo.backend.local import LocalBackend
from mover.repo.repository import Repository
from mover.view.node import Node
from mover.view.snapshot import Snapshot

T0 = 1_780_000_000 * 10**9


def shows(app: App, screen_type: type[Screen]) -> bool:
    """The app shows a ``screen_type`` screen, composed and mounted.

    ``push_screen`` makes a screen ``app.screen`` at once, before its widgets exist: a test
    that queries it (or ends, tearing the app down under the mounting screen) in between sees
    a screen without widgets.
    """
    return isinstance(app.screen, screen_type) and app.screen.is_mounted


def big_folder_repo(where: str, password: str, entries: int = 100_000) -> None:
    """A repository of one snapshot whose only folder ``big`` holds ``entries`` empty files
    (mtimes a second apart), written with save_tree."""
    repo = Repository.init(LocalBackend(where), password)
    files = [Node(name=f"file-{i:06d}.txt", type="file", mode=0o644, mtime=T0 + i * 10**9,
                  atime=T0, ctime=T0, content=[]) for i in range(entries)]
    big = repo.save_tree(files)
    root = repo.save_tree([Node(name="big", type="dir", mode=0o755 | (1 << 31), mtime=T0,
                                atime=T0, ctime=T0, subtree=big)])
    repo.flush()
    repo.save_snapshot(Snapshot(time=T0, tree=root, paths=["/big"], hostname="bench"))
    repo.close()
