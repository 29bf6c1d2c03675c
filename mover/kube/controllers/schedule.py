"""Schedule controller: make a Backup from the template each time the cron expression fires.

Backups are named ``<schedule>-<YYYYMMDDhhmmss>`` (UTC) and labelled
``velero.io/schedule-name``. As in Velero: a schedule that never made a backup makes one at
once, unless ``skipImmediately`` is set (the controller then records ``lastSkipped`` and
clears the flag, which is also how ``unpause --skip-immediately`` works); a paused schedule
makes none; a run is skipped while an earlier backup of the schedule is still New or
InProgress, so backups never overlap.
"""

from __future__ import annotations

from datetime import datetime

from mover.kube.controllers.backup import validation_errors
from mover.kube.framework.client import KubeError, Obj
from mover.kube.framework.controller import Context, Controller
from mover.kube.framework.status import patch_status
from mover.kube.resources import BACKUPS, SCHEDULES
from mover.velero import labels as velero_labels
from mover.velero.cron import CronError, parse
from mover.velero.objects import Schedule, decode, format_time
from mover.velero.requests import scheduled_backup_name


class ScheduleController(Controller):
    resource = SCHEDULES
    reads = (BACKUPS,)

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        # When each schedule last made (or skipped) a backup, as this process knows it: the
        # cached status may not show the lastBackup just written, and a second must not follow.
        self._made: dict[str, datetime] = {}

    def reconcile(self, name: str, obj: Obj | None) -> float | None:
        if obj is None:
            self._made.pop(name, None)
            return None
        schedule = decode(Schedule, obj)
        ns = self.ctx.namespace
        try:
            cron = parse(schedule.spec.schedule)
            errors = []
        except CronError as exc:
            errors = [f"invalid schedule: {exc}"]
        errors += validation_errors(schedule.spec.template)
        if errors:
            if schedule.status.phase != "FailedValidation" or schedule.status.validation_errors != errors:
                patch_status(self.ctx.kube, SCHEDULES, ns, name, {"phase": "FailedValidation",
                                                                  "validationErrors": errors})
            return None
        now = self.ctx.clock()
        status: dict[str, object] = {}
        if schedule.status.phase != "Enabled":
            status |= {"phase": "Enabled", "validationErrors": None}
        if schedule.spec.skip_immediately:
            status["lastSkipped"] = format_time(now)
            self._made[name] = now
        if status:
            patch_status(self.ctx.kube, SCHEDULES, ns, name, status)
        if schedule.spec.skip_immediately:  # after lastSkipped: a cache never shows one without the other
            self.ctx.kube.patch(SCHEDULES, ns, name, {"spec": {"skipImmediately": False}})
        if schedule.spec.paused:
            return None
        since = max(filter(None, (schedule.status.last_backup, schedule.status.last_skipped,
                                  self._made.get(name))), default=None)
        due = cron.next_after(since) if since else now
        if due > now:
            return (due - now).total_seconds()
        if self._running(name):
            return 1.0
        self._make_backup(obj, now)
        return (cron.next_after(now) - now).total_seconds()

    def _running(self, schedule: str) -> bool:
        return any((b["metadata"].get("labels") or {}).get(velero_labels.SCHEDULE_NAME) == schedule
                   and (b.get("status") or {}).get("phase", "New") in ("New", "InProgress")
                   for b in self.ctx.cached_all(BACKUPS))

    def _make_backup(self, obj: Obj, now: datetime) -> None:
        # The template as written, not as modelled: every field goes to the backup.
        meta, spec = obj["metadata"], obj.get("spec") or {}
        template = dict(spec.get("template") or {})
        labels = dict((template.pop("metadata", None) or {}).get("labels") or {})
        labels[velero_labels.SCHEDULE_NAME] = meta["name"]
        backup_meta: dict[str, object] = {"name": scheduled_backup_name(meta["name"], now), "labels": labels}
        if spec.get("useOwnerReferencesInBackup"):
            backup_meta["ownerReferences"] = [{"apiVersion": "velero.io/v1", "kind": "Schedule",
                                               "name": meta["name"], "uid": meta["uid"], "controller": True}]
        try:
            self.ctx.kube.create(BACKUPS, self.ctx.namespace, {"apiVersion": "velero.io/v1", "kind": "Backup",
                                                               "metadata": backup_meta, "spec": template})
        except KubeError as exc:
            if not exc.already_exists:  # made in this same second already: nothing to do
                raise
        self._made[meta["name"]] = now
        patch_status(self.ctx.kube, SCHEDULES, self.ctx.namespace, meta["name"], {"lastBackup": format_time(now)})
