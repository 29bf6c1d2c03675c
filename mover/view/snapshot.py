"""Snapshot files: the root of one backup."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from mover.errors import IntegrityError
from mover.golang import gojson, gotime


@dataclass
class Snapshot:
    time: int  # ns since epoch
    tree: bytes
    paths: list[str]
    hostname: str = ""
    username: str = ""
    uid: int = 0
    gid: int = 0
    excludes: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    parent: bytes | None = None
    original: bytes | None = None
    program_version: str = ""
    id: bytes = b""  # the file's id, set when loaded or saved; not part of the JSON
    # the zone offset `time` was written with (restic keeps it; its mount names snapshots in
    # it); None for a new snapshot, which is written in local time
    utc_offset: int | None = field(default=None, compare=False)
    # what was backed up, as the writing tool names it where that is one string (kopia's
    # user@host:path); empty for restic, whose table shows host and paths apart
    source: str = field(default="", compare=False)

    @property
    def short_id(self) -> str:
        return self.id.hex()[:8]

    def to_json(self) -> dict:
        off = gotime.local_offset(self.time) if self.utc_offset is None else self.utc_offset
        d: dict = {"time": gotime.format_ns(self.time, off)}
        if self.parent:
            d["parent"] = self.parent.hex()
        d["tree"] = self.tree.hex()
        d["paths"] = self.paths
        for key, val in (("hostname", self.hostname), ("username", self.username),
                         ("uid", self.uid), ("gid", self.gid), ("excludes", self.excludes),
                         ("tags", self.tags)):
            if val:
                d[key] = val
        if self.original:
            d["original"] = self.original.hex()
        if self.program_version:
            d["program_version"] = self.program_version
        return d

    def to_bytes(self) -> bytes:
        return gojson.dumps(self.to_json()).encode()

    @classmethod
    def from_bytes(cls, raw: bytes, snap_id: bytes, what: str) -> Snapshot:
        try:
            d = json.loads(raw)
            return cls(
                time=gotime.parse_ns(d["time"]), tree=bytes.fromhex(d["tree"]),
                paths=list(d.get("paths") or []), hostname=d.get("hostname") or "",
                username=d.get("username") or "", uid=int(d.get("uid") or 0),
                gid=int(d.get("gid") or 0), excludes=list(d.get("excludes") or []),
                tags=list(d.get("tags") or []),
                parent=bytes.fromhex(d["parent"]) if d.get("parent") else None,
                original=bytes.fromhex(d["original"]) if d.get("original") else None,
                program_version=d.get("program_version") or "", id=snap_id,
                utc_offset=gotime.parse_offset(d["time"]),
            )
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise IntegrityError(f"{what}: not a valid snapshot ({e})") from None
