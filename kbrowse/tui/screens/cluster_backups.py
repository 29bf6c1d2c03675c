"""The cluster's backups: `velero backup get`'s table, kept current by the watch; the describe
pane as `velero backup describe --details` (files through DownloadRequests, as the CLI gets
them), the log, and Enter opens the backup through its storage location. New backup, restore
from the highlighted one, delete it: each made as `kbrowse backup|restore create` makes it.
The screens it opens (a backup through its location, the forms) are imported when opened: they
pull in the storage and repository code (boto3 among it), which the list does not need.
"""

from __future__ import annotations

from typing import Any, ClassVar

from rich.text import Text
from textual import work
from textual.binding import Binding, BindingType
from textual.worker import get_current_worker

from kbrowse.bucket.printers import BackupDetails
from kbrowse.cluster.backup import backup_details
from kbrowse.cluster.session import ClusterSession
from kbrowse.cluster.wait import FINAL, download
from kbrowse.tui.preview_content import TextLines, note
from kbrowse.tui.screens.backups import BackupsScreen
from kbrowse.tui.screens.cluster import ClusterListScreen
from kbrowse.tui.screens.confirm import ConfirmScreen
from kbrowse.tui.ui_thread import deliver
from mover.errors import RepoError
from mover.kube.resources import BACKUPS, DELETE_BACKUP_REQUESTS, RESTORES
from mover.velero.objects import Backup
from mover.velero.requests import delete_backup_request

Obj = dict[str, Any]


class ClusterBackupsScreen(ClusterListScreen[Backup], BackupsScreen):
    TAB = "backups"
    KINDS = ("backups",)
    LOADING = "watching backups…"
    EMPTY = "no backups in this namespace: n makes one"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "open", "Open", tooltip="Open the backup's resources and volumes through its location"),
        Binding("n", "new_backup", "New backup", tooltip="Make a backup (velero backup create)"),
        Binding("r", "new_restore", "Restore", tooltip="Restore from the highlighted backup"),
        Binding("l", "logs", "Logs", tooltip="The backup's log (through a DownloadRequest)"),
        Binding("x", "delete", "Delete", tooltip="Delete the backup (a DeleteBackupRequest)"),
        Binding("d", "describe", "Describe", tooltip="Scroll the describe pane"),
        Binding("ctrl+r", "reload", "Reload", show=False),
    ]

    def __init__(self, session: ClusterSession) -> None:
        super().__init__(session)
        self.select_next: str | None = None  # a backup just made: the cursor goes to it when it shows

    # ---- live updates ----------------------------------------------------------------------

    def show_items(self, items: list[Backup], live: bool = False) -> None:
        super().show_items(items, live)
        if self.select_next is not None and self.table.select_where(lambda b: b.name == self.select_next):
            self.select_next = None

    # ---- describe and logs -----------------------------------------------------------------

    def version(self, b: Backup) -> str:
        return (b.raw.get("metadata") or {}).get("resourceVersion", "")

    def details(self, b: Backup) -> BackupDetails:
        return self.gather(lambda note, cancelled: backup_details(
            self.session.kube, self.session.namespace, b.raw, note, cancelled))

    def action_logs(self) -> None:
        b = self.current
        if b is None:
            return
        if b.status.phase in ("", "New", "InProgress"):
            self.notify(f"The log of {b.name} is there once it has finished.", severity="warning")
            return
        self.described = None  # the next highlight describes again
        self.pane.reading(f"Log of {b.name}")
        self._logs(b.name)

    @work(thread=True, exclusive=True, group="describe")
    def _logs(self, name: str) -> None:
        worker = get_current_worker()
        try:
            text = download(self.session.kube, self.session.namespace, "BackupLog", name,
                            cancelled=lambda: worker.is_cancelled).decode("utf-8", "replace")
            lines = TextLines([Text(line, no_wrap=True) for line in text.splitlines()], numbered=True)
        except RepoError as exc:
            lines = note(f"Cannot read the log of {name}: {exc}")
        if not worker.is_cancelled:
            deliver(self, lambda: self.pane.show(lines, f"Log of {name}", "velero backup logs"))

    # ---- open through the storage location -------------------------------------------------

    def open_backup(self, b: Backup) -> None:
        location = b.spec.storage_location
        if not location:
            self.notify(f"Backup {b.name} names no storage location.", severity="warning")
            return
        from kbrowse.tui.screens.backup import BackupScreen

        self.notify(f"Opening storage location {location}…", timeout=3)
        self.request(f"open storage location {location}", lambda: self.session.bucket(location),
                     lambda bucket: self.app.push_screen(BackupScreen(bucket, b)))

    # ---- actions ---------------------------------------------------------------------------

    def action_new_backup(self) -> None:
        from kbrowse.tui.screens.backup_form import BackupFormScreen

        locations = self.session.store.items("locations")
        names = sorted(loc["metadata"]["name"] for loc in locations)
        default = next((loc["metadata"]["name"] for loc in locations if (loc.get("spec") or {}).get("default")), None)
        self.app.push_screen(BackupFormScreen(self.session.namespace, names, default), self._create_backup)

    def _create_backup(self, backup: Obj | None) -> None:
        if backup is None:
            return
        name = backup["metadata"]["name"]
        self.select_next = name
        self.request("create the backup", lambda: self.session.create(BACKUPS, backup),
                     lambda _obj: self.notify(f'Backup request "{name}" submitted.', timeout=5))

    def action_new_restore(self) -> None:
        b = self.current
        if b is None:
            return
        if b.status.phase not in FINAL:
            self.notify(f"Backup {b.name} has not finished: restore from it once it has.", severity="warning")
            return
        from kbrowse.tui.screens.restore_form import RestoreFormScreen

        self.app.push_screen(RestoreFormScreen(self.session.namespace, b.name), self._create_restore)

    def _create_restore(self, restore: Obj | None) -> None:
        if restore is None:
            return
        name = restore["metadata"]["name"]
        self.request("create the restore", lambda: self.session.create(RESTORES, restore),
                     lambda _obj: self.notify(f'Restore request "{name}" submitted: 2 shows restores.', timeout=8))

    def action_delete(self) -> None:
        b = self.current
        if b is None:
            return
        self.app.push_screen(ConfirmScreen(
            f"Delete backup {b.name}?",
            "Its files in the storage location, its volume snapshots and the restores made from it are removed "
            "too (a DeleteBackupRequest, as `velero backup delete` files it).", yes=f"Delete {b.name}"),
            lambda yes: self._delete(b) if yes else None)

    def _delete(self, b: Backup) -> None:
        self.request(f"delete backup {b.name}", lambda: self.session.create(DELETE_BACKUP_REQUESTS, delete_backup_request(b.raw)),
                     lambda _obj: self.notify(f'Request to delete backup "{b.name}" submitted.', timeout=5))

