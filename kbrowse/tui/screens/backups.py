"""Bucket mode: the backups of a Velero bucket as ``velero backup get`` lists them, with
filter-as-you-type and the highlighted backup's ``velero backup describe`` below; Enter opens it."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import ClassVar

from rich.markup import escape
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.events import DescendantBlur, DescendantFocus, Key
from textual.screen import Screen
from textual.widgets import Footer, Header, Input, Static
from textual.worker import get_current_worker

from kbrowse.bucket import printers as bucketfmt
from kbrowse.tui.preview_content import TextLines, note
from kbrowse.tui.screens.backup import BackupScreen
from kbrowse.tui.widgets.preview import Preview
from kbrowse.tui.widgets.virtual_table import Column, VirtualTable
from mover.errors import RepoError
from mover.velero.bsl import BucketView
from mover.velero.objects import Backup

DESCRIBE_DELAY = 0.05  # holding an arrow key should not read every backup passed


def now() -> datetime:
    """The time EXPIRES counts from (a function, so tests can fix it)."""
    return datetime.now(UTC)


def backup_row(b: Backup, when: datetime) -> tuple[str, ...]:
    """The cells of ``velero backup get`` for one backup."""
    return (b.name, bucketfmt.status(b), str(b.status.errors), str(b.status.warnings),
            bucketfmt.go_time(b.status.start_timestamp),
            bucketfmt.time_from_now(bucketfmt.expiration(b), when),
            b.spec.storage_location, bucketfmt.label_selector(b.spec.label_selector))


def _style(b: Backup) -> str:
    phase = bucketfmt.status(b)
    if phase in ("Failed", "FailedValidation") or b.status.errors:
        return "red"
    if phase == "PartiallyFailed" or b.status.warnings:
        return "yellow"
    return ""


def _ts(when: datetime | None) -> float:
    return when.timestamp() if when is not None else 0.0


BACKUP_COLUMNS: list[Column[Backup]] = [
    Column("name", "NAME"),
    Column("status", "STATUS", 15, sort_key=bucketfmt.status),
    Column("errors", "ERRORS", 6, "right", sort_key=lambda b: b.status.errors),
    Column("warnings", "WARNINGS", 8, "right", sort_key=lambda b: b.status.warnings),
    Column("created", "CREATED", 29, sort_key=lambda b: _ts(b.status.start_timestamp)),
    Column("expires", "EXPIRES", 10, sort_key=lambda b: _ts(bucketfmt.expiration(b))),
    Column("location", "STORAGE LOCATION", 16, sort_key=lambda b: b.spec.storage_location),
    Column("selector", "SELECTOR", 10),
]


def describe_lines(text: str) -> TextLines:
    """``describe`` output for the pane: headings ("Phase:", "Resource List:") in bold."""
    lines = []
    for raw in text.rstrip("\n").split("\n"):
        line = Text(raw.expandtabs(8), no_wrap=True)
        head, sep, _ = raw.partition(":")
        if sep and head and not head[0].isspace():
            line.stylize("bold", 0, len(head) + 1)
        lines.append(line)
    return TextLines(lines, numbered=False)


class BackupsScreen(Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "open", "Open", tooltip="Open the backup: its resources and volumes"),
        Binding("slash", "filter", "Filter", tooltip="Filter backups as you type"),
        Binding("d", "describe", "Describe", tooltip="Scroll the describe pane"),
        Binding("ctrl+r", "reload", "Reload", tooltip="Read the backup list again"),
        Binding("escape", "back", "Back", tooltip="Clear the filter, or leave the pane"),
        Binding("q", "app.quit", "Quit"),
    ]

    def __init__(self, bucket: BucketView, source_label: str = "") -> None:
        super().__init__()
        self.bucket = bucket
        self.source_label = source_label or bucket.location()
        self.backups: list[Backup] = []
        self.words: list[str] = []
        self.described: str | None = None  # the backup whose describe text the pane shows

    def compose(self) -> ComposeResult:
        yield Header()
        yield Input(placeholder="filter: type part of a name, status, time or location",
                    id="backup-filter", select_on_focus=False)
        yield VirtualTable(BACKUP_COLUMNS, self._row, _style, empty_text="reading backups…",
                           id="backups")
        yield Preview(id="describe")
        yield Static(id="status")
        yield Footer()

    def on_mount(self) -> None:
        self.title = "kbrowse · Velero backups"
        self.sub_title = self.source_label
        self.table.border_title = "Backups"
        self.query_one(Preview).message("Highlight a backup to describe it.", "Describe")
        self.table.focus()
        self.action_reload()

    @property
    def table(self) -> VirtualTable:
        return self.query_one("#backups", VirtualTable)

    @property
    def filter_input(self) -> Input:
        return self.query_one("#backup-filter", Input)

    @property
    def current(self) -> Backup | None:
        return self.table.current

    def _row(self, b: Backup) -> tuple[str, ...]:
        return backup_row(b, self._now)

    # ---- loading -------------------------------------------------------------------------

    def action_reload(self) -> None:
        self.query_one("#status", Static).update(f"reading backups from {self.bucket.location()}…")
        self._load()

    @work(thread=True, exclusive=True, group="backups")
    def _load(self) -> None:
        try:
            listing = self.bucket.backups()
        except RepoError as e:
            self.app.call_from_thread(self._failed, str(e))
            return
        self.app.call_from_thread(self._loaded, listing.items, listing.unreadable)

    def _failed(self, message: str) -> None:
        self.query_one("#status", Static).update("")
        self.table.empty_text = "cannot list backups"
        self.table.refresh()
        self.notify(escape(message), title="Cannot list backups", severity="error", timeout=10)

    def _loaded(self, backups: list[Backup], unreadable: dict[str, str]) -> None:
        self._now = now()
        self.backups = bucketfmt.sort_backups(backups)
        self.table.empty_text = "no backups in this location"
        self._refill()
        for name, why in sorted(unreadable.items()):
            self.notify(escape(why), title=f"Skipped backup {name}", severity="warning", timeout=10)

    _now: datetime = datetime.now(UTC)

    def _refill(self) -> None:
        keep = self.current
        shown = [b for b in self.backups
                 if all(w in " ".join(self._row(b)).casefold() for w in self.words)]
        self.table.set_items(shown)
        if keep is not None:
            self.table.select_where(lambda b: b.name == keep.name)
        if not shown:
            self.described = None
            self.query_one(Preview).message("No backup to describe.", "Describe")
        self._status()

    def _status(self) -> None:
        shown, total = len(self.table.items), len(self.backups)
        self.query_one("#status", Static).update(
            f"{shown} of {total} backups" if shown != total else
            f"{total} backup{'s' if total != 1 else ''} in {self.bucket.location()}")

    # ---- describe ------------------------------------------------------------------------

    @on(VirtualTable.Highlighted, "#backups")
    def _highlighted(self, event: VirtualTable.Highlighted) -> None:
        b: Backup | None = event.item
        if b is None or b.name == self.described:
            return
        self.described = b.name
        self.query_one(Preview).reading(f"Describe {b.name}")
        self._describe(b.name)

    @work(thread=True, exclusive=True, group="describe")
    def _describe(self, name: str) -> None:
        time.sleep(DESCRIBE_DELAY)
        worker = get_current_worker()
        if worker.is_cancelled:
            return
        try:
            b = self.bucket
            details = bucketfmt.BackupDetails(
                backup=b.backup(name), results=b.results(name),
                resource_list=b.resource_list(name), item_operations=b.item_operations(name),
                pod_volume_backups=b.pod_volume_backups(name),
                volume_infos=b.volume_infos(name), volumes=b.volumes(name),
                logs_hint=f"kbrowse --bsl {b.location()} logs {name}")
            lines = describe_lines(bucketfmt.describe_backup(details))
        except RepoError as e:
            lines = note(f"Cannot describe backup {name}: {e}")
        if not worker.is_cancelled:
            self.app.call_from_thread(self._described, name, lines)

    def _described(self, name: str, lines: TextLines) -> None:
        if self.described == name:
            self.query_one(Preview).show(lines, f"Describe {name}", "velero backup describe --details")

    # ---- filter, focus -------------------------------------------------------------------

    @on(Input.Changed, "#backup-filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.words = event.value.casefold().split()
        self._refill()
        self.refresh_bindings()

    def on_key(self, event: Key) -> None:
        """Typing on the table starts a filter (keys with a binding keep their action)."""
        if (self.table.has_focus and event.is_printable and event.character
                and event.key not in {b.key for b in self.BINDINGS if isinstance(b, Binding)}):
            event.stop()
            self.filter_input.focus()
            self.filter_input.insert_text_at_cursor(event.character)

    def on_descendant_focus(self, _event: DescendantFocus) -> None:
        self.refresh_bindings()

    def on_descendant_blur(self, _event: DescendantBlur) -> None:
        self.refresh_bindings()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "back":
            return bool(self.filter_input.value or self.filter_input.has_focus
                        or self.query_one(Preview).has_focus or len(self.app.screen_stack) > 2)
        return True

    def action_filter(self) -> None:
        self.filter_input.focus()

    def action_describe(self) -> None:
        self.query_one(Preview).focus()

    def action_back(self) -> None:
        if self.filter_input.value:
            self.filter_input.value = ""
            self.table.focus()
        elif self.filter_input.has_focus or self.query_one(Preview).has_focus:
            self.table.focus()
        elif len(self.app.screen_stack) > 2:
            self.app.pop_screen()

    # ---- open ----------------------------------------------------------------------------

    @on(VirtualTable.Selected, "#backups")
    @on(Input.Submitted, "#backup-filter")
    def action_open(self) -> None:
        b = self.current
        if b is not None:
            self.app.push_screen(BackupScreen(self.bucket, b))
