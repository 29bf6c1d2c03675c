"""Where the app starts when it was not given a repository: pick or type one, give a password."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Button, Footer, Header, Input, Label, OptionList
from textual.widgets.option_list import Option

from kbrowse.tui.discover import Source, find_sources
from kbrowse.tui.screens.snapshots import SnapshotsScreen
from mover.errors import RepoError
from mover.opener import open_view
from mover.view import SnapshotView


class SourcePickerScreen(Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+o", "open", "Open", tooltip="Open the repository with the password given"),
        Binding("escape", "app.quit", "Quit"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.sources = find_sources()

    def compose(self) -> ComposeResult:
        yield Header()
        with Vertical(id="picker"):
            yield Label("Open a backup repository", classes="heading")
            if self.sources:
                yield Label("Found here:")
                yield OptionList(*[Option(Text(s.label), id=str(i)) for i, s in enumerate(self.sources)],
                                 id="sources")
            else:
                yield Label("No repository found in $RESTIC_REPOSITORY or ./kbrowse-demo: "
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

    @on(OptionList.OptionSelected, "#sources")
    def _picked(self, event: OptionList.OptionSelected) -> None:
        src: Source = self.sources[int(event.option.id or 0)]
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
            self.app.call_from_thread(self._failed, str(e))
            return
        except Exception as e:  # noqa: BLE001
            # any backend's failure (network, permissions) is the user's to read, never a crash
            self.app.call_from_thread(self._failed, f"{type(e).__name__}: {e}")
            return
        self.app.call_from_thread(self._opened, view, location)

    def _failed(self, message: str) -> None:
        self.query_one("#picker").loading = False
        self.notify(message, title="Cannot open the repository", severity="error", timeout=10)
        self.query_one("#password", Input).focus()

    def _opened(self, view: SnapshotView, location: str) -> None:
        self.query_one("#picker").loading = False
        self.query_one("#password", Input).value = ""
        self.app.push_screen(SnapshotsScreen(view, location))
