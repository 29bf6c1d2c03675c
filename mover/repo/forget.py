"""Forgetting snapshots: restic 0.14's keep policy (``forget --keep-*``) and the removal itself.

The policy part is pure: snapshots in, (keep, remove, reasons) out, with restic's bucket rules,
so `mover forget` and the controllers that expire Velero backups decide exactly as restic
would. Removing snapshot files is the only write, taken under restic's exclusive lock; the data
they referenced stays until a prune.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from mover.errors import RepoError
from mover.repo.backend import FileType, Handle
from mover.repo.lock import Lock
from mover.view.snapshot import Snapshot

GROUP_FIELDS = ("host", "paths", "tags")
DEFAULT_GROUP_BY = ("host", "paths")


@dataclass
class KeepPolicy:
    """restic's ExpirePolicy without the ``--keep-within*`` durations. ``tags``: each entry is
    one ``--keep-tag`` list; a snapshot with every tag of one list is kept."""

    last: int = 0
    hourly: int = 0
    daily: int = 0
    weekly: int = 0
    monthly: int = 0
    yearly: int = 0
    tags: list[list[str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        for name in ("last", "hourly", "daily", "weekly", "monthly", "yearly"):
            if getattr(self, name) < 0:
                raise RepoError(f"--keep-{name} {getattr(self, name)}: a count must be 0 or more")

    def empty(self) -> bool:
        return not (self.tags or self.last or self.hourly or self.daily or self.weekly
                    or self.monthly or self.yearly)

    def describe(self) -> str:
        """restic's ``Applying Policy: ...`` text (ExpirePolicy.String)."""
        counts = [f"{n} {word}" for n, word in ((self.last, "latest"), (self.hourly, "hourly"),
                                                 (self.daily, "daily"), (self.weekly, "weekly"),
                                                 (self.monthly, "monthly"), (self.yearly, "yearly"))
                  if n > 0]
        text = f"{', '.join(counts)} snapshots" if counts else ""
        if self.tags:
            if text:
                text += " and "
            text += f"all snapshots with tags [{' '.join(_taglist(t) for t in self.tags)}]"
        return "keep " + text


def _taglist(tags: list[str]) -> str:
    return "[" + ", ".join(tags) + "]"


@dataclass
class KeepReason:
    snapshot: Snapshot
    matches: list[str]
    counters: dict[str, int]  # what is left of each count after this snapshot (restic's JSON)


def _wall_clock(snap: Snapshot) -> datetime.datetime:
    """The snapshot's time in the zone it was written with: Go keeps a parsed time's offset,
    and restic buckets by that (a new snapshot: local time)."""
    secs = snap.time // 10**9
    if snap.utc_offset is None:
        return datetime.datetime.fromtimestamp(secs)
    return datetime.datetime.fromtimestamp(secs, datetime.timezone(datetime.timedelta(seconds=snap.utc_offset)))


def _bucket_hour(t: datetime.datetime, _nr: int) -> int:
    return t.year * 1000000 + t.month * 10000 + t.day * 100 + t.hour


def _bucket_day(t: datetime.datetime, _nr: int) -> int:
    return t.year * 10000 + t.month * 100 + t.day


def _bucket_week(t: datetime.datetime, _nr: int) -> int:
    year, week, _ = t.isocalendar()
    return year * 100 + week


def _bucket_month(t: datetime.datetime, _nr: int) -> int:
    return t.year * 100 + t.month


def _bucket_year(t: datetime.datetime, _nr: int) -> int:
    return t.year


def _bucket_each(_t: datetime.datetime, nr: int) -> int:
    return nr


_BUCKETS: tuple[tuple[str, Callable[[datetime.datetime, int], int], str], ...] = (
    ("last", _bucket_each, "last snapshot"), ("hourly", _bucket_hour, "hourly snapshot"),
    ("daily", _bucket_day, "daily snapshot"), ("weekly", _bucket_week, "weekly snapshot"),
    ("monthly", _bucket_month, "monthly snapshot"), ("yearly", _bucket_year, "yearly snapshot"))


def has_tags(snap: Snapshot, tags: list[str]) -> bool:
    """restic's Snapshot.HasTags: every tag of the list (an empty tag: a snapshot without tags)."""
    for t in tags:
        if t == "" and not snap.tags:
            return True
        if t not in snap.tags:
            return False
    return True


