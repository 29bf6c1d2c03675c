"""The kbrowse application: opens on a repository's snapshots, or on the source picker."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import TYPE_CHECKING

from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen

from kbrowse.tui.mount_job import Mounts
from kbrowse.tui.preview_content import warm_up
from kbrowse.tui.screens.snapshots import SnapshotsScreen
from kbrowse.tui.screens.source_picker import SourcePickerScreen
from mover.view import SnapshotView

if TYPE_CHECKING:
    from mover.velero.bsl import BucketView


class KbrowseApp(App[None]):
    CSS_PATH = "kbrowse.tcss"
    TITLE = "kbrowse"

    def __init__(self, view: SnapshotView | None = None, source_label: str = "",
                 bucket: BucketView | None = None) -> None:
        super().__init__()
        self.view = view
        self.bucket = bucket
        self.source_label = source_label or (view.location() if view is not None else
                                             bucket.location() if bucket is not None else "")
        self.mounts = Mounts()

    def on_mount(self) -> None:
        self._warm_up()
        if self.bucket is not None:
            from kbrowse.tui.screens.backups import BackupsScreen

            self.push_screen(BackupsScreen(self.bucket, self.source_label))
        elif self.view is not None:
            self.push_screen(SnapshotsScreen(self.view, self.source_label))
        else:
            self.push_screen(SourcePickerScreen())

    @work(thread=True)
    def _warm_up(self) -> None:
        warm_up()

    def on_unmount(self) -> None:
        for problem in self.mounts.unmount_all():
            print(f"kbrowse: {problem}", file=sys.stderr)  # the screen is gone by now

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        """The palette offers what the footer does: every binding of the current screen."""
        for binding in screen.BINDINGS:
            if not isinstance(binding, Binding) or not binding.description:
                continue
            name, _, _ = binding.action.partition("(")
            if screen.check_action(name, ()) is False:
                continue
            yield SystemCommand(binding.description, binding.tooltip or binding.description,
                                lambda action=binding.action: self.run_action(action, screen))
        yield from super().get_system_commands(screen)


def run_tui(view: SnapshotView | None, source_label: str = "",
            bucket: BucketView | None = None) -> None:
    """Run the app in this terminal until the user quits.

    ``view`` is an open repository (``RepositoryView``); ``bucket`` a Velero bucket (the app
    starts on its backups); with neither the app starts on the source picker. ``source_label``
    names the source in the title (default: the view's or bucket's location).
    """
    KbrowseApp(view, source_label, bucket).run()
