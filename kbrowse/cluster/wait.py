"""Talking to a Velero(-compatible) server from the operator's side: wait for a backup or
restore with live progress, and fetch a file of one through a DownloadRequest, as the velero
CLI does (so this works against real Velero too)."""

from __future__ import annotations

import gzip
import sys
import time
import urllib.request
from collections.abc import Callable
from typing import Any

from mover.errors import RepoError
from mover.kube.framework.client import Kube, KubeError, Resource
from mover.kube.resources import DOWNLOAD_REQUESTS

Obj = dict[str, Any]
# Phases after which a backup or restore changes no more.
FINAL = frozenset({"Completed", "PartiallyFailed", "Failed", "FailedValidation"})
POLL_SECONDS = 0.1


def _progress_counts(obj: Obj) -> tuple[int, int]:
    progress = (obj.get("status") or {}).get("progress") or {}
    done = progress.get("itemsBackedUp", progress.get("itemsRestored", 0))
    return done, progress.get("totalItems", 0)


def wait(kube: Kube, res: Resource, namespace: str, name: str, what: str, *,
         timeout: float | None = None, interactive: bool | None = None) -> Obj:
    """Poll until the object reaches a final phase (or ``timeout`` seconds pass); show its
    phase and items done as a rich bar on a terminal, or as a line per change otherwise."""
    interactive = sys.stderr.isatty() if interactive is None else interactive
    deadline = None if timeout is None else time.monotonic() + timeout
    show = _bar(what, name) if interactive else _lines(what, name)
    try:
        while True:
            obj = kube.get(res, namespace, name)
            phase = (obj.get("status") or {}).get("phase") or "New"
            show(phase, *_progress_counts(obj))
            if phase in FINAL or (deadline is not None and time.monotonic() > deadline):
                return obj
            time.sleep(POLL_SECONDS)
    finally:
        show("", -1, -1)


def _lines(what: str, name: str) -> Callable[[str, int, int], None]:
    last: list[Any] = [None]

    def show(phase: str, done: int, total: int) -> None:
        if phase and (phase, done, total) != last[0]:
            last[0] = (phase, done, total)
            counts = f" ({done}/{total} items)" if total else ""
            sys.stderr.write(f"{what} {name}: {phase}{counts}\n")
            sys.stderr.flush()

    return show


def _bar(what: str, name: str) -> Callable[[str, int, int], None]:
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    progress = Progress(SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(),
                        MofNCompleteColumn(), TextColumn("items"), TimeElapsedColumn(),
                        console=Console(stderr=True), transient=True)
    task = progress.add_task(f"{what} {name}", total=None)
    progress.start()

    def show(phase: str, done: int, total: int) -> None:
        if done < 0:
            progress.stop()
            return
        progress.update(task, description=f"{what} {name}: {phase}", completed=done, total=total or None)

    return show


def download(kube: Kube, namespace: str, kind: str, name: str, timeout: float = 60.0,
             cancelled: Callable[[], bool] | None = None) -> bytes:
    """The bytes of one file of a backup or restore (``kind`` is a DownloadRequest target kind,
    e.g. BackupLog), gunzipped when gzipped. Needs a server to process the request; the wait
    for it ends early once ``cancelled()`` (the app's worker was cancelled: another backup was
    highlighted, or the app is closing)."""
    request = kube.create(DOWNLOAD_REQUESTS, namespace, {
        "apiVersion": "velero.io/v1", "kind": "DownloadRequest",
        "metadata": {"generateName": f"{name}-"}, "spec": {"target": {"kind": kind, "name": name}}})
    request_name = request["metadata"]["name"]
    try:
        deadline = time.monotonic() + timeout
        while True:
            status = kube.get(DOWNLOAD_REQUESTS, namespace, request_name).get("status") or {}
            if status.get("downloadURL"):
                break
            if cancelled is not None and cancelled():
                raise RepoError(f"stopped waiting for the {kind} of {name}")
            if time.monotonic() > deadline:
                raise RepoError(f"timed out waiting for the server to process download request {request_name}: "
                                f"is the server (mover server or velero) running in namespace {namespace}?")
            time.sleep(POLL_SECONDS)
        try:
            with urllib.request.urlopen(status["downloadURL"], timeout=timeout) as response:
                data = response.read()
        except OSError as exc:
            raise RepoError(f"cannot download the {kind} of {name}: {exc}") from None
    finally:
        try:
            kube.delete(DOWNLOAD_REQUESTS, namespace, request_name)
        except KubeError:
            pass  # the server removes expired requests anyway
    return gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data
