"""Where the app starts when it was not given a source: pick a repository (or type one, give
a password), a cluster of the kubeconfig, or a storage location found on one."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from rich.markup import escape
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Button, Header, Input, Label, OptionList
from textual.widgets.option_list import Option

from kbrowse.tui.discover import Source, find_clusters, find_locations, find_sources
from kbrowse.tui.screens.snapshots import SnapshotsScreen
from kbrowse.tui.ui_thread import deliver
from kbrowse.tui.widgets.footer import Footer
from mover.errors import RepoError
from mover.opener import open_view
from mover.view import SnapshotView

if TYPE_CHECKING:  # the Kubernetes client takes most of a second to import: only for clusters
    from kbrowse.cluster.session import ClusterSession
    from mover.velero.bsl import BucketView


class SourcePickerScreen(Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+o", "open", "Open", tooltip="Open the repository with the password given"),
        Binding("escape", "app.quit", "Quit"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.sources = find_sources()
        self._sessions: list[ClusterSession] = []  # behind the buckets of storage locations opened here
        self._buckets: list[BucketView] = []  # bucket directories opened here

    def compose(self) -> ComposeResult:
        yield Header()
        with Vertical(id="picker"):
            yield Label("Open a backup repository", classes="heading")
            if self.sources:
                yield Label("Found here:")
                yield OptionList(*[Option(Text(s.label), id=str(i)) for i, s in enumerate(self.sources)],
                                 id="sources")
            else:
                yield Label("No repository found in $RESTIC_REPOSITORY, nor a bucket in ./kbrowse-demo: "
                            "type one below (or run `kbrowse demo`).", classes="hint")
            yield Label("Repository")
            yield Input(placeholder="/path/to/repo, or s3:http://host:9000/bucket/prefix", id="location")
            yield Label("Password")
            yield Input(placeholder="repository password", password=True, id="password")
            with Horizontal(classes="buttons"):
                yield Button("Open", variant="primary", id="open")
        yield Footer()

    def on_mount(self) -> None:
        self.title = "kbrowse"
        self.sub_title = "choose a source"
        self.query_one("#sources" if self.sources else "#location").focus()
        self._find_clusters()

    def on_unmount(self) -> None:
        for session in self._sessions:
            session.close()
        for bucket in self._buckets:
            bucket.close()

    # ---- clusters: found in the background (importing the client, asking each server) --------

    @work(thread=True, group="find-clusters")
    def _find_clusters(self) -> None:
        clusters = find_clusters()
        if clusters:
            deliver(self, self._add_sources, clusters)
        for cluster in clusters:
            locations = find_locations(cluster.location)
            if locations:
                deliver(self, self._add_sources, locations)

    def _add_sources(self, found: list[Source]) -> None:
        first = len(self.sources)
        self.sources += found
        options = [Option(Text(s.label), id=str(first + i)) for i, s in enumerate(found)]
        if self.query("#sources"):
            self.query_one("#sources", OptionList).add_options(options)
            return
        self.query(".hint").remove()
        location = self.query_one("#location", Input)
        self.query_one("#picker").mount(Label("Found here:"), OptionList(*options, id="sources"),
                                        after=self.query_one(".heading"))
        if location.has_focus and not location.value:
            self.call_after_refresh(lambda: self.query_one("#sources").focus())

    @on(OptionList.OptionSelected, "#sources")
    def _picked(self, event: OptionList.OptionSelected) -> None:
        src: Source = self.sources[int(event.option.id or 0)]
        if src.context is not None or src.bsl is not None:
            self.query_one("#picker").loading = True
            self._open_cluster(src)
            return
        self.query_one("#location", Input).value = src.location
        if src.password:
            self.query_one("#password", Input).value = src.password
            self.action_open()
        else:
            self.query_one("#password", Input).focus()

    @on(Input.Submitted, "#location")
    def _location_done(self) -> None:
        self.query_one("#password", Input).focus()

    @on(Input.Submitted, "#password")
    @on(Button.Pressed, "#open")
    def action_open(self) -> None:
        location = self.query_one("#location", Input).value.strip()
        password = self.query_one("#password", Input).value
        if not location:
            self.notify("Type the repository's path or URL first.", severity="warning")
            self.query_one("#location", Input).focus()
            return
        if not password:
            self.notify("The repository needs its password.", severity="warning")
            self.query_one("#password", Input).focus()
            return
        self.query_one("#picker").loading = True
        self._open(location, password)

    @work(thread=True, exclusive=True, group="open-repo")
    def _open(self, location: str, password: str) -> None:
        try:
            view = open_view(location, password)
        except RepoError as e:
            deliver(self, self._failed, str(e))
            return
        except Exception as e:
            # any backend's failure (network, permissions) is the user's to read, never a crash
            deliver(self, self._failed, f"{type(e).__name__}: {e}")
            return
        deliver(self, self._opened, view, location)

    def _failed(self, message: str, title: str = "Cannot open the repository") -> None:
        self.query_one("#picker").loading = False
        self.notify(escape(message), title=title, severity="error", timeout=10)
        self.query_one("#password", Input).focus()

    @work(thread=True, exclusive=True, group="open-cluster")
    def _open_cluster(self, src: Source) -> None:
        """A cluster, a storage location of one, or (no context) a bucket directory."""
        from mover.velero.bsl import BucketView

        session = None
        try:
            if src.context is None:
                assert src.bsl is not None
                bucket: BucketView | None = BucketView.open(src.bsl)
            else:
                from kbrowse.cluster.session import ClusterSession, KubeTarget

                session = ClusterSession.connect(KubeTarget(context=src.context))
                bucket = None if src.bsl is None else session.bucket(src.bsl)
        except RepoError as e:
            deliver(self, self._failed, str(e), f"Cannot open {src.bsl or src.context}")
            return
        deliver(self, self._cluster_opened, session, bucket, src)

    def _cluster_opened(self, session: ClusterSession | None, bucket: BucketView | None, src: Source) -> None:
        from kbrowse.tui.screens.backups import BackupsScreen

        self.query_one("#picker").loading = False
        if bucket is None:
            self.app.open_cluster(session)  # type: ignore[attr-defined]
            return
        if session is None:
            self._buckets.append(bucket)
            self.app.push_screen(BackupsScreen(bucket, bucket.location()))
            return
        self._sessions.append(session)
        self.app.push_screen(BackupsScreen(bucket, f"{src.bsl} · {bucket.location()}"))

    def _opened(self, view: SnapshotView, location: str) -> None:
        self.query_one("#picker").loading = False
        self.query_one("#password", Input).value = ""
        self.app.push_screen(SnapshotsScreen(view, location))
