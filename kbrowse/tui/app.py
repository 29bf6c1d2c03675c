"""The kbrowse application: opens on a repository's snapshots, a bucket's backups, a cluster's
backups, or on the source picker."""

from __future__ import annotations

import gc
import sys
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen

from kbrowse.tui.mount_job import Mounts
from kbrowse.tui.preview_content import warm_up

if TYPE_CHECKING:
    from kbrowse.cluster.session import ClusterSession
    from kbrowse.cluster.store import Changes
    from mover.velero.bsl import BucketView
    from mover.view import SnapshotView


class KbrowseApp(App[None]):
    CSS_PATH = "kbrowse.tcss"
    TITLE = "kbrowse"

    def __init__(self, view: SnapshotView | None = None, source_label: str = "",
                 bucket: BucketView | None = None, cluster: ClusterSession | None = None) -> None:
        super().__init__()
        self.view = view
        self.bucket = bucket
        self.cluster: ClusterSession | None = None
        self._initial_cluster = cluster
        self.source_label = source_label or (view.location() if view is not None else
                                             bucket.location() if bucket is not None else "")
        self.mounts = Mounts()

    def on_mount(self) -> None:
        self._warm_up()
        if self._initial_cluster is not None:
            self.open_cluster(self._initial_cluster)
        elif self.bucket is not None:
            from kbrowse.tui.screens.backups import BackupsScreen

            self.push_screen(BackupsScreen(self.bucket, self.source_label))
        elif self.view is not None:
            from kbrowse.tui.screens.snapshots import SnapshotsScreen

            self.push_screen(SnapshotsScreen(self.view, self.source_label))
        else:
            from kbrowse.tui.screens.source_picker import SourcePickerScreen

            self.push_screen(SourcePickerScreen())

    @work(thread=True)
    def _warm_up(self) -> None:
        warm_up()

    def on_unmount(self) -> None:
        for problem in self.mounts.unmount_all():
            print(f"kbrowse: {problem}", file=sys.stderr)  # the screen is gone by now
        if self.cluster is not None:
            self.cluster.close()

    # ---- cluster mode ----------------------------------------------------------------------

    def open_cluster(self, session: ClusterSession) -> None:
        """Start watching the cluster and show its backups (a second cluster replaces the first)."""
        from kbrowse.tui.screens.cluster import TABS

        if self.cluster is not None and self.cluster is not session:
            self.cluster.close()
            for key, _ in TABS:
                if self.is_screen_installed(f"cluster-{key}"):
                    self.uninstall_screen(f"cluster-{key}")
        self.cluster = session
        session.store.on_change = lambda changes: self._from_store(self._cluster_changed, changes)
        session.store.on_error = lambda kind, message: self._from_store(self._cluster_error, kind, message)
        session.store.start()
        self.push_screen(self._installed("backups"))

    def _installed(self, key: str) -> str:
        """The cluster screen's name; made once and kept: switching back to it is a redraw,
        not a new screen."""
        from kbrowse.tui.screens.cluster import cluster_screen

        name = f"cluster-{key}"
        if not self.is_screen_installed(name):
            assert self.cluster is not None
            self.install_screen(cluster_screen(key, self.cluster), name)
        return name

    def _from_store(self, callback: Callable[..., object], *args: object) -> None:
        try:
            self.call_from_thread(callback, *args)
        except RuntimeError:
            pass  # the app is closing: nothing is left to redraw

    def _cluster_screen(self) -> Any:
        """The cluster screen on top, if one is (a dialog or a bucket screen may be)."""
        from kbrowse.tui.screens.cluster import ClusterListScreen

        screen = self.screen_stack[-1] if self.screen_stack else None
        return screen if isinstance(screen, ClusterListScreen) else None

    def _cluster_changed(self, changes: Changes) -> None:
        screen = self._cluster_screen()
        if screen is not None:
            screen.store_changed(changes)

    def _cluster_error(self, kind: str, message: str) -> None:
        screen = self._cluster_screen()
        if screen is not None:
            screen.store_error(kind, message)

    def action_cluster_screen(self, key: str) -> None:
        screen = self._cluster_screen()
        if screen is None or screen.TAB == key or screen is not self.screen:
            return
        self.switch_screen(self._installed(key))

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
            bucket: BucketView | None = None, cluster: ClusterSession | None = None) -> None:
    """Run the app in this terminal until the user quits.

    ``view`` is an open repository (``RepositoryView``); ``bucket`` a Velero bucket (the app
    starts on its backups); ``cluster`` a cluster (the app watches it, starts on its backups and
    closes it); with none the app starts on the source picker. ``source_label`` names the source
    in the title (default: the view's or bucket's location).
    """
    # What exists now (the imports, the opened source) lives as long as the app: frozen, no
    # full collection walks it again while the app draws (0.1-0.2 CPU s of the first screens).
    # The collector may have been off while it was made (``kbrowse.cli.open_app``).
    gc.freeze()
    gc.enable()
    KbrowseApp(view, source_label, bucket, cluster).run()
