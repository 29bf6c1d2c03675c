"""The restore dialog: where to, what to do with existing files, then progress and cancel."""

from __future__ import annotations

import os
import threading
from typing import ClassVar

from rich.markup import escape
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.notifications import SeverityLevel
from textual.screen import ModalScreen
from textual.widgets import (
    Button,
    Input,
    Label,
    ProgressBar,
    RadioButton,
    RadioSet,
    Static,
)

from kbrowse.browse import snappath
from kbrowse.tui.fmt import counted, display_name
from kbrowse.tui.restore_job import OVERWRITE, SKIP, RestoreOutcome, restore_entry
from kbrowse.tui.ui_thread import deliver
from mover.errors import RepoError
from mover.progress import Counters, human_bytes
from mover.view.node import Node
from mover.view.protocol import SnapshotView
from mover.view.snapshot import Snapshot

RESTORE_DIR = "kbrowse-restore"
TICK = 0.1  # progress refresh, seconds

SKIP_NOTE = ("Keep: the entry is restored beside the target first, then only what the target "
             "lacks is moved in; existing files and folders are left as they are.")
OVERWRITE_NOTE = "Overwrite: entries in the way are replaced; other files in the target stay."


def default_target(snapshot: Snapshot, path: str) -> str:
    """``./kbrowse-restore/<short id>/<path in the snapshot>``."""
    return os.path.join(".", RESTORE_DIR, snapshot.short_id, *snappath.parts(path))


class RestoreScreen(ModalScreen[RestoreOutcome | None]):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel / close")]

    def __init__(self, view: SnapshotView, node: Node, path: str, target: str) -> None:
        super().__init__()
        self.view = view
        self.node = node
        self.path = path
        self.target = target
        self.counters = Counters()
        self.cancel_event = threading.Event()
        self.running = False
        self.finished = False
        self.outcome: RestoreOutcome | None = None

    def compose(self) -> ComposeResult:
        what = "folder" if self.node.type == "dir" else f"{self.node.type} of {human_bytes(self.node.size)}"
        with Vertical(id="restore-dialog", classes="dialog"):
            yield Label(f"Restore {escape(display_name(self.path))}", classes="heading")
            yield Static(f"a {what}", classes="hint")
            yield Label("Target" + (" folder (gets the folder's contents)" if self.node.type == "dir"
                                    else " path (or a folder to put the file in)"))
            yield Input(self.target, id="restore-target")
            yield Label("Files that already exist")
            with RadioSet(id="existing"):
                yield RadioButton("Overwrite them", value=True, id=OVERWRITE)
                yield RadioButton("Keep them (skip)", id=SKIP)
            yield Static(OVERWRITE_NOTE, id="restore-note", classes="hint")
            yield ProgressBar(id="restore-progress", show_eta=True)
            yield Static(id="restore-status")
            with Horizontal(classes="buttons"):
                yield Button("Restore", variant="primary", id="start")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#start").focus()

    def on_unmount(self) -> None:
        self.cancel_event.set()  # the app is quitting mid-restore: stop the restorer's threads

    @property
    def existing(self) -> str:
        pressed = self.query_one(RadioSet).pressed_button
        return pressed.id if pressed is not None and pressed.id else OVERWRITE

    @on(RadioSet.Changed)
    def _policy_changed(self) -> None:
        self.query_one("#restore-note", Static).update(SKIP_NOTE if self.existing == SKIP else OVERWRITE_NOTE)

    @on(Input.Submitted, "#restore-target")
    @on(Button.Pressed, "#start")
    def start(self) -> None:
        if self.running or self.finished:
            return
        target = self.query_one("#restore-target", Input).value.strip()
        if not target:
            self.notify("Give a target path.", severity="warning")
            return
        self.running = True
        for widget in (self.query_one("#restore-target"), self.query_one(RadioSet)):
            widget.disabled = True
        self.query_one("#start").display = False
        self.query_one("#restore-dialog").add_class("started")
        self.query_one("#cancel").focus()
        self.set_interval(TICK, self._tick)
        self._restore(os.path.expanduser(target), self.existing)

    @work(thread=True, exclusive=True, group="restore")
    def _restore(self, target: str, existing: str) -> None:
        try:
            outcome = restore_entry(self.view, self.node, target, existing=existing,
                                    counters=self.counters, cancel=self.cancel_event)
        except (RepoError, OSError) as e:
            deliver(self, self._failed, str(e))
            return
        deliver(self, self._finished, outcome)

    def _tick(self) -> None:
        c = self.counters
        bar = self.query_one(ProgressBar)
        if c.total_bytes:
            bar.update(total=c.total_bytes, progress=c.bytes)
        elif not c.scanning:
            bar.update(total=max(c.total_files, 1), progress=c.files if c.total_files else 1)
        if self.running:
            verb = "cancelling" if self.cancel_event.is_set() else "restoring"
            self.query_one("#restore-status", Static).update(
                f"{verb}: {c.files:,} of {c.total_files:,} files · "
                f"{human_bytes(c.bytes)} of {human_bytes(c.total_bytes)}")

    def _finished(self, outcome: RestoreOutcome) -> None:
        self.running, self.finished = False, True
        self.outcome = outcome
        self._tick()
        res = outcome.result
        where = escape(outcome.target)
        if res.cancelled:
            text = (f"[yellow]Cancelled.[/] {where} may hold part of the restore "
                    f"({counted(res.files, 'file')} so far).")
        else:
            text = (f"Restored {counted(res.files, 'file')}, {counted(res.dirs, 'folder')}, "
                    f"{human_bytes(res.bytes)} into {where}")
            if outcome.skipped:
                entries = "entry" if outcome.skipped == 1 else "entries"
                text += f"; kept {outcome.skipped:,} existing {entries}"
            text += "."
        if res.errors:
            text += f"\n[red]{counted(len(res.errors), 'error')}[/], first: {escape(res.errors[0])}"
        if res.warnings:
            text += f"\n{counted(len(res.warnings), 'warning')}, first: {escape(res.warnings[0])}"
        self.query_one("#restore-status", Static).update(text)
        self.query_one("#cancel", Button).label = "Close"
        severity: SeverityLevel = "information" if outcome.ok else "warning"
        self.notify(text, title="Restore", severity=severity)

    def _failed(self, message: str) -> None:
        self.running, self.finished = False, True
        self.query_one("#restore-status", Static).update(f"[red]Restore failed:[/] {escape(message)}")
        self.query_one("#cancel", Button).label = "Close"
        self.notify(message, title="Restore failed", severity="error")

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        if self.running:
            self.cancel_event.set()
            self.query_one("#cancel", Button).label = "Cancelling…"
        else:
            self.dismiss(self.outcome)
