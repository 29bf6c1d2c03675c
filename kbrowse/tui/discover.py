"""Repositories the source picker can offer without being told: the environment, the demo."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

DEMO_DIR = "kbrowse-demo"


@dataclass
class Source:
    label: str
    location: str
    password: str | None = None  # known without asking (a password file, $RESTIC_PASSWORD)


def _read_password(path: str | Path) -> str | None:
    try:
        pw = Path(path).read_text(encoding="utf-8").rstrip("\r\n")
    except OSError:
        return None
    return pw or None


def find_sources(env: Mapping[str, str] | None = None, cwd: str | Path = ".") -> list[Source]:
    env = os.environ if env is None else env
    found = []
    loc = env.get("RESTIC_REPOSITORY")
    if loc:
        pw = None
        if env.get("RESTIC_PASSWORD_FILE"):
            pw = _read_password(env["RESTIC_PASSWORD_FILE"])
        elif env.get("RESTIC_PASSWORD"):
            pw = env["RESTIC_PASSWORD"]
        found.append(Source(f"$RESTIC_REPOSITORY  {loc}", loc, pw))
    demo = Path(cwd) / DEMO_DIR
    if (demo / "repo" / "config").exists():
        found.append(Source(f"demo repository  {demo / 'repo'}", str(demo / "repo"),
                            _read_password(demo / "password")))
    return found
