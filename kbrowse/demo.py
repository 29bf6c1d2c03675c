"""The embedded default: sample data, a local repository, the mover in-process.

`kbrowse demo` builds a small sample tree that looks like a pod volume, backs it up twice into
a local repository (a change in between, so there are two snapshots and an incremental run),
and shows what is inside. No cluster and no network are needed.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from pathlib import Path

from mover.archiver.pipeline import Archiver, find_parent
from mover.errors import NotARepository
from mover.progress import Counters, ProgressBar
from mover.repo.backend.local import LocalBackend
from mover.repo.repository import Repository

DEMO_PASSWORD = "kbrowse-demo"


@dataclass
class Demo:
    root: Path

    @property
    def source(self) -> Path:
        return self.root / "volume"

    @property
    def repo_path(self) -> Path:
        return self.root / "repo"

    @property
    def password_file(self) -> Path:
        return self.root / "password"


def make_sample_volume(dest: Path, seed: int = 7) -> None:
    """A tree like an application's data volume: config, logs, a database file, a symlink."""
    rnd = random.Random(seed)
    (dest / "config").mkdir(parents=True, exist_ok=True)
    (dest / "logs").mkdir(exist_ok=True)
    (dest / "data" / "uploads").mkdir(parents=True, exist_ok=True)
    (dest / "config" / "app.yaml").write_text(
        "server:\n  port: 8080\n  workers: 4\ndatabase:\n  path: /data/app.db\n  pool: 10\n"
        "features:\n  uploads: true\n  audit_log: true\n")
    (dest / "config" / "nginx.conf").write_text(
        "server {\n    listen 80;\n    location / {\n        proxy_pass http://127.0.0.1:8080;\n"
        "    }\n}\n")
    (dest / "README.md").write_text("# demo volume\n\nBacked up by the kbrowse demo.\n")
    (dest / "app.py").write_text(
        "import http.server\n\n\ndef main() -> None:\n"
        "    http.server.test(port=8080)\n\n\nif __name__ == '__main__':\n    main()\n")
    words = ["GET", "POST", "/api/items", "/login", "200", "404", "500", "user=alice", "user=bob"]
    for day in range(1, 8):
        lines = [f"2026-11-{day:02d}T{h:02d}:{m:02d}:00Z {rnd.choice(words)} {rnd.choice(words)} "
                 f"{rnd.randint(1, 999)}ms" for h in range(24) for m in range(0, 60, 3)]
        (dest / "logs" / f"access-2026-11-{day:02d}.log").write_text("\n".join(lines) + "\n")
    (dest / "data" / "app.db").write_bytes(rnd.randbytes(3 * 1024 * 1024))
    for i in range(20):
        (dest / "data" / "uploads" / f"image-{i:03d}.bin").write_bytes(rnd.randbytes(rnd.randint(2_000, 60_000)))
    link = dest / "logs" / "current.log"
    if not link.is_symlink():
        link.symlink_to("access-2026-11-07.log")


def change_sample_volume(dest: Path) -> None:
    """What a day of work does: a new log, an edited config, a grown database."""
    (dest / "logs" / "access-2026-11-08.log").write_text("2026-11-08T00:00:00Z GET /api/items 200 3ms\n")
    cfg = dest / "config" / "app.yaml"
    cfg.write_text(cfg.read_text().replace("workers: 4", "workers: 8"))
    with open(dest / "data" / "app.db", "ab") as f:
        f.write(os.urandom(256 * 1024))


def open_or_init(demo: Demo) -> Repository:
    demo.root.mkdir(parents=True, exist_ok=True)
    if not demo.password_file.exists():
        demo.password_file.write_text(DEMO_PASSWORD + "\n")
    backend = LocalBackend(str(demo.repo_path))
    try:
        return Repository.open(backend, DEMO_PASSWORD)
    except NotARepository:
        return Repository.init(backend, DEMO_PASSWORD)


def backup(repo: Repository, source: Path, tags: list[str]) -> None:
    """Back up ``source`` as '.', the way Velero's file-system backup records a volume."""
    counters = Counters()
    cwd = os.getcwd()
    os.chdir(source)
    try:
        parent = find_parent(repo, ["."], "kbrowse-demo")
        with ProgressBar(counters, "backup"):
            res = Archiver(repo, counters).backup(["."], host="kbrowse-demo", tags=tags, parent=parent)
    finally:
        os.chdir(cwd)
    s = res.stats
    print(f"snapshot {res.snapshot.short_id}: {s.files_new} new, {s.files_changed} changed, "
          f"{s.files_unmodified} unmodified files; {s.data_added} bytes added")


def run_demo(root: Path) -> Demo:
    demo = Demo(root)
    fresh = not demo.source.exists()
    make_sample_volume(demo.source)
    repo = open_or_init(demo)
    if fresh or not repo.snapshots():
        backup(repo, demo.source, ["demo", "day=1"])
        change_sample_volume(demo.source)
        backup(repo, demo.source, ["demo", "day=2"])
    repo.close()
    return demo
