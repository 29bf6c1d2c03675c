"""Every error an operator can meet gets one clear line naming what and where, a specific exit
code (1: the repository or the data; 2: usage, such as a missing password; 3: the backup
finished but some sources could not be read), never a traceback, and leaves nothing behind that
a later run or restic would trip on.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from mover.repo.backend.local import LocalBackend
from mover.repo.lock import Lock
from mover.repo.repository import Repository
from tests.support.mover_cli import TEST_PASSWORD, Mover, listing
from tests.support.restic_cli import Restic

MiB = 1024 * 1024


def error_line(proc: subprocess.CompletedProcess[str], code: int) -> str:
    """The single stderr line of a failed command, after checking the exit code."""
    assert proc.returncode == code, f"exit {proc.returncode}, want {code}\n{proc.stderr}"
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, f"want one error line, got:\n{proc.stderr}"
    assert lines[0].startswith("mover: error: "), lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A repository with two snapshots (so two index files) and the tree it holds."""
    base = tmp_path_factory.mktemp("errors")
    src = base / "src"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_text("alpha\n")
    (src / "sub" / "c.txt").write_text("gamma\n")
    (src / "big.bin").write_bytes(os.urandom(3 * MiB))
    repo = base / "repo"
    m = Mover(repo)
    m.init()
    m.backup([str(src)])
    (src / "a.txt").write_text("alpha, changed\n")
    m.backup([str(src)])
    return repo, src


@pytest.fixture
def repo_copy(template: tuple[Path, Path], tmp_path: Path) -> tuple[Path, Path]:
    repo, src = template
    copy = tmp_path / "repo"
    shutil.copytree(repo, copy)
    return copy, src


def _rewrite(path: Path, change: Callable[[bytes], bytes]) -> None:
    os.chmod(path, 0o600)
    path.write_bytes(change(path.read_bytes()))
    os.chmod(path, 0o400)


def flip_middle_byte(path: Path) -> None:
    def flip(b: bytes) -> bytes:
        mid = len(b) // 2
        return b[:mid] + bytes([b[mid] ^ 0x01]) + b[mid + 1:]

    _rewrite(path, flip)


