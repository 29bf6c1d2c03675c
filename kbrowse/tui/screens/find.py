"""Find by name or glob across a snapshot; results stream in as the trees are walked."""

from __future__ import annotations

import time
from typing import ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Static
from textual.worker import get_current_worker

from kbrowse.browse.search import Walker, matcher
from kbrowse.tui.fmt import display_name, node_type, size_text
from kbrowse.tui.ui_thread import deliver
from kbrowse.tui.widgets.virtual_table import Column, VirtualTable
from mover.view import SnapshotView
from mover.view.node import Node
from mover.view.snapshot import Snapshot

TYPING_PAUSE = 0.15  # wait for the next key before starting a walk
FLUSH_EVERY = 0.1  # seconds between batches of results sent to the table

Hit = tuple[str, Node]


def _row(hit: Hit) -> tuple[str, ...]:
    path, node = hit
    return display_name(path) + ("/" if node.type == "dir" else ""), size_text(node), node_type(node)


class FindScreen(ModalScreen[str | None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Close"),
        Binding("enter", "jump", "Show", tooltip="Show the entry in the browser"),
        Binding("down", "move(1)", show=False),
        Binding("up", "move(-1)", show=False),
        Binding("pagedown", "move(20)", show=False),
        Binding("pageup", "move(-20)", show=False),
    ]

    def __init__(self, view: SnapshotView, snapshot: Snapshot, root: Node) -> None:
        super().__init__()
        self.walker = Walker(view, root)
        self.snapshot = snapshot

    def compose(self) -> ComposeResult:
        with Vertical(id="find-dialog", classes="dialog"):
            yield Label(f"Find in snapshot {self.snapshot.short_id}", classes="heading")
            yield Input(placeholder="name, part of a name, or a glob like *.yaml or /logs/*2026*",
                        id="find-input")
            yield VirtualTable([Column("path", "Path"), Column("size", "Size", 10, "right"),
                                Column("type", "Type", 9)], _row, empty_text="type to search",
                               id="find-results")
            yield Static(id="find-status")

    def on_mount(self) -> None:
        self.query_one("#find-input").focus()

    @on(Input.Changed, "#find-input")
    def _changed(self, event: Input.Changed) -> None:
        table = self.query_one("#find-results", VirtualTable)
        table.clear()
        if not event.value.strip():
            table.empty_text = "type to search"
            self.workers.cancel_group(self, "find")
            self.query_one("#find-status", Static).update("")
            return
        table.empty_text = "searching…"
        self.query_one("#find-status", Static).update("searching…")
        self._search(event.value)

    @work(thread=True, exclusive=True, group="find")
    def _search(self, pattern: str) -> None:
        worker = get_current_worker()
        time.sleep(TYPING_PAUSE)
        if worker.is_cancelled:
            return
        match = matcher(pattern)
        batch: list[Hit] = []
        seen = found = 0
        last = time.monotonic()
        for path, node in self.walker.walk(lambda: worker.is_cancelled):
            seen += 1
            if match(node.name, path):
                batch.append((path, node))
                found += 1
            if batch and time.monotonic() - last > FLUSH_EVERY:
                deliver(self, self._add, batch, seen, found, False)
                batch, last = [], time.monotonic()
        if not worker.is_cancelled:
            deliver(self, self._add, batch, seen, found, True)

    def _add(self, hits: list[Hit], seen: int, found: int, done: bool) -> None:
        table = self.query_one("#find-results", VirtualTable)
        table.append_items(hits)
        if done:
            table.empty_text = "nothing found"
            table.refresh()
        state = "done" if done else "searching…"
        errors = f", {len(self.walker.errors)} folders unreadable" if self.walker.errors else ""
        self.query_one("#find-status", Static).update(
            f"{found:,} found in {seen:,} entries{errors} · {state}")

    def action_move(self, delta: int) -> None:
        self.query_one("#find-results", VirtualTable).cursor += delta

    @on(VirtualTable.Selected, "#find-results")
    @on(Input.Submitted, "#find-input")
    def action_jump(self) -> None:
        hit: Hit | None = self.query_one("#find-results", VirtualTable).current
        if hit is not None:
            self.dismiss(hit[0])

    def action_close(self) -> None:
        self.dismiss(None)
