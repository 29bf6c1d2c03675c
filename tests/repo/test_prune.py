"""`mover forget` and `mover prune` against restic 0.14 on the same repositories.

- forget: the same keep policy decisions, texts and JSON as restic, for a spread of snapshot
  times, hosts and tags; explicit ids (with misses) as restic reports them;
- prune after forget: the same plan text as restic's, the same snapshots left, a smaller
  repository that `restic check --read-data` accepts, every kept snapshot restorable, and
  restic's own prune afterwards finds nothing to repack; both directions (mover pruning
  restic's repository, restic pruning mover's);
- a lock restic holds makes mover refuse in one line, having changed nothing;
- SIGKILL at random moments of `mover prune` (more than 20 kills) never loses a kept snapshot,
  and Ctrl-C stops it cleanly;
- the engine's API (what the maintenance controllers call) on S3.
"""

from __future__ import annotations

import hashlib
import json
import os
import pty
import random
import re
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from mover.repo.backend.local import LocalBackend
from mover.repo.forget import forget_snapshots
from mover.repo.open import open_repository
from mover.repo.prune import prune
from mover.repo.repository import Repository
from mover.view.snapshot import Snapshot
from mover.progress import Counters
from tests.support.mover_cli import TEST_PASSWORD, Mover, listing
from tests.support.restic_cli import Restic
from tests.support.s3server import S3Server
from tests.support.treekit import assert_same_tree

KiB = 1024
MiB = 1024 * KiB
SEED = 20261203
GENERATIONS = 5
SMALL_FILES = 900


def _write_generation(src: Path, gen: int) -> None:
    """Generation 0: 900 files of 1-20 KiB and a 3 MiB file; every later one rewrites a
    third of the small files and the big one, so old packs end up partly used."""
    rng = random.Random(SEED + gen)
    (src / "small").mkdir(parents=True, exist_ok=True)
    for i in range(SMALL_FILES):
        if gen == 0 or i % 3 == gen % 3:
            (src / "small" / f"f{i:04d}").write_bytes(rng.randbytes(rng.randrange(KiB, 20 * KiB)))
    (src / "big.bin").write_bytes(rng.randbytes(3 * MiB))
    (src / "gen").write_text(f"{gen}\n")


def _data_size(repo: Path) -> int:
    return sum(size for name, size in listing(repo).items() if name.startswith("data/"))


def _normalized(text: str) -> str:
    """Output with the phases' elapsed times blanked (they differ between runs), without the
    warning restic adds because the tests run it with --no-cache (mover has no cache)."""
    text = text.replace("warning: running prune without a cache, this may be very slow!\n", "")
    return re.sub(r"^\[\d+:\d\d(:\d\d)?\]", "[t]", text, flags=re.M)


def _assert_restic_accepts(r: Restic, read_data: bool = True) -> None:
    proc = r.check(read_data=read_data)
    assert proc.returncode == 0 and "no errors were found" in proc.stdout, (
        f"restic check failed:\n{proc.stdout}\n{proc.stderr}")


def _assert_nothing_left_to_prune(r: Restic) -> None:
    out = r.run("prune", "--dry-run").stdout
    assert re.search(r"^to repack: +0 blobs / 0 B$", out, re.M), out
    assert re.search(r"^total prune: +0 blobs / 0 B$", out, re.M), out


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory, restic_bin: str) -> dict:
    """A mover repository with five generations of one source (~37 MiB of packs), the
    source as of the last one, and each kept snapshot's tree as restic restores it."""
    base = tmp_path_factory.mktemp("prune-history")
    src, repo = base / "src", base / "repo"
    m = Mover(repo)
    m.init()
    ids = []
    for gen in range(GENERATIONS):
        _write_generation(src, gen)
        ids.append(m.backup(["."], cwd=src, host="h")["snapshot_id"])
    r = Restic(str(repo), TEST_PASSWORD, binary=restic_bin)
    refs = {}
    for sid in ids[-2:]:
        refs[sid] = base / f"ref-{sid[:8]}"
        r.restore(sid, refs[sid])
    return {"repo": repo, "src": src, "ids": ids, "refs": refs}


def _copy(repo: Path, to: Path) -> Path:
    shutil.copytree(repo, to)
    return to


