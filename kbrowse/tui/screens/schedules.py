"""The cluster's schedules, as `velero schedule get` lists them: pause or unpause one, or make
a backup from its template now (as `velero backup create --from-schedule`)."""

from __future__ import annotations

from typing import Any, ClassVar

from textual.binding import Binding, BindingType

from kbrowse.cluster.backup import backup_object
from kbrowse.cluster.commands import create_args
from kbrowse.cluster.printers import schedule_row
from kbrowse.tui.screens.cluster import ClusterListScreen, phase_style
from kbrowse.tui.widgets.virtual_table import Column
from mover.kube.resources import BACKUPS, SCHEDULES

Obj = dict[str, Any]


def _paused(s: Obj) -> bool:
    return bool((s.get("spec") or {}).get("paused"))


class SchedulesScreen(ClusterListScreen[Obj]):
    TAB = "schedules"
    KINDS = ("schedules",)
    NOUN = "schedule"
    LOADING = "watching schedules…"
    EMPTY = "no schedules (kbrowse schedule create makes one)"
    TABLE_TITLE = "Schedules"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("p", "pause", "Pause/unpause", tooltip="Pause the schedule, or unpause it"),
        Binding("b", "backup_now", "Backup now", tooltip="A backup from the schedule's template, now"),
    ]
    COLUMNS: ClassVar[list[Column[Obj]]] = [
        Column("name", "NAME"),
        Column("status", "STATUS", 16),
        Column("created", "CREATED", 29, sort_key=lambda s: s["metadata"].get("creationTimestamp") or ""),
        Column("schedule", "SCHEDULE", 14),
        Column("ttl", "BACKUP TTL", 10),
        Column("last", "LAST BACKUP", 11, sort_key=lambda s: (s.get("status") or {}).get("lastBackup") or ""),
        Column("selector", "SELECTOR", 12),
        Column("paused", "PAUSED", 6),
    ]

    def row(self, s: Obj) -> list[str]:
        return schedule_row(s, self.now)

    def style(self, s: Obj) -> str:
        return "dim" if _paused(s) else phase_style((s.get("status") or {}).get("phase") or "")

    def key(self, s: Obj) -> object:
        return s["metadata"]["name"]

    def action_pause(self) -> None:
        s = self.current
        if s is None:
            return
        name, paused = s["metadata"]["name"], not _paused(s)
        verb = "pause" if paused else "unpause"
        self.request(f"{verb} schedule {name}",
                     lambda: self.session.patch(SCHEDULES, name, {"spec": {"paused": paused}}),
                     lambda _obj: self.notify(f"schedule {name} {verb}d", timeout=4))

    def action_backup_now(self) -> None:
        s = self.current
        if s is None:
            return
        schedule = s["metadata"]["name"]
        session = self.session

        def create() -> str:
            args = create_args("backup", session.namespace, from_schedule=schedule)
            backup = session.call("get", SCHEDULES, lambda: backup_object(args, session.kube))
            session.create(BACKUPS, backup)
            return backup["metadata"]["name"]

        self.request(f"back up from schedule {schedule}", create,
                     lambda name: self.notify(f'Backup request "{name}" submitted: 1 shows backups.', timeout=6))