def truncate_half(path: Path) -> None:
    _rewrite(path, lambda b: b[: len(b) // 2])


def files_of(repo: Path, kind: str) -> list[Path]:
    if kind == "pack":
        # the biggest data pack: its middle byte is inside a data blob
        return sorted(repo.glob("data/*/*"), key=lambda p: -p.stat().st_size)
    return sorted((repo / {"index": "index", "snapshot": "snapshots"}[kind]).iterdir())


# ---- the repository cannot be opened ----------------------------------------------------------


def test_wrong_password(repo_copy: tuple[Path, Path]) -> None:
    repo, src = repo_copy
    before = listing(repo)
    m = Mover(repo, password="not the password")
    for args in (["snapshots"], ["backup", str(src)], ["check"]):
        line = error_line(m.run(*args, check=False), 1)
        assert "wrong password" in line and str(repo) in line
    assert listing(repo) == before


def test_missing_repository(tmp_path: Path) -> None:
    where = tmp_path / "no" / "such" / "repo"
    m = Mover(where)
    for args in (["snapshots"], ["backup", str(tmp_path)], ["check", "--read-data"]):
        line = error_line(m.run(*args, check=False), 1)
        assert f"no repository at {where}" in line and "mover init" in line
    assert not (tmp_path / "no").exists()


@pytest.mark.parametrize("content", ["empty", "files"])
def test_directory_that_is_not_a_repository(tmp_path: Path, content: str) -> None:
    where = tmp_path / "dir"
    where.mkdir()
    if content == "files":
        (where / "notes.txt").write_text("not a repository\n")
        (where / "data").mkdir()  # even a folder with a repository's name
        (where / "data" / "x").write_bytes(os.urandom(100))
    before = listing(where)
    m = Mover(where)
    for args in (["snapshots"], ["backup", str(tmp_path)], ["check"]):
        line = error_line(m.run(*args, check=False), 1)
        assert f"no repository at {where}" in line
    assert listing(where) == before and sorted(os.listdir(where)) == sorted(
        [] if content == "empty" else ["notes.txt", "data"]
    )


def test_init_on_an_existing_repository(repo_copy: tuple[Path, Path], restic_bin: str) -> None:
    repo, _ = repo_copy
    before = listing(repo)
    for password in (TEST_PASSWORD, "another password"):
        line = error_line(Mover(repo, password=password).run("init", check=False), 1)
        assert str(repo) in line and "already exists" in line
    assert listing(repo) == before
    assert len(Mover(repo).snapshots()) == 2


def test_password_file_missing(repo_copy: tuple[Path, Path], tmp_path: Path) -> None:
    repo, _ = repo_copy
    m = Mover(repo, password=None)
    missing = tmp_path / "no-such-password-file"
    for where in ("before", "after"):
        args = ["--password-file", str(missing), "snapshots"]
        if where == "after":
            args = ["snapshots", "--password-file", str(missing)]
        line = error_line(m.run(*args, check=False), 2)
        assert f"cannot read password file {missing}" in line
    line = error_line(m.run("snapshots", check=False, env={"RESTIC_PASSWORD_FILE": str(missing)}), 2)
    assert str(missing) in line
    empty = tmp_path / "empty-password"
    empty.write_text("")
    line = error_line(m.run("--password-file", str(empty), "snapshots", check=False), 2)
    assert f"password file {empty} is empty" in line


def test_no_password_and_stdin_not_a_terminal(repo_copy: tuple[Path, Path]) -> None:
    repo, src = repo_copy
    before = listing(repo)
    m = Mover(repo, password=None)
    for args in (["snapshots"], ["backup", str(src)], ["init"]):
        line = error_line(m.run(*args, check=False), 2)
        assert "no password" in line and "RESTIC_PASSWORD" in line
    assert listing(repo) == before


def test_no_repository_given() -> None:
    line = error_line(Mover(None).run("snapshots", check=False), 2)
    assert "no repository given" in line and "RESTIC_REPOSITORY" in line


def test_repository_locked_by_a_live_process(repo_copy: tuple[Path, Path]) -> None:
    repo, src = repo_copy
    held = Lock(Repository.open(LocalBackend(str(repo)), TEST_PASSWORD), exclusive=True).acquire()
    try:
        before = listing(repo)
        line = error_line(Mover(repo).run("backup", str(src), check=False), 1)
        assert f"repository {repo} is locked" in line and f"PID {os.getpid()}" in line
        assert listing(repo) == before
    finally:
        held.release()
    assert Mover(repo).backup([str(src)])["_returncode"] == 0


def test_unknown_parent(repo_copy: tuple[Path, Path]) -> None:
    repo, src = repo_copy
    before = listing(repo)
    line = error_line(Mover(repo).run("backup", "--parent", "deadbeef", str(src), check=False), 1)
    assert "no snapshot deadbeef" in line and str(repo) in line
    assert listing(repo) == before


# ---- damaged repositories ---------------------------------------------------------------------

DAMAGES = [
    ("pack", flip_middle_byte),
    ("pack", truncate_half),
    ("index", flip_middle_byte),
    ("index", truncate_half),
    ("snapshot", flip_middle_byte),
    ("snapshot", truncate_half),
]


@pytest.mark.parametrize(("kind", "damage"), DAMAGES, ids=[f"{k}-{d.__name__}" for k, d in DAMAGES])
def test_check_reports_damaged_file(
    repo_copy: tuple[Path, Path], kind: str, damage: Callable[[Path], None]
) -> None:
    repo, _ = repo_copy
    m = Mover(repo)
    assert m.check(read_data=True).returncode == 0
    victim = files_of(repo, kind)[0]
    damage(victim)
    proc = m.check(read_data=True)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    errors = proc.stderr.splitlines()
    assert errors and all(line.startswith("error: ") for line in errors), proc.stderr
    assert victim.name in proc.stderr, f"{victim.name} not named:\n{proc.stderr}"
    assert f"{len(errors)} errors found" in proc.stdout.splitlines()[-1]
    if kind == "index":
        # the packs it listed are not called harmless leftovers
        assert "harmless" not in proc.stdout and "damaged index" in proc.stdout


def test_check_reports_missing_pack(repo_copy: tuple[Path, Path]) -> None:
    repo, _ = repo_copy
    victim = files_of(repo, "pack")[0]
    victim.unlink()
    for read_data in (False, True):
        proc = Mover(repo).check(read_data=read_data)
        assert proc.returncode == 1
        assert f"pack {victim.name}: listed in the index but missing" in proc.stderr


@pytest.mark.parametrize("damage", [flip_middle_byte, truncate_half], ids=lambda d: d.__name__)
@pytest.mark.parametrize("force", [False, True], ids=["with-parent", "force"])
def test_backup_refuses_a_damaged_index(
    repo_copy: tuple[Path, Path], damage: Callable[[Path], None], force: bool
) -> None:
    repo, src = repo_copy
    victim = files_of(repo, "index")[0]
    damage(victim)
    before = listing(repo)
    args = ["backup", str(src), *(["--force"] if force else [])]
    line = error_line(Mover(repo).run(*args, check=False), 1)
    assert f"index/{victim.name} in {repo}" in line and "damaged" in line
    assert listing(repo) == before, "a backup on a damaged index wrote something"


# ---- sources that cannot be read --------------------------------------------------------------


def test_source_path_does_not_exist(repo_copy: tuple[Path, Path], tmp_path: Path) -> None:
    repo, _ = repo_copy
    before = listing(repo)
    missing = tmp_path / "not-there"
    line = error_line(Mover(repo).run("backup", str(missing), check=False), 1)
    assert f"source path {missing} does not exist" in line
    assert listing(repo) == before


@pytest.mark.parametrize("json_mode", [False, True], ids=["text", "json"])
def test_one_source_path_missing_one_present(
    repo_copy: tuple[Path, Path], tmp_path: Path, restic_bin: str, json_mode: bool
) -> None:
    repo, src = repo_copy
    missing = tmp_path / "not-there"
    present = src / "sub"
    m = Mover(repo)
    args = ["backup", *(["--json"] if json_mode else []), str(missing), str(present)]
    proc = m.run(*args, check=False)
    assert proc.returncode == 3, proc.stderr
    if json_mode:
        summary = json.loads(proc.stdout.splitlines()[-1])
        assert summary["errors"] == 1
        (err,) = [json.loads(line) for line in proc.stderr.splitlines()]
        assert err["message_type"] == "error"
        assert f"source path {missing} does not exist" in err["error"]["message"]
    else:
        assert proc.stderr.splitlines() == [
            f"mover: warning: source path {missing} does not exist",
            "mover: warning: 1 source path could not be read; the snapshot is incomplete",
        ]
    latest = max(m.snapshots(), key=lambda s: s["time"])
    assert latest["paths"] == [str(present)]
    r = Restic(str(repo), TEST_PASSWORD, binary=restic_bin)
    proc = r.check(read_data=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    names = {n["path"] for n in r.ls(latest["id"])}
    assert str(present / "c.txt") in names


def test_unreadable_source_file(repo_copy: tuple[Path, Path], tmp_path: Path, restic_bin: str) -> None:
    """root reads everything, so mover runs as root without CAP_DAC_OVERRIDE/READ_SEARCH: then
    mode 000 stops it like any user."""
    setpriv = shutil.which("setpriv")
    if os.geteuid() != 0 or setpriv is None:
        pytest.skip("needs root and setpriv (util-linux) to drop the DAC capabilities")
    prefix = [setpriv, "--bounding-set=-dac_override,-dac_read_search"]
    repo, _ = repo_copy
    tree = tmp_path / "tree"
    (tree / "locked").mkdir(parents=True)
    (tree / "ok.txt").write_text("readable\n")
    (tree / "secret.txt").write_text("unreadable\n")
    (tree / "locked" / "inside.txt").write_text("in an unreadable directory\n")
    os.chmod(tree / "secret.txt", 0)
    os.chmod(tree / "locked", 0)
    try:
        proc = Mover(repo).run("backup", str(tree), check=False, prefix=prefix)
    finally:
        os.chmod(tree / "locked", 0o755)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    warnings = proc.stderr.splitlines()
    assert f"mover: warning: cannot read {tree / 'secret.txt'}: Permission denied; skipped" in warnings
    assert f"mover: warning: cannot read directory {tree / 'locked'}: Permission denied" in warnings
    assert warnings[-1] == "mover: warning: 2 source paths could not be read; the snapshot is incomplete"
    assert len(warnings) == 3
    assert "snapshot" in proc.stdout and "saved" in proc.stdout

    r = Restic(str(repo), TEST_PASSWORD, binary=restic_bin)
    check = r.check(read_data=True)
    assert check.returncode == 0, check.stdout + check.stderr
    latest = max(r.snapshots(), key=lambda s: s["time"])
    names = {n["path"] for n in r.ls(latest["id"])}
    assert str(tree / "ok.txt") in names
    assert str(tree / "locked") in names  # the directory itself is recorded, empty
    assert str(tree / "secret.txt") not in names
    assert str(tree / "locked" / "inside.txt") not in names


@pytest.mark.parametrize("span", [1, 5000, 1 << 30], ids=["blob-by-blob", "spans", "whole"])
def test_check_reads_a_pack_in_spans_and_names_the_damaged_blob(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, span: int) -> None:
    # check --read-data reads a pack in spans of whole blobs: every span size finds the one
    # damaged blob of a pack, names it, and hashes every byte (a damaged header, too)
    from mover.repo import check
    from mover.repo.blob import BlobType

    monkeypatch.setattr(check, "_SPAN", span)
    repo = Repository.init(LocalBackend(str(tmp_path / "r")), TEST_PASSWORD)
    ids = [repo.save_blob(BlobType.DATA, os.urandom(1500 + 700 * i))[0] for i in range(12)]
    repo.flush()
    assert check.check(repo, read_data=True).errors == []
    [pack] = files_of(tmp_path / "r", "pack")
    victim = repo.lookup(BlobType.DATA, ids[7])
    raw = bytearray(pack.read_bytes())
    raw[victim.offset + victim.length // 2] ^= 1
    pack.write_bytes(bytes(raw))
    errors = check.check(repo, read_data=True).errors
    assert len(errors) == 2 and "content does not match its name" in errors[0]
    assert f"blob {ids[7].hex()[:16]} " in errors[1], errors
    raw[victim.offset + victim.length // 2] ^= 1
    raw[-10] ^= 1  # in the sealed header: that is said, and the data is still hashed
    pack.write_bytes(bytes(raw))
    errors = check.check(repo, read_data=True).errors
    assert len(errors) == 2 and "content does not match its name" in errors[0], errors
    assert "header" in errors[1], errors
    repo.close()