def _assert_kept_restorable(r: Restic, refs: dict[str, Path], scratch: Path) -> None:
    for sid, ref in refs.items():
        target = scratch / f"restore-{sid[:8]}"
        shutil.rmtree(target, ignore_errors=True)
        r.restore(sid, target)
        assert_same_tree(ref, target, check_owner=os.geteuid() == 0)
        shutil.rmtree(target)


def test_forget_prune_agrees_with_restic(history: dict, tmp_path: Path, restic_bin: str) -> None:
    ours = _copy(history["repo"], tmp_path / "ours")
    theirs = _copy(history["repo"], tmp_path / "theirs")
    m = Mover(ours)
    r_ours = Restic(str(ours), TEST_PASSWORD, binary=restic_bin)
    r_theirs = Restic(str(theirs), TEST_PASSWORD, binary=restic_bin)
    before = _data_size(ours)

    t0 = time.monotonic()
    mine = m.run("forget", "--keep-last", "2", "--prune")
    took = time.monotonic() - t0
    restics = r_theirs.run("forget", "--keep-last", "2", "--prune")
    assert _normalized(mine.stdout) == _normalized(restics.stdout)
    assert "repacking packs" in mine.stdout and "removing" in mine.stdout, mine.stdout
    assert mine.stderr == ""

    left = sorted(s["id"] for s in r_ours.snapshots())
    assert left == sorted(s["id"] for s in r_theirs.snapshots()) == sorted(history["ids"][-2:])
    _assert_restic_accepts(r_ours)
    after, restic_after = _data_size(ours), _data_size(theirs)
    assert after < 0.75 * before, (before, after)
    assert abs(after - restic_after) <= 0.01 * restic_after, (after, restic_after)
    _assert_kept_restorable(r_ours, history["refs"], tmp_path)
    _assert_nothing_left_to_prune(r_ours)
    again = m.run("prune")
    assert re.search(r"^total prune: +0 blobs / 0 B$", again.stdout, re.M), again.stdout
    assert "rebuilding index" not in again.stdout  # nothing to change, nothing written
    print(f"packs {before / MiB:.1f} MiB -> {after / MiB:.1f} MiB (restic: "
          f"{restic_after / MiB:.1f} MiB); mover forget --prune took {took:.2f}s")


