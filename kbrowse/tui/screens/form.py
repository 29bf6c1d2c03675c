"""A dialog of labelled fields that checks what was typed before it hands it back: the new
backup and new restore forms are built on it. Problems are listed in the dialog (one line
each), nothing is submitted until there are none."""

from __future__ import annotations

import re
from typing import Any, ClassVar, TypeVar

from rich.markup import escape
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Input, Label, Select, Static

R = TypeVar("R")

# Kubernetes object names (DNS-1123 subdomain) and namespace names (DNS-1123 label).
_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")


def name_problem(name: str, what: str = "name") -> str | None:
    if not name:
        return f"{what} is required"
    if len(name) > 253 or not _SUBDOMAIN.fullmatch(name):
        return (f"{what} {name!r} is not a valid object name: lower-case letters, digits, '-' and '.', "
                "starting and ending with a letter or digit")
    return None


def namespace_problem(ns: str) -> str | None:
    if ns == "*" or (len(ns) <= 63 and _LABEL.fullmatch(ns)):
        return None
    return f"{ns!r} is not a namespace name (lower-case letters, digits and '-', at most 63)"


def split_list(text: str) -> list[str]:
    """Comma- or space-separated items, as the CLI's NS,... flags take them."""
    return [item for item in re.split(r"[,\s]+", text.strip()) if item]


class FormScreen(ModalScreen[R]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel"),
        Binding("ctrl+s", "submit", "Submit"),
    ]
    HEADING = ""
    SUBMIT = "Submit"

    def compose(self) -> ComposeResult:
        with VerticalScroll(classes="dialog form"):
            yield Label(self.HEADING, classes="heading")
            yield from self.fields()
            yield Static(id="form-problems", classes="problems")
            with Horizontal(classes="buttons"):
                yield Button(self.SUBMIT, variant="primary", id="submit")
                yield Button("Cancel", id="cancel")

    def fields(self) -> ComposeResult:
        raise NotImplementedError

    def check(self) -> tuple[list[str], R | None]:
        """(problems, result): the result is handed back when there are no problems."""
        raise NotImplementedError

    # ---- reading fields --------------------------------------------------------------------

    def text(self, field: str) -> str:
        return self.query_one(f"#{field}", Input).value.strip()

    def checked(self, field: str) -> bool | None:
        """True when ticked, None when not: the flag is then not given, as on the command line."""
        return True if self.query_one(f"#{field}", Checkbox).value else None

    def choice(self, field: str) -> Any:
        select = self.query_one(f"#{field}", Select)
        return None if select.is_blank() else select.value

    # ---- buttons ---------------------------------------------------------------------------

    @on(Button.Pressed, "#submit")
    @on(Input.Submitted)
    def action_submit(self) -> None:
        problems, result = self.check()
        shown = self.query_one("#form-problems", Static)
        if problems:
            shown.update("\n".join(f"[red]✗[/] {escape(p)}" for p in problems))
            return
        shown.update("")
        self.dismiss(result)

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)


def field(label: str, id: str, value: str = "", placeholder: str = "") -> ComposeResult:
    """One line: the label, then the input (forms have a dozen fields: they must fit a screen)."""
    with Horizontal(classes="field"):
        yield Label(label)
        yield Input(value, placeholder=placeholder, id=id, compact=True)


def choice(label: str, id: str, options: list[tuple[str, Any]], value: Any = Select.NULL,
           prompt: str = "") -> ComposeResult:
    with Horizontal(classes="field"):
        yield Label(label)
        yield Select(options, id=id, value=value, prompt=prompt, compact=True)


def tick(label: str, id: str) -> ComposeResult:
    with Horizontal(classes="field"):
        yield Label("")
        yield Checkbox(label, id=id, compact=True)
