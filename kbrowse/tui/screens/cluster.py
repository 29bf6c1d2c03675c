"""What the cluster screens share: items from the session's watch-fed store (redrawn on each
batch of changes, never polled), the tab line and the digit keys that switch between them,
one line for each failure, and a helper to run a request off the UI thread."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar, TypeVar

from rich.markup import escape
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import Static
from textual.worker import get_current_worker

from kbrowse.cluster.session import ClusterSession
from kbrowse.cluster.store import Changes
from kbrowse.tui.screens.listscreen import LIST_BINDINGS, ListScreen
from kbrowse.tui.ui_thread import deliver
from mover.errors import RepoError

T = TypeVar("T")
R = TypeVar("R")

# (key, tab label): the digit keys 1..6 follow this order.
TABS = [("backups", "Backups"), ("restores", "Restores"), ("schedules", "Schedules"),
        ("locations", "Storage locations"), ("repositories", "Repositories"), ("movement", "Data movement")]

NAV_BINDINGS: list[BindingType] = [
    Binding(str(i), f"app.cluster_screen('{key}')", label, show=False, tooltip=f"Go to {label}")
    for i, (key, label) in enumerate(TABS, 1)
]


def now() -> datetime:
    """The time ages and expiries count from (a function, so tests and pictures can fix it)."""
    return datetime.now(UTC)


def phase_style(phase: str, errors: int = 0, warnings: int = 0) -> str:
    if phase in ("Failed", "FailedValidation", "Unavailable") or errors:
        return "red"
    if phase in ("PartiallyFailed", "NotReady") or warnings:
        return "yellow"
    if phase in ("New", "InProgress", "Prepared", "Accepted", "WaitingForPluginOperations", "Finalizing"):
        return "bold"
    return ""


def tab_line(active: str) -> Text:
    line = Text(" ")
    for i, (key, label) in enumerate(TABS, 1):
        line.append(f" {i} {label} ", "reverse bold" if key == active else "dim")
        line.append(" ")
    return line


def cluster_screen(key: str, session: ClusterSession) -> ClusterListScreen[Any]:
    from kbrowse.tui.screens import (
        cluster_backups,
        locations,
        movement,
        repositories,
        restores,
        schedules,
    )

    screens: dict[str, type[ClusterListScreen[Any]]] = {
        "backups": cluster_backups.ClusterBackupsScreen, "restores": restores.RestoresScreen,
        "schedules": schedules.SchedulesScreen, "locations": locations.LocationsScreen,
        "repositories": repositories.RepositoriesScreen, "movement": movement.MovementScreen}
    return screens[key](session)


class ClusterListScreen(ListScreen[T]):
    TAB = ""  # the key in TABS
    KINDS: ClassVar[Sequence[str]] = ()  # the store's kinds whose objects are the rows
    LOADING = "watching…"
    BINDINGS: ClassVar[list[BindingType]] = [*LIST_BINDINGS, *NAV_BINDINGS]

    def __init__(self, session: ClusterSession) -> None:
        super().__init__(source_label=session.label)
        self.session = session
        self.now = now()
        self._described_version: str | None = None

    def compose(self) -> ComposeResult:
        yield Static(tab_line(self.TAB), id="cluster-tabs")
        yield from super().compose()

    def on_mount(self) -> None:
        super().on_mount()
        self.title = f"kbrowse · {dict(TABS)[self.TAB]}"

    def on_screen_resume(self) -> None:
        if self.ready:
            self.action_reload()

    def can_go_back(self) -> bool:
        return False  # the tabs switch screens; nothing is below them but the picker

    # ---- items from the store --------------------------------------------------------------

    def collect(self) -> list[T]:
        store = self.session.store
        return [item for kind in self.KINDS for item in store.items(kind)]

    def action_reload(self) -> None:
        self.now = now()
        self.show_items(self.collect(), live=bool(self.all))
        for kind in self.KINDS:
            message = self.session.store.error(kind)
            if message:
                self.store_error(kind, message)

    def store_changed(self, changes: Changes) -> None:
        """A batch of watch events (on the UI thread); only screens showing them redraw."""
        if not (any(kind in changes for kind in self.KINDS) and self.alive):
            return
        self.now = now()
        self.show_items(self.collect(), live=True)
        item = self.current
        # The pane follows the highlighted object as it changes (phase, counts, errors).
        if self.PANE and item is not None and self.key(item) == self.described \
                and any(self.key(item) in changes.get(kind, ()) for kind in self.KINDS) \
                and self.version(item) != self._described_version:
            self.start_describe(item)

    def version(self, item: T) -> str:
        """The object's resourceVersion: the pane describes it again when it changes."""
        return ""

    def start_describe(self, item: T) -> None:
        self._described_version = self.version(item)
        super().start_describe(item)

    def gather(self, read: Callable[[Callable[[str], None], Callable[[], bool]], R]) -> R:
        """``read(note, cancelled)`` in the describe worker (files come through DownloadRequests,
        which it stops waiting for once the worker is cancelled); its notes become warnings."""
        notes: list[str] = []
        worker = get_current_worker()
        result = read(notes.append, lambda: worker.is_cancelled)
        if not worker.is_cancelled:
            for message in notes:
                self.app.call_from_thread(self.notify, escape(message), severity="warning", timeout=8)
        return result

    def store_error(self, kind: str, message: str) -> None:
        if not self.alive or kind not in self.KINDS:
            return
        if message:
            self.table.empty_text = message
            self.table.refresh()
            self.set_status(message)
        else:
            self.update_status()

    def update_status(self) -> None:
        errors = [m for m in (self.session.store.error(k) for k in self.KINDS) if m]
        if errors:
            self.set_status(errors[0])
        elif not all(self.session.store.synced(k) for k in self.KINDS):
            self.set_status(f"listing {self._noun(2)} in {self.session.label}…")
        else:
            super().update_status()

    def show_items(self, items: list[T], live: bool = False) -> None:
        super().show_items(items, live)
        if not all(self.session.store.synced(k) for k in self.KINDS):
            self.table.empty_text = self.LOADING

    # ---- requests --------------------------------------------------------------------------

    @work(thread=True, group="cluster-request")
    def request(self, what: str, call: Callable[[], object], done: Callable[[Any], None] | None = None) -> None:
        """``call()`` in a worker; a refusal is one error line (``what`` says what failed)."""
        try:
            result = call()
        except RepoError as exc:  # ClusterError: already one line
            self.app.call_from_thread(self.notify, escape(str(exc)), title=f"Cannot {what}", severity="error",
                                      timeout=15)
            return
        if done is not None:
            deliver(self, done, result)
