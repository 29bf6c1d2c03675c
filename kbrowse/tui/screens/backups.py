"""Bucket mode: the backups of a Velero bucket as ``velero backup get`` lists them, with
filter-as-you-type and the highlighted backup's ``velero backup describe`` below; Enter opens it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, ClassVar

from rich.markup import escape
from textual import on
from textual.binding import Binding, BindingType
from textual.widgets import Input

from kbrowse.bucket import printers as bucketfmt
from kbrowse.tui.screens.listscreen import LIST_BINDINGS, ListScreen
from kbrowse.tui.widgets.virtual_table import Column, VirtualTable
from mover.velero.objects import Backup

if TYPE_CHECKING:
    from mover.velero.bsl import BucketView


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


class BackupsScreen(ListScreen[Backup]):
    """The backups of a bucket; the cluster's Backups screen shares the table and the pane."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "open", "Open", tooltip="Open the backup: its resources and volumes"),
        Binding("d", "describe", "Describe", tooltip="Scroll the describe pane"),
        Binding("ctrl+r", "reload", "Reload", tooltip="Read the backup list again"),
        *LIST_BINDINGS,
    ]
    COLUMNS = BACKUP_COLUMNS
    NOUN = "backup"
    FILTER_HINT = "filter: type part of a name, status, time or location"
    TABLE_ID = "backups"
    FILTER_ID = "backup-filter"
    TABLE_TITLE = "Backups"
    PANE = True
    DESCRIBES = "velero backup describe --details"
    LOADING = "reading backups…"
    EMPTY = "no backups in this location"

    def __init__(self, bucket: BucketView | None = None, source_label: str = "") -> None:
        super().__init__(source_label or (bucket.location() if bucket is not None else ""))
        self.bucket = bucket
        self.now = now()

    def on_mount(self) -> None:
        self.pane.message("Highlight a backup to describe it.", "Describe")
        super().on_mount()
        self.title = "kbrowse · Velero backups"

    def row(self, b: Backup) -> tuple[str, ...]:
        return backup_row(b, self.now)

    def style(self, b: Backup) -> str:
        return _style(b)

    def key(self, b: Backup) -> object:
        return b.name

    # ---- loading -------------------------------------------------------------------------

    def fetch(self) -> list[Backup]:
        assert self.bucket is not None
        listing = self.bucket.backups()
        for name, why in sorted(listing.unreadable.items()):
            self.app.call_from_thread(self.notify, escape(why), title=f"Skipped backup {name}",
                                      severity="warning", timeout=10)
        return listing.items

    def show_items(self, items: list[Backup], live: bool = False) -> None:
        self.now = now()
        super().show_items(bucketfmt.sort_backups(items), live)

    # ---- describe ------------------------------------------------------------------------

    def details(self, b: Backup) -> bucketfmt.BackupDetails:
        """Everything `describe` shows of ``b`` (read in a worker thread)."""
        assert self.bucket is not None
        bucket, name = self.bucket, b.name
        return bucketfmt.BackupDetails(
            backup=bucket.backup(name), results=bucket.results(name),
            resource_list=bucket.resource_list(name), item_operations=bucket.item_operations(name),
            pod_volume_backups=bucket.pod_volume_backups(name),
            volume_infos=bucket.volume_infos(name), volumes=bucket.volumes(name),
            logs_hint=f"kbrowse --bsl {bucket.location()} logs {name}")

    def describe(self, b: Backup) -> str:
        return bucketfmt.describe_backup(self.details(b))

    # ---- open ----------------------------------------------------------------------------

    @on(VirtualTable.Selected)
    @on(Input.Submitted)
    def action_open(self) -> None:
        b = self.current
        if b is not None:
            self.open_backup(b)

    def open_backup(self, b: Backup) -> None:
        # imported when opened: it pulls in the repository code, which listing backups (here or
        # on a cluster) does not need
        from kbrowse.tui.screens.backup import BackupScreen

        assert self.bucket is not None
        self.app.push_screen(BackupScreen(self.bucket, b))