def test_restic_prunes_what_mover_forgot(history: dict, tmp_path: Path, restic_bin: str) -> None:
    repo = _copy(history["repo"], tmp_path / "repo")
    m = Mover(repo)
    r = Restic(str(repo), TEST_PASSWORD, binary=restic_bin)
    m.run("forget", history["ids"][0], history["ids"][1], history["ids"][2])
    assert sorted(s["id"] for s in r.snapshots()) == sorted(history["ids"][-2:])
    r.run("prune")
    _assert_restic_accepts(r)
    proc = m.check(read_data=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    _assert_kept_restorable(r, history["refs"], tmp_path)
    again = m.run("prune", "--dry-run")
    assert re.search(r"^to repack: +0 blobs / 0 B$", again.stdout, re.M), again.stdout


@pytest.mark.parametrize("stop_at", ["index", "pack"])
def test_prune_after_an_interrupted_prune_plans_as_restic(
        history: dict, tmp_path: Path, restic_bin: str, monkeypatch: pytest.MonkeyPatch,
        stop_at: str) -> None:
    """A prune stopped once its new index is written (old index files, or the old packs,
    still there) leaves kept blobs stored twice. Which copy restic keeps depends on its index's
    order (it varies from run to run), so the plans may differ in what they repack, but not in
    what they free or keep; mover's frees the old packs whole, and restic finds nothing left
    to prune after it."""
    from mover.repo.backend import FileType

    repo = _copy(history["repo"], tmp_path / "repo")
    Mover(repo).run("forget", *history["ids"][:-2])
    real_remove = LocalBackend.remove
    victim = FileType.INDEX if stop_at == "index" else FileType.PACK

    old_index = set(os.listdir(repo / "index"))

    def remove_then_stop(self, h):  # type: ignore[no-untyped-def]
        if h.type is victim and set(os.listdir(repo / "index")) - old_index:
            raise KeyboardInterrupt  # the new index is there: stop as a kill would
        real_remove(self, h)

    monkeypatch.setattr(LocalBackend, "remove", remove_then_stop)
    opened = Repository.open(LocalBackend(str(repo)), TEST_PASSWORD)
    with pytest.raises(KeyboardInterrupt):
        prune(opened)
    opened.close()
    monkeypatch.setattr(LocalBackend, "remove", real_remove)
    twin = _copy(repo, tmp_path / "twin")
    r = Restic(str(repo), TEST_PASSWORD, binary=restic_bin)
    r.run("unlock")
    Restic(str(twin), TEST_PASSWORD, binary=restic_bin).run("unlock")
    _assert_restic_accepts(r, read_data=False)
    mine = Mover(repo).run("prune", "--dry-run")
    theirs = Restic(str(twin), TEST_PASSWORD, binary=restic_bin).run("prune", "--dry-run")
    totals = lambda out: re.findall(r"^(?:total prune|remaining|unused size after prune):.*$",  # noqa: E731
                                    out, re.M)
    assert totals(mine.stdout) == totals(theirs.stdout) and len(totals(mine.stdout)) == 3, (
        mine.stdout + "\n--- restic:\n" + theirs.stdout)
    assert re.search(r"^to repack: +0 blobs / 0 B$", mine.stdout, re.M), mine.stdout
    Mover(repo).run("prune")
    _assert_restic_accepts(r)
    _assert_nothing_left_to_prune(r)
    _assert_kept_restorable(r, history["refs"], tmp_path)


def test_mover_prunes_restic_repository(tmp_path: Path, restic_repo) -> None:
    r: Restic = restic_repo()
    src = tmp_path / "src"
    ids = []
    for gen in range(3):
        _write_generation(src, gen)
        ids.append(r.backup(["."], cwd=src))
    r.run("forget", "--keep-last", "1")
    reference = tmp_path / "ref"
    r.restore(ids[-1], reference)
    m = Mover(r.repo)
    twin = _copy(Path(r.repo), tmp_path / "twin")
    dry = m.run("prune", "--dry-run")
    assert _normalized(dry.stdout) == _normalized(
        Restic(str(twin), TEST_PASSWORD, binary=r.binary).run("prune", "--dry-run").stdout)
    before = _data_size(Path(r.repo))
    # stderr on a terminal: a bar runs during each phase, stdout keeps restic's lines
    master, slave = pty.openpty()
    proc = subprocess.run([sys.executable, "-m", "mover.cli", "-r", r.repo, "prune"], env=m.env,
                          stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=slave)
    os.close(slave)
    bar = b""
    while select.select([master], [], [], 0)[0]:
        try:
            bar += os.read(master, 65536)
        except OSError:
            break
    os.close(master)
    assert proc.returncode == 0 and b"Traceback" not in bar
    assert b"packs repacked" in bar and b"\x1b[" in bar, bar[-500:]
    assert re.search(rb"^\[\d+:\d\d\] 100\.00%  \d+ / \d+ packs repacked$", proc.stdout, re.M)
    assert _data_size(Path(r.repo)) < before
    _assert_restic_accepts(r)
    _assert_kept_restorable(r, {ids[-1]: reference}, tmp_path)
    assert_same_tree(src, reference, check_owner=os.geteuid() == 0)
    _assert_nothing_left_to_prune(r)


def _fake_history(repo: Repository, tree: bytes) -> list[Snapshot]:
    """Snapshots of one tree at times that exercise every bucket: hourly for two days, daily
    for a month, monthly for two years; two hosts, some tagged."""
    start = 1_600_000_000 * 10**9  # 2020-09-13
    hour = 3600 * 10**9
    times = ([start + i * 7 * hour // 3 for i in range(20)]
             + [start + 2 * 24 * hour + d * 24 * hour + d * hour for d in range(35)]
             + [start + 40 * 24 * hour + mo * 30 * 24 * hour for mo in range(26)])
    snaps = []
    for n, t in enumerate(times):
        snap = Snapshot(time=t, tree=tree, paths=["/data"], hostname="h1" if n % 5 else "h2",
                        username="root", tags=["daily"] if n % 4 == 0 else
                        (["weekly", "keep"] if n % 7 == 0 else []))
        repo.save_snapshot(snap)
        snaps.append(snap)
    return snaps


POLICIES = [
    ["--keep-last", "3"],
    ["--keep-hourly", "5", "--keep-daily", "7"],
    ["--keep-daily", "10", "--keep-weekly", "4", "--keep-monthly", "6", "--keep-yearly", "2"],
    ["--keep-last", "1", "--keep-tag", "daily", "--keep-tag", "weekly,keep"],
    ["--keep-weekly", "3", "--tag", "daily"],
]


def test_forget_policies_match_restic(tmp_path: Path, restic_repo) -> None:
    r: Restic = restic_repo()
    src = tmp_path / "src"
    src.mkdir()
    (src / "file").write_text("content\n")
    r.backup(["."], cwd=src)
    repo = Repository.open(LocalBackend(r.repo), TEST_PASSWORD)
    _fake_history(repo, repo.snapshots()[0].tree)
    m = Mover(r.repo)
    for policy in POLICIES:
        args = ["forget", "--dry-run", "--host", "h1", *policy]
        mine, theirs = m.run(*args), r.run(*args)
        assert mine.stdout == theirs.stdout, f"{policy}:\n{mine.stdout}\n---- restic:\n{theirs.stdout}"
        # several groups: restic prints them in a random order, so compare them sorted
        args = ["forget", "--dry-run", "--json", "--group-by", "host,tags", *policy]
        key = lambda g: (g["host"], g["tags"] or [])  # noqa: E731
        mine_j = sorted(json.loads(m.run(*args).stdout), key=key)
        theirs_j = sorted(json.loads(r.run(*args).stdout), key=key)
        assert mine_j == theirs_j, policy
    # explicit ids: a prefix, a miss, 'latest'; misses go to stderr and are not errors
    snaps = r.snapshots()
    args = ["forget", "--dry-run", snaps[3]["id"][:10], "deadbeef", "latest"]
    mine, theirs = m.run(*args), r.run(*args)
    assert (mine.stdout, mine.stderr, mine.returncode) == (theirs.stdout, theirs.stderr, 0)
    twin = Restic(str(_copy(Path(r.repo), tmp_path / "twin")), TEST_PASSWORD, binary=r.binary)
    policy = ["--keep-daily", "5", "--keep-monthly", "3", "--host", "h1"]  # one group: one order
    mine, theirs = m.run("forget", *policy), twin.run("forget", *policy)
    assert mine.stdout == theirs.stdout
    assert sorted(s["id"] for s in r.snapshots()) == sorted(s["id"] for s in twin.snapshots())
    _assert_restic_accepts(r, read_data=False)
    bad = m.run("forget", "--keep-last", "-1", check=False)
    assert bad.returncode == 2 and "a count must be 0 or more" in bad.stderr
    assert len(r.snapshots()) == len(twin.snapshots())


def test_restic_lock_makes_mover_refuse(tmp_path: Path, restic_repo) -> None:
    """restic holds a lock while its `backup --stdin` waits for data: mover's prune and forget
    (exclusive) refuse in one line and touch nothing."""
    r: Restic = restic_repo()
    src = tmp_path / "src"
    _write_generation(src, 0)
    r.backup(["."], cwd=src)
    r.backup(["."], cwd=src)
    files = listing(Path(r.repo))
    holder = subprocess.Popen([r.binary, "-r", r.repo, "--no-cache", "backup", "--stdin"],
                              env=r.env, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not os.listdir(Path(r.repo) / "locks"):
            assert time.monotonic() < deadline and holder.poll() is None, "restic took no lock"
            time.sleep(0.05)
        m = Mover(r.repo)
        for args in (["prune"], ["forget", "--keep-last", "1"]):
            proc = m.run(*args, check=False)
            assert proc.returncode == 1, proc.stdout + proc.stderr
            assert proc.stdout == ""
            assert re.fullmatch(rf"mover: error: repository {re.escape(r.repo)} is locked: shared "
                                rf"lock by PID {holder.pid} on \S+ \(\S+\) since .+\n", proc.stderr), proc.stderr
        assert {k: v for k, v in listing(Path(r.repo)).items() if not k.startswith("locks/")} == files
    finally:
        holder.communicate(b"some data\n", timeout=60)
    assert holder.returncode == 0
    assert len(r.snapshots()) == 3


FIRST_LINE = "loading indexes..."  # printed once prune holds the lock and starts its work
# (name, start line, fractions of the time from that line to the end of a run): kills during
# start-up and the lock, during each part of the prune's own work, and, since the last writes
# are over in a few ms where random moments seldom land, right after each of them starts
KILL_PLAN = [("start-up", None, (0.1, 0.95), 2),
             ("reading", FIRST_LINE, (0.0, 0.35), 5),
             ("repacking", FIRST_LINE, (0.35, 0.7), 5),
             ("writing", FIRST_LINE, (0.7, 1.0), 3),
             ("index", "rebuilding index", (0.0, 0.1), 2),
             ("old index", "deleting obsolete index files", (0.0, 0.1), 2),
             ("old packs", "removing ", (0.0, 0.1), 2)]
KILLS_PER_COPY = 6


def _run_and_kill(cmd: list[str], env: dict, line: str | None, delay: float,
                  errors: Path) -> tuple[int, list[str], float, float]:
    """Run ``cmd`` and SIGKILL it ``delay`` seconds after it prints a line starting with
    ``line`` (None: after it starts); returns (exit status, lines printed, seconds to the first
    line, seconds from the first line to the end)."""
    said: list[str] = []
    t0 = time.monotonic()
    first = end = 0.0
    with open(errors, "wb") as err:
        proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=err)
        assert proc.stdout is not None
        if line is None:
            timer = threading.Timer(delay, proc.send_signal, (signal.SIGKILL,))
            timer.start()
        for raw in proc.stdout:
            said.append(raw.decode().rstrip("\n"))
            if not first:
                first = time.monotonic() - t0
            if line is not None and said[-1].startswith(line):
                timer = threading.Timer(delay, proc.send_signal, (signal.SIGKILL,))
                timer.start()
                line = None
        proc.wait(timeout=120)
        end = time.monotonic() - t0
        if "timer" in locals():
            timer.cancel()
    assert b"Traceback" not in errors.read_bytes()
    return proc.returncode, [x for x in said if x], first, end - first


def _check_without_lock(r: Restic, read_data: bool = True) -> None:
    """`restic check` past the killed run's stale lock (left for mover's next run to clear: a
    lock of a dead process on this host)."""
    proc = r.run("--no-lock", "check", *(["--read-data"] if read_data else []), check=False)
    assert proc.returncode == 0 and "no errors were found" in proc.stdout, (
        f"restic check failed:\n{proc.stdout}\n{proc.stderr}")


def _assert_packs_intact(repo: Path) -> None:
    """Every pack file holds the bytes it was named after (a pack's id is the SHA-256 of the
    file). With restic's structural check (every blob of every kept snapshot indexed, every
    indexed pack present) this proves what `--read-data` would after a kill, at a fraction of
    its cost: a kill can only cut a pack short or lose one, it cannot change what was written
    whole. A kill during a save leaves a `<id>-tmp-<random>` file, which is no pack."""
    for path in (repo / "data").glob("*/*"):
        if "-tmp-" in path.name:
            continue
        assert hashlib.sha256(path.read_bytes()).hexdigest() == path.name, f"{path} is damaged"


@pytest.mark.slow
@pytest.mark.timeout(900)  # ~4 minutes on a quiet machine; this one is rarely quiet
def test_sigkill_at_random_moments_never_loses_a_kept_snapshot(
        history: dict, tmp_path: Path, restic_bin: str) -> None:
    """Copies of the forgotten history are pruned and killed at seeded moments (see
    KILL_PLAN), up to six kills into the same copy, each run starting from what the last
    left. After every kill `restic check` accepts the repository (every blob of every kept
    snapshot indexed and stored) and every pack hashes to its name (intact); after a copy's
    last kill the next prune completes, `restic check --read-data` accepts the result, the
    kept snapshots restore to their trees and restic finds nothing to prune."""
    started = time.monotonic()
    forgotten = _copy(history["repo"], tmp_path / "forgotten")
    Mover(forgotten).run("forget", *history["ids"][:-2])
    work = tmp_path / "work"
    cmd = [sys.executable, "-m", "mover.cli", "-r", str(work), "prune"]
    _copy(forgotten, work)
    code, _, startup, working = _run_and_kill(cmd, Mover(work).env, "never", 0, tmp_path / "err")
    assert code == 0

    rng = random.Random(SEED)
    moments = [(name, line, rng.uniform(lo, hi)) for name, line, (lo, hi), n in KILL_PLAN
               for _ in range(n)]
    rng.shuffle(moments)
    log: list[str] = []
    kills = copies = 0
    while moments:
        copies += 1
        assert copies <= 30, f"only {kills} runs were killed:\n" + "\n".join(log)
        shutil.rmtree(work)
        _copy(forgotten, work)
        m = Mover(work)
        r = Restic(str(work), TEST_PASSWORD, binary=restic_bin)
        kills_before = kills
        for attempt in range(KILLS_PER_COPY):
            if not moments:
                break
            name, line, fraction = moments[0]
            delay = fraction * (startup if line is None else working)
            code, said, first, rest = _run_and_kill(cmd, m.env, line, delay, tmp_path / "err")
            if code != -signal.SIGKILL:
                assert code == 0, (tmp_path / "err").read_text()
                if attempt == 0:  # a whole run was faster than measured: measure again
                    startup, working = first, rest
                log.append(f"copy {copies}: run {attempt + 1} finished first "
                           f"({first:.2f}s + {rest:.2f}s)")
                break
            kills += 1
            moments.pop(0)
            log.append(f"copy {copies}: killed in {name}, {delay:.3f}s after "
                       f"{line or 'the start'!r}; its last line {said[-1] if said else None!r}")
            print(log[-1], f"({time.monotonic() - started:.0f}s into the test)", flush=True)
            _check_without_lock(r, read_data=False)
            _assert_packs_intact(work)
        if kills == kills_before:  # its first run was not killed: an uninterrupted prune, as
            continue  # test_forget_prune_agrees_with_restic verifies it; no second proof
        done = m.run("prune")  # clears the dead run's lock and completes what it left
        # (a kill during a save can leave a `<id>-tmp-<random>` file: not a lock)
        assert done.stderr == "" and [n for n in os.listdir(work / "locks") if "-tmp-" not in n] == []
        _check_without_lock(r)
        _assert_kept_restorable(r, history["refs"], tmp_path)
        _assert_nothing_left_to_prune(r)
        assert sorted(n for n in os.listdir(work / "snapshots")) == sorted(history["ids"][-2:])
    print("\n".join(log))

    # Ctrl-C: one line, exit 130, no lock left, a valid repository
    for fraction in (0.3, 0.7):
        shutil.rmtree(work)
        _copy(forgotten, work)
        proc = subprocess.Popen(cmd, env=Mover(work).env, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert proc.stdout is not None
        first = proc.stdout.readline()  # in the prune itself, not in the interpreter's start-up
        time.sleep(fraction * working)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate()
        out = first + out
        assert proc.returncode in (0, 130), err.decode()
        if proc.returncode == 130:
            assert err.decode() == "mover: interrupted\n"
        assert os.listdir(work / "locks") == []
        _assert_restic_accepts(Restic(str(work), TEST_PASSWORD, binary=restic_bin))
        print(f"SIGINT {fraction * working:.2f}s after {first.decode().strip()!r}: exit "
              f"{proc.returncode}, its last line {out.decode().strip().splitlines()[-1]!r}")
    assert kills >= 20
    print(f"{kills} kills into {copies} copies; a run: {startup:.2f}s start-up, {working:.2f}s "
          f"pruning; whole test {time.monotonic() - started:.1f}s")


def test_engine_api_on_s3(tmp_path: Path, s3_server: S3Server, s3_bucket: str, restic_bin: str) -> None:
    """What the maintenance controllers call: forget_snapshots, then prune with counters, on
    the kind of repository Velero's bucket holds."""
    env = {**s3_server.env(), "AWS_CONFIG_FILE": str(tmp_path / "none"),
           "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"), "AWS_EC2_METADATA_DISABLED": "true"}
    url = f"s3:{s3_server.endpoint_url}/{s3_bucket}/velero/restic/ns1"
    m = Mover(url, env_extra=env)
    m.init()
    src = tmp_path / "src"
    ids = []
    for gen in range(3):
        _write_generation(src, gen)
        ids.append(m.backup(["."], cwd=src, host="velero")["snapshot_id"])
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        repo = open_repository(url, TEST_PASSWORD)
        try:
            forget_snapshots(repo, [bytes.fromhex(i) for i in ids[:2]])
            counters = Counters()
            dry = prune(repo, dry_run=True)
            stats = prune(repo, counters)
            assert (dry.packs_repack, dry.packs_remove) == (stats.packs_repack, stats.packs_remove)
            assert stats.packs_repack + stats.packs_remove > 0
            assert counters.files == counters.total_files > 0
            assert counters.bytes == counters.total_bytes
            assert [s.id.hex() for s in repo.snapshots()] == ids[2:]
        finally:
            repo.close()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    r = Restic(url, TEST_PASSWORD, env_extra=env, binary=restic_bin)
    _assert_restic_accepts(r)
    target = tmp_path / "restored"
    r.restore(ids[2], target)
    assert_same_tree(src, target, check_owner=os.geteuid() == 0)
    _assert_nothing_left_to_prune(r)
