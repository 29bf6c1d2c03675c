"""BackupStorageLocation controller: validate each location now and then.

A location is Available when its bucket answers a listing and holds no top-level folder
besides Velero's own (Velero's ``IsValid``); otherwise Unavailable, with the reason in
``status.message``. ``spec.validationFrequency`` sets the period (``0`` turns validation off);
the server's default applies when it is unset.
"""

from __future__ import annotations

from datetime import timedelta

from mover.errors import RepoError
from mover.golang.duration import parse_duration
from mover.kube.framework.client import Obj
from mover.kube.framework.controller import Context, Controller
from mover.kube.framework.status import patch_status
from mover.kube.resources import BSLS
from mover.kube.storage import StoreCache
from mover.repo.backend.s3client import RetryPolicy
from mover.velero import layout
from mover.velero.objects import BackupStorageLocation, decode, format_time

AVAILABLE, UNAVAILABLE = "Available", "Unavailable"
# A validation answers within seconds: an unreachable endpoint is reported, not waited out.
VALIDATION_RETRY = RetryPolicy(attempts=2, base_delay=0.2, deadline=3.0, sdk_retries=0)


def period(value: str | None, default: timedelta) -> timedelta | None:
    """A BSL frequency field: unset means the default, zero means never."""
    if value is None or value == "":
        return default
    try:
        ns = parse_duration(value)
    except ValueError:
        return default
    return timedelta(microseconds=ns // 1000) if ns > 0 else None


def validate(ctx: Context, obj: Obj, stores: StoreCache) -> tuple[str, str]:
    """(phase, message) for one location."""
    try:
        unexpected = layout.unexpected_top_level(stores.open(ctx.kube, obj, VALIDATION_RETRY).list_dirs(""))
    except RepoError as exc:
        return UNAVAILABLE, str(exc)
    if unexpected:
        return UNAVAILABLE, (f"Backup store contains invalid top-level directories: {unexpected}; Velero allows "
                             f"only {', '.join(sorted(layout.TOP_LEVEL))}")
    return AVAILABLE, ""


class BackupStorageLocationController(Controller):
    resource = BSLS

    def __init__(self, ctx: Context, stores: StoreCache, default_frequency: timedelta) -> None:
        super().__init__(ctx)
        self.stores = stores
        self.default_frequency = default_frequency
        # The spec generation each location was last validated at: a changed spec (a fixed
        # bucket name) is validated at once, not at the next period.
        self._validated: dict[str, int] = {}

    def reconcile(self, name: str, obj: Obj | None) -> float | None:
        if obj is None:
            return None
        bsl = decode(BackupStorageLocation, obj)
        every = period(bsl.spec.validation_frequency, self.default_frequency)
        now = self.ctx.clock()
        last = bsl.status.last_validation_time
        generation = obj["metadata"].get("generation", 0)
        fresh = self._validated.get(name) == generation and bsl.status.phase
        if fresh:
            if every is None:
                return None
            if last is not None and now - last < every:
                return (last + every - now).total_seconds()
        phase, message = validate(self.ctx, obj, self.stores)
        if message:
            message = f'BackupStorageLocation "{name}" is unavailable: {message}'
        patch_status(self.ctx.kube, BSLS, self.ctx.namespace, name,
                     {"phase": phase, "message": message, "lastValidationTime": format_time(now)})
        self._validated[name] = generation
        return every.total_seconds() if every else None