def apply_policy(snaps: Iterable[Snapshot], policy: KeepPolicy
                 ) -> tuple[list[Snapshot], list[Snapshot], list[KeepReason]]:
    """(keep, remove, reasons) of one group, newest first, as restic 0.14's ApplyPolicy: every
    count keeps the newest snapshot of each of its last N buckets (hour, day, ...); reasons are
    in the order of ``keep``."""
    ordered = sorted(snaps, key=lambda s: s.time, reverse=True)  # stable: ties keep their order
    if policy.empty():
        return ordered, [], [KeepReason(s, ["policy is empty"], {}) for s in ordered]
    left = {name: getattr(policy, name) for name, _, _ in _BUCKETS}
    last_val: dict[str, int | None] = {name: None for name, _, _ in _BUCKETS}
    keep: list[Snapshot] = []
    remove: list[Snapshot] = []
    reasons: list[KeepReason] = []
    for nr, snap in enumerate(ordered):
        matches = [f"has tags {_taglist(t)}" for t in policy.tags if has_tags(snap, t)]
        when = _wall_clock(snap)
        for name, bucket, reason in _BUCKETS:
            if left[name] > 0:
                val = bucket(when, nr)
                if val != last_val[name]:
                    last_val[name] = val
                    left[name] -= 1
                    matches.append(reason)
        if matches:
            keep.append(snap)
            reasons.append(KeepReason(snap, matches, {k: v for k, v in left.items() if v}))
        else:
            remove.append(snap)
    return keep, remove, reasons


@dataclass(frozen=True)
class GroupKey:
    """What a group's snapshots share; a field not grouped by, or empty, is None (restic's
    JSON null)."""

    host: str | None
    paths: tuple[str, ...] | None
    tags: tuple[str, ...] | None

    def to_json(self) -> dict:
        return {"tags": None if self.tags is None else list(self.tags),
                "host": self.host or "",
                "paths": None if self.paths is None else list(self.paths)}


def parse_group_by(text: str) -> tuple[str, ...]:
    """``host,paths`` (restic's default), any of host/paths/tags, or '' for one group."""
    fields = tuple(f.strip() for f in text.split(",") if f.strip())
    for f in fields:
        if f not in GROUP_FIELDS:
            raise RepoError(f"--group-by: unknown field {f!r} (use host, paths and/or tags, "
                            f"separated by commas)")
    return fields


def group_snapshots(snaps: Iterable[Snapshot], group_by: Iterable[str] = DEFAULT_GROUP_BY
                    ) -> list[tuple[GroupKey, list[Snapshot]]]:
    """Snapshots by (host, sorted paths, sorted tags), restricted to ``group_by``; groups in a
    stable order (restic's is a map's, i.e. random). The snapshots come back as copies whose
    grouped lists are sorted: restic sorts them in place, so that is what it prints."""
    by = set(group_by)
    groups: dict[GroupKey, list[Snapshot]] = {}
    for s in snaps:
        s = dataclasses.replace(s, paths=sorted(s.paths) if "paths" in by else s.paths,
                                tags=sorted(s.tags) if "tags" in by else s.tags)
        key = GroupKey(s.hostname if "host" in by else None,
                       tuple(s.paths) if "paths" in by and s.paths else None,
                       tuple(s.tags) if "tags" in by and s.tags else None)
        groups.setdefault(key, []).append(s)
    return sorted(groups.items(), key=lambda kv: json.dumps(kv[0].to_json()))


def matches_filter(snap: Snapshot, hosts: list[str], tags: list[list[str]], paths: list[str]) -> bool:
    """restic's snapshot filter: one of the hosts, one of the tag lists, all of the paths."""
    if hosts and snap.hostname not in hosts:
        return False
    if tags and not any(has_tags(snap, t) for t in tags):
        return False
    return all(p in snap.paths for p in paths)


def forget_snapshots(repo, snapshot_ids: list[bytes], *, locked: bool = False) -> None:
    """Remove these snapshot files, under restic's exclusive lock (``locked``: the caller holds
    it already). The data they reference stays until :func:`mover.repo.prune.prune`."""
    if locked:
        _remove(repo, snapshot_ids)
        return
    with Lock(repo, exclusive=True).acquire():
        _remove(repo, snapshot_ids)


def _remove(repo, snapshot_ids: list[bytes]) -> None:
    handles = [Handle(FileType.SNAPSHOT, sid.hex()) for sid in snapshot_ids]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(repo.backend.remove, handles))
