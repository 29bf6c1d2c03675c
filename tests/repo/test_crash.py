"""Crash safety: `mover backup` killed with SIGKILL at random moments never leaves a repository
that restic rejects, and the next backup completes.

One repository takes every kill in turn, so the garbage of earlier kills (unindexed packs,
half-written temp files, stale locks) is there for the later runs. The kill moments are seeded
fractions of a measured full run: early (start-up, lock, first packs), middle (packs in flight)
and late (last packs, index, snapshot).
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mover.repo.backend.local import LocalBackend
from mover.repo.repository import Repository
from tests.support.mover_cli import TEST_PASSWORD, Mover, listing
from tests.support.restic_cli import Restic
from tests.support.treekit import assert_same_tree

MiB = 1024 * 1024
SEED = 20240521
KILLS_PER_PHASE = {"early": (0.02, 0.3), "mid": (0.3, 0.7), "late": (0.7, 1.0)}
KILLS_EACH = 4  # 12 kills in all


@pytest.fixture(scope="module")
def big_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """~155 MiB: five large random files (several packs each) and 1,000 small files."""
    root = tmp_path_factory.mktemp("crash") / "src"
    rng = random.Random(SEED)
    (root / "big").mkdir(parents=True)
    for i in range(5):
        (root / "big" / f"file-{i}.bin").write_bytes(rng.randbytes(30 * MiB + i * 4099))
    for d in range(10):
        sub = root / "small" / f"d{d}"
        sub.mkdir(parents=True)
        for j in range(100):
            (sub / f"f{j:03d}").write_bytes(rng.randbytes(rng.randrange(0, 6000)))
    os.symlink("big/file-0.bin", root / "link")
    os.link(root / "small" / "d0" / "f000", root / "hardlink")
    (root / "empty").mkdir()
    return root


def _touch_every_chunk(root: Path, generation: int) -> None:
    """Overwrite 8 bytes every 256 KiB (chunks are at least 512 KiB) of the big files."""
    stamp = generation.to_bytes(8, "little")
    for f in sorted((root / "big").iterdir()):
        fd = os.open(f, os.O_WRONLY)
        try:
            for off in range(0, f.stat().st_size, 256 * 1024):
                os.pwrite(fd, stamp, off)
        finally:
            os.close(fd)


def _locks(repo: Path) -> list[str]:
    """Lock files (a kill during a save can leave a `<id>-tmp-<random>` file: not a lock)."""
    return sorted(k for k in listing(repo) if k.startswith("locks/") and "-tmp-" not in k)


def _restic_check(r: Restic, read_data: bool = False) -> None:
    proc = r.check(read_data=read_data)
    assert proc.returncode == 0 and "no errors were found" in proc.stdout, (
        f"restic check failed:\n{proc.stdout}\n{proc.stderr}"
    )


def test_sigkill_at_random_moments(big_tree: Path, tmp_path: Path, restic_bin: str) -> None:
    started = time.monotonic()
    repo = tmp_path / "repo"
    m = Mover(repo)
    m.init()
    r = Restic(str(repo), TEST_PASSWORD, binary=restic_bin)
    # how long an uninterrupted backup of this tree takes here (the kills use --force, and
    # every run gets new bytes in every chunk, so this snapshot saves them no work)
    t0 = time.monotonic()
    m.backup([str(big_tree)])
    full_run = time.monotonic() - t0

    rng = random.Random(SEED)
    fractions = [(phase, rng.uniform(lo, hi))
                 for phase, (lo, hi) in KILLS_PER_PHASE.items() for _ in range(KILLS_EACH)]
    rng.shuffle(fractions)

    log = []
    cmd = [sys.executable, "-m", "mover.cli", "-r", str(repo), "backup", "--json", "--force",
           str(big_tree)]
    kills = attempt = 0
    while fractions and attempt < 3 * len(KILLS_PER_PHASE) * KILLS_EACH:
        attempt += 1
        phase, fraction = fractions[0]
        delay = fraction * full_run
        # new bytes in every chunk of the big files: each run has ~150 MiB to store again, even
        # when an earlier run got as far as indexing its packs
        _touch_every_chunk(big_tree, attempt)
        t0 = time.monotonic()
        proc = subprocess.Popen(cmd, env=m.env, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            out, err = proc.communicate(timeout=delay)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)  # a no-op if it ended just as the moment came
            out, err = proc.communicate()
        if proc.returncode == -signal.SIGKILL:
            outcome = "killed"
            kills += 1
            fractions.pop(0)
        else:
            # it finished before its moment: runs are faster now than measured (a busy machine
            # got quieter); take this run as the new estimate and try the same moment again
            full_run = time.monotonic() - t0
            outcome = f"finished first ({proc.returncode}); full run now {full_run:.2f}s"
            assert proc.returncode == 0, err.decode()
        assert b"Traceback" not in out + err
        locks = _locks(repo)
        assert len(locks) <= 1, locks  # at most the dead run's own lock
        files = listing(repo)
        count = lambda prefix: sum(1 for k in files if k.startswith(prefix) and "-tmp-" not in k)  # noqa: E731
        log.append(f"run {attempt:2d} {phase:5s} at {delay:5.2f}s ({fraction:.2f} of a run): "
                   f"{outcome}; stale lock: {bool(locks)}, packs {count('data/')}, "
                   f"temp files {sum(1 for k in files if '-tmp-' in k)}, "
                   f"index files {count('index/')}, snapshots {count('snapshots/')}")

        if attempt % 2:
            # restic 0.14 lets a stale lock block it: remove it the restic way
            r.run("unlock")
        else:
            # mover removes a lock that a dead process of this host left, by itself: an
            # exclusive `mover check` would otherwise be refused
            proc_check = m.run("check", check=False)
            assert proc_check.returncode == 0, proc_check.stdout + proc_check.stderr
        assert _locks(repo) == []
        _restic_check(r)
    print("\n".join(log))
    assert kills >= 10 and not fractions, f"only {kills} runs were killed"

    # Ctrl-C (SIGINT) is the polite stop: mover says so in one line, releases its lock, and
    # indexes every pack it had stored, so nothing is left for restic to call unreferenced
    for fraction in (0.3, 0.55, 0.8):
        attempt += 1
        _touch_every_chunk(big_tree, attempt)
        packs_before = {k for k in listing(repo) if k.startswith("data/") and "-tmp-" not in k}
        proc = subprocess.Popen(cmd, env=m.env, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(fraction * full_run)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate()
        assert proc.returncode in (130, 0), err.decode()
        if proc.returncode == 130:
            assert err.decode() == "mover: interrupted\n"
        assert b"Traceback" not in out + err
        assert _locks(repo) == []
        new_packs = {k.rsplit("/", 1)[1] for k in listing(repo)
                     if k.startswith("data/") and "-tmp-" not in k} - {
                         k.rsplit("/", 1)[1] for k in packs_before}
        indexed = {p.hex() for p in Repository.open(LocalBackend(str(repo)), TEST_PASSWORD).index.packs()}
        assert new_packs <= indexed, f"unindexed packs after Ctrl-C: {sorted(new_packs - indexed)}"
        print(f"SIGINT at {fraction * full_run:.2f}s: exit {proc.returncode}, "
              f"{len(new_packs)} new packs, all indexed")
        _restic_check(r)

    # leave one stale lock behind on purpose: the next backup clears it and completes
    proc = subprocess.Popen(cmd, env=m.env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while not _locks(repo) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    stale = _locks(repo)
    assert len(stale) == 1, "the killed run should have left its lock"

    final = m.backup([str(big_tree)])
    assert final["_returncode"] == 0 and final["errors"] == 0
    assert _locks(repo) == [], "the stale lock (or our own) is still there"

    _restic_check(r, read_data=True)
    proc_check = m.run("check", check=False)
    assert proc_check.returncode == 0, proc_check.stdout + proc_check.stderr

    target = tmp_path / "restored"
    r.restore(final["snapshot_id"], target)
    assert_same_tree(big_tree, target / big_tree.relative_to("/"), check_owner=os.geteuid() == 0)

    # ~2 GB of packs by now: do not leave them to pytest's kept temp directories
    shutil.rmtree(repo)
    shutil.rmtree(target)
    print(f"kills {kills}; last full run {full_run:.2f}s; whole test {time.monotonic() - started:.1f}s")


@pytest.mark.parametrize("where", ["after the lock file is saved", "in the re-check wait"])
def test_ctrl_c_while_taking_the_lock_leaves_no_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    """Ctrl-C can land between the lock file appearing and acquire() returning; the lock must
    still be taken back, or restic 0.14 stays blocked until `restic unlock`."""
    from mover.repo import lock as lockmod
    from mover.repo.backend import FileType

    Repository.init(LocalBackend(str(tmp_path / "repo")), TEST_PASSWORD)
    repo = Repository.open(LocalBackend(str(tmp_path / "repo")), TEST_PASSWORD)
    if where == "in the re-check wait":
        def interrupted_sleep(_s: float) -> None:
            raise KeyboardInterrupt

        monkeypatch.setattr(lockmod.time, "sleep", interrupted_sleep)
    else:
        real_save = LocalBackend.save

        def save_then_interrupt(self, h, data):  # type: ignore[no-untyped-def]
            real_save(self, h, data)
            if h.type is FileType.LOCK:
                raise KeyboardInterrupt

        monkeypatch.setattr(LocalBackend, "save", save_then_interrupt)
    for exclusive in (False, True):
        with pytest.raises(KeyboardInterrupt):
            lockmod.Lock(repo, exclusive=exclusive).acquire()
        assert os.listdir(tmp_path / "repo" / "locks") == []


def test_deferred_lock_recheck_stops_the_first_write(tmp_path: Path) -> None:
    """`mover backup` and `check` take their lock with the 200 ms re-check on a thread (they read
    meanwhile): a conflicting lock that shows up in those 200 ms still stops the first write,
    and releasing, even before the re-check ran (Ctrl-C), leaves no lock behind."""
    from mover.repo import lock as lockmod
    from mover.repo.backend import FileType
    from mover.errors import LockedError

    Repository.init(LocalBackend(str(tmp_path / "repo")), TEST_PASSWORD)
    repo = Repository.open(LocalBackend(str(tmp_path / "repo")), TEST_PASSWORD)
    locks = tmp_path / "repo" / "locks"

    early = lockmod.Lock(repo, exclusive=False).acquire(confirm_before_write=True)
    early.release()  # before the re-check ran
    assert os.listdir(locks) == [] and repo.write_gate is None

    held = lockmod.Lock(repo, exclusive=False).acquire(confirm_before_write=True)
    other = lockmod.LockInfo(time.time_ns(), True, "elsewhere", "someone", 4242)
    other_name = repo.save_unpacked(FileType.LOCK, other.to_bytes())  # within the 200 ms
    with pytest.raises(LockedError, match="is locked: exclusive lock by PID 4242 on elsewhere"):
        repo.save_unpacked(FileType.SNAPSHOT, b"{}")
    assert os.listdir(tmp_path / "repo" / "snapshots") == []
    held.release()
    assert os.listdir(locks) == [other_name]


def test_deferred_lock_that_cannot_be_written_stops_the_first_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the re-check deferred the lock file itself is written on the thread too (the
    backup walks meanwhile): a lock that cannot be written stops the first write with that
    error, and nothing is written."""
    from mover.errors import BackendError
    from mover.repo import lock as lockmod
    from mover.repo.backend import FileType

    Repository.init(LocalBackend(str(tmp_path / "repo")), TEST_PASSWORD)
    repo = Repository.open(LocalBackend(str(tmp_path / "repo")), TEST_PASSWORD)

    def refused(_self: lockmod.Lock) -> str:
        raise BackendError("cannot write locks/x: Read-only file system")

    monkeypatch.setattr(lockmod.Lock, "_write", refused)
    with lockmod.Lock(repo, exclusive=False).acquire(confirm_before_write=True):
        with pytest.raises(BackendError, match="Read-only file system"):
            repo.save_unpacked(FileType.SNAPSHOT, b"{}")
    assert os.listdir(tmp_path / "repo" / "snapshots") == []
    assert os.listdir(tmp_path / "repo" / "locks") == [] and repo.write_gate is None
