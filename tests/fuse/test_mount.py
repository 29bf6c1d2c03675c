"""`kbrowse mount` / `kbrowse umount`: real FUSE mounts of repositories written by mover and restic.

Every mount runs as a subprocess (a crash cannot hang pytest), is waited for with a timeout and
is unmounted in teardown whatever happened. The layout is checked against `restic mount` of the
same repository, so "restic's naming" is restic's, not our reading of it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from mover.repo.blob import BlobType
from mover.repo.open import open_repository
from mover.repo.view import RepositoryView
from tests.support.mover_cli import TEST_PASSWORD, Mover
from tests.support.restic_cli import Restic
from tests.support.treekit import compare_trees, make_full_tree

KBROWSE = [sys.executable, "-m", "kbrowse.cli"]
MOUNT_TIMEOUT = 20.0


def _fuse_missing() -> str | None:
    if not os.path.exists("/dev/fuse"):
        return "/dev/fuse does not exist (no FUSE device in this machine or container)"
    if shutil.which("fusermount") is None:
        return "fusermount is not on PATH (Debian package fuse)"
    if not os.access("/dev/fuse", os.R_OK | os.W_OK):
        return "no read/write access to /dev/fuse for this user"
    return None


def _libfuse_missing() -> str | None:
    try:
        import fuse  # noqa: F401
    except ImportError:
        return "the Python package fusepy is not installed"
    except OSError as e:
        return f"fusepy cannot load libfuse2 ({e}; Debian package fuse/libfuse2)"
    return None


_MISSING = _fuse_missing()
pytestmark = pytest.mark.skipif(_MISSING is not None, reason=f"cannot mount: {_MISSING}")



def _zone(name: str) -> str:
    return name if os.path.exists(f"/usr/share/zoneinfo/{name}") else "UTC"


# Snapshot directories are named in the zone a snapshot was written in, whatever the zone of
# the mounting host: back up in one zone and mount in another.
BACKUP_TZ = _zone("Europe/Berlin")
MOUNT_TZ = _zone("America/New_York")


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RESTIC_")}
    env["TZ"] = MOUNT_TZ
    return env


def _is_mounted(mp: Path) -> bool:
    try:
        return os.path.ismount(mp)
    except OSError:
        return True


def _stale(mp: Path) -> bool:
    try:
        os.stat(mp)
    except OSError as e:
        return e.errno == errno.ENOTCONN
    return False


def _unmount(mp: Path) -> None:
    if os.path.ismount(mp) or _stale(mp):
        subprocess.run(["fusermount", "-u", "-z", os.fspath(mp)], capture_output=True, timeout=20,
                       check=False)


def _wait_mounted(mp: Path, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + MOUNT_TIMEOUT
    while not os.path.ismount(mp):
        if proc.poll() is not None:
            pytest.fail(f"mount of {mp} exited with {proc.returncode}:\n{log.read_text(errors='replace')}")
        if time.monotonic() > deadline:
            pytest.fail(f"{mp} not mounted after {MOUNT_TIMEOUT}s:\n{log.read_text(errors='replace')}")
        time.sleep(0.05)


def _stop(proc: subprocess.Popen) -> None:
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@dataclass
class Mount:
    path: Path
    proc: subprocess.Popen
    log: Path


@contextlib.contextmanager
def mounted(cmd: list[str], mp: Path) -> Iterator[Mount]:
    """Run a foreground mount command at `mp`; always unmount and reap it afterwards."""
    mp.mkdir(parents=True, exist_ok=True)
    log = mp.with_name(mp.name + ".log")
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=out, env=_env())
    try:
        _wait_mounted(mp, proc, log)
        yield Mount(mp, proc, log)
    finally:
        _unmount(mp)
        _stop(proc)


def kbrowse_mount(repo: Path, mp: Path, *extra: str) -> contextlib.AbstractContextManager[Mount]:
    return mounted([*KBROWSE, "mount", "--foreground", "-r", os.fspath(repo),
                    "--password-file", os.fspath(_password_file(repo)), os.fspath(mp), *extra], mp)


def kbrowse(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*KBROWSE, *args], capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, env=_env(), check=False)


def _password_file(repo: Path) -> Path:
    pw = repo.with_name(repo.name + ".password")
    if not pw.exists():
        pw.write_text(TEST_PASSWORD + "\n")
    return pw


def _short(snap_id: str) -> str:
    return snap_id[:8]


# ---- repositories (built once for the module) ------------------------------------------------

@dataclass
class Repo:
    path: Path
    full_src: Path  # backed up as "." from inside, so the snapshot root is this tree
    full_id: str
    extra_src: Path
    extra_id: str


def _extra_tree(root: Path) -> None:
    """What make_full_tree cannot hold: a non-UTF-8 symlink target (restic 0.14 mangles those,
    mover keeps them) and a directory big enough to be listed in many readdir pages."""
    many = root / "many"
    many.mkdir(parents=True)
    for i in range(2000):
        (many / f"file-{i:05d}.txt").write_bytes(b"%d\n" % i)
    os.symlink(b"caf\xe9-target", os.path.join(os.fsencode(root), b"latin1-link"))


@pytest.fixture(scope="module")
def mover_repo(tmp_path_factory: pytest.TempPathFactory) -> Repo:
    base = tmp_path_factory.mktemp("mover")
    full, extra = base / "full", base / "extra"
    make_full_tree(full)
    _extra_tree(extra)
    m = Mover(base / "repo", env_extra={"TZ": BACKUP_TZ})
    m.init()
    full_id = m.backup(["."], cwd=full, host="alpha", tags=["full"])["snapshot_id"]
    extra_id = m.backup(["."], cwd=extra, host="beta", tags=["small,extra"])["snapshot_id"]
    return Repo(base / "repo", full, full_id, extra, extra_id)


@pytest.fixture(scope="module")
def restic_repo_full(tmp_path_factory: pytest.TempPathFactory, restic_bin: str) -> Repo:
    base = tmp_path_factory.mktemp("restic")
    full, extra = base / "full", base / "extra"
    make_full_tree(full)
    (extra / "d").mkdir(parents=True)
    (extra / "d" / "f").write_text("f\n")
    r = Restic(os.fspath(base / "repo"), TEST_PASSWORD, binary=restic_bin,
               env_extra={"TZ": BACKUP_TZ})
    r.init()
    # two snapshots in the same second: restic names the second one <time>-1
    same = ["--time", "2021-05-06 07:08:09"]
    full_id = r.backup(["."], cwd=full, host="alpha", tags=["full"], extra=same)
    extra_id = r.backup(["."], cwd=extra, host="beta", tags=["small", "extra"], extra=same)
    r.env["TZ"] = "UTC"
    r.backup(["."], cwd=extra, host="beta", extra=["--time", "2022-01-02 03:04:05"])
    return Repo(base / "repo", full, full_id, extra, extra_id)


@pytest.fixture(scope="module")
def mover_mount(mover_repo: Repo, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mount]:
    with kbrowse_mount(mover_repo.path, tmp_path_factory.mktemp("mnt") / "m") as m:
        yield m


# ---- content -------------------------------------------------------------------------------------

def test_mover_snapshot_equals_source(mover_repo: Repo, mover_mount: Mount) -> None:
    full = mover_mount.path / "ids" / _short(mover_repo.full_id)
    assert compare_trees(mover_repo.full_src, full, check_atime=False) == []
    extra = mover_mount.path / "snapshots" / "latest"
    assert compare_trees(mover_repo.extra_src, extra, check_atime=False) == []
    assert os.readlink(os.path.join(os.fsencode(extra), b"latin1-link")) == b"caf\xe9-target"
    assert len(os.listdir(extra / "many")) == 2000


def test_restic_snapshot_equals_source(restic_repo_full: Repo, tmp_path: Path) -> None:
    with kbrowse_mount(restic_repo_full.path, tmp_path / "m") as m:
        full = m.path / "ids" / _short(restic_repo_full.full_id)
        assert compare_trees(restic_repo_full.full_src, full, check_atime=False) == []


@pytest.mark.skipif(_libfuse_missing() is not None, reason=f"{_libfuse_missing()}")
def test_libfuse_transport_equals_source(mover_repo: Repo, tmp_path: Path) -> None:
    """`--fuse libfuse` (fusepy, for systems without the kernel transport) shows the same."""
    with kbrowse_mount(mover_repo.path, tmp_path / "m", "--fuse", "libfuse") as m:
        full = m.path / "ids" / _short(mover_repo.full_id)
        assert compare_trees(mover_repo.full_src, full, check_atime=False) == []
        extra = m.path / "snapshots" / "latest"
        assert compare_trees(mover_repo.extra_src, extra, check_atime=False) == []
        a, c = os.stat(full / "hard" / "a"), os.stat(full / "dir" / "sub" / "hard-c")
        assert a.st_ino == c.st_ino and a.st_nlink == 3
        assert len(os.listdir(extra / "many")) == 2000


def test_new_snapshots_appear_without_a_remount(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_text("one\n")
    m = Mover(tmp_path / "repo")
    m.init()
    first = m.backup(["."], cwd=src)["snapshot_id"]
    with kbrowse_mount(tmp_path / "repo", tmp_path / "m") as mnt:
        assert os.listdir(mnt.path / "ids") == [_short(first)]
        assert (mnt.path / "snapshots" / "latest" / "a.txt").read_text() == "one\n"
        (src / "b.txt").write_text("two\n")
        second = m.backup(["."], cwd=src)["snapshot_id"]
        deadline = time.monotonic() + 20
        while len(os.listdir(mnt.path / "ids")) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert sorted(os.listdir(mnt.path / "ids")) == sorted([_short(first), _short(second)])
        # the kernel was told to keep virtual names only briefly: latest moves on
        latest = mnt.path / "snapshots" / "latest"
        assert sorted(os.listdir(mnt.path / "hosts" / os.uname().nodename)) == sorted(
            n for n in os.listdir(mnt.path / "snapshots"))
        deadline = time.monotonic() + 5
        while not (latest / "b.txt").exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert (latest / "b.txt").read_text() == "two\n"
        assert (mnt.path / "ids" / _short(second) / "a.txt").read_text() == "one\n"


def _as_nobody(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *cmd],
                          capture_output=True, text=True, timeout=30, check=False)


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None,
                    reason="needs root and setpriv (util-linux) to act as another user")
@pytest.mark.parametrize("transport", ["kernel", "libfuse"])
def test_other_users_only_with_allow_other(tmp_path: Path, transport: str) -> None:
    """Without --allow-other only the mounting user gets in (FUSE's rule); with it, other
    users do, and the snapshot's own permissions apply to them."""
    if transport == "libfuse" and _libfuse_missing():
        pytest.skip(_libfuse_missing())
    src = tmp_path / "src"
    src.mkdir()
    (src / "open.txt").write_text("for all\n")
    (src / "secret.txt").write_text("root only\n")
    os.chmod(src / "open.txt", 0o644)
    os.chmod(src / "secret.txt", 0o600)
    m = Mover(tmp_path / "repo")
    m.init()
    snap = m.backup(["."], cwd=src)["snapshot_id"]
    shared = Path(tempfile.mkdtemp(prefix="kbrowse-allow-other-"))  # a path others can reach
    try:
        os.chmod(shared, 0o755)
        with kbrowse_mount(tmp_path / "repo", shared / "a", _short(snap), "--fuse", transport) as a:
            assert (a.path / "open.txt").read_text() == "for all\n"  # the owner, as ever
            denied = _as_nobody("cat", os.fspath(a.path / "open.txt"))
            assert denied.returncode != 0 and "Permission denied" in denied.stderr
        with kbrowse_mount(tmp_path / "repo", shared / "b", _short(snap), "--fuse", transport,
                           "--allow-other") as b:
            ok = _as_nobody("cat", os.fspath(b.path / "open.txt"))
            assert ok.returncode == 0 and ok.stdout == "for all\n", ok.stderr
            secret = _as_nobody("cat", os.fspath(b.path / "secret.txt"))
            assert secret.returncode != 0 and "Permission denied" in secret.stderr
    finally:
        shutil.rmtree(shared, ignore_errors=True)


def test_single_snapshot_at_the_root(mover_repo: Repo, tmp_path: Path) -> None:
    with kbrowse_mount(mover_repo.path, tmp_path / "m", _short(mover_repo.full_id)) as m:
        assert compare_trees(mover_repo.full_src, m.path, check_atime=False) == []


def test_hard_links_share_an_inode_and_a_second_read_is_cached(mover_mount: Mount,
                                                                mover_repo: Repo) -> None:
    snap = mover_mount.path / "ids" / _short(mover_repo.full_id)
    a, b, c = (os.stat(snap / p) for p in ("hard/a", "hard/b", "dir/sub/hard-c"))
    assert a.st_ino == b.st_ino == c.st_ino and a.st_nlink == 3
    assert os.stat(snap / "tiny.txt").st_ino != a.st_ino
    # the same snapshot under another name is the same files
    assert os.stat(mover_mount.path / "hosts" / "alpha" / "latest" / "hard" / "a").st_ino == a.st_ino
    data = (snap / "random-12m.bin").read_bytes()
    assert data == (mover_repo.full_src / "random-12m.bin").read_bytes()
    # pages kept across opens: the second read is served by the kernel's page cache
    start = time.perf_counter()
    assert (snap / "random-12m.bin").read_bytes() == data
    assert time.perf_counter() - start < 0.5


# ---- layout --------------------------------------------------------------------------------------

def _layout(root: Path) -> dict[str, str]:
    """Every meta directory entry down to the snapshot directories: path -> 'dir' or '-> target'."""
    out: dict[str, str] = {}
    for top in ("snapshots", "ids", "hosts", "tags"):
        stack = [top]
        while stack:
            rel = stack.pop()
            for name in os.listdir(root / rel):
                p = f"{rel}/{name}"
                if os.path.islink(root / p):
                    out[p] = "-> " + os.readlink(root / p)
                else:
                    out[p] = "dir"
                    if top in ("hosts", "tags") and rel == top:
                        stack.append(p)
    return out


def test_layout_matches_restic_mount(restic_repo_full: Repo, restic_bin: str,
                                     tmp_path: Path) -> None:
    repo = os.fspath(restic_repo_full.path)
    restic_cmd = [restic_bin, "-r", repo, "--no-cache", "--password-file",
                  os.fspath(_password_file(restic_repo_full.path)), "mount", "--no-lock"]
    with mounted([*restic_cmd, os.fspath(tmp_path / "r")], tmp_path / "r") as r:
        expected = _layout(r.path)
    with kbrowse_mount(restic_repo_full.path, tmp_path / "k") as k:
        assert sorted(os.listdir(k.path)) == ["hosts", "ids", "snapshots", "tags"]
        got = _layout(k.path)
    assert got == expected
    names = [p for p in got if p.startswith("snapshots/") and got[p] == "dir"]
    assert any(n.endswith("-1") for n in names), names  # the same-second duplicate


def test_mover_layout(mover_repo: Repo, mover_mount: Mount) -> None:
    got = _layout(mover_mount.path)
    stamp = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(Z|[+-]\d\d:\d\d)(-\d+)?"
    times = [p for p in got if re.fullmatch(f"snapshots/{stamp}", p)]
    assert len(times) == 2 and got["snapshots/latest"] == "-> " + max(times).split("/")[1]
    assert {p for p in got if p.startswith("ids/")} == {
        f"ids/{_short(mover_repo.full_id)}", f"ids/{_short(mover_repo.extra_id)}"}
    assert sorted(os.listdir(mover_mount.path / "hosts")) == ["alpha", "beta"]
    assert sorted(os.listdir(mover_mount.path / "tags")) == ["extra", "full", "small"]
    assert {n for n in os.listdir(mover_mount.path / "tags" / "small") if n != "latest"} == {
        n for n in os.listdir(mover_mount.path / "hosts" / "beta") if n != "latest"}


# ---- read-only and errors --------------------------------------------------------------------

def test_every_write_is_erofs(mover_mount: Mount, mover_repo: Repo) -> None:
    snap = mover_mount.path / "ids" / _short(mover_repo.full_id)
    f, d = snap / "tiny.txt", snap / "dir"
    attempts = {
        "create": lambda: os.open(snap / "new.txt", os.O_CREAT | os.O_WRONLY),
        "open for writing": lambda: os.open(f, os.O_RDWR),
        "truncate": lambda: os.truncate(f, 0),
        "mkdir": lambda: os.mkdir(d / "new"),
        "mkdir in a meta directory": lambda: os.mkdir(mover_mount.path / "snapshots" / "new"),
        "rmdir": lambda: os.rmdir(snap / "empty-dir"),
        "unlink": lambda: os.unlink(f),
        "rename": lambda: os.rename(f, snap / "renamed"),
        "link": lambda: os.link(f, snap / "linked"),
        "symlink": lambda: os.symlink("tiny.txt", snap / "sym"),
        "mknod": lambda: os.mkfifo(snap / "fifo2"),
        "chmod": lambda: os.chmod(f, 0o777),
        "chown": lambda: os.chown(f, 1, 1),
        "utime": lambda: os.utime(f, (0, 0)),
        "setxattr": lambda: os.setxattr(f, "user.new", b"x"),
        "removexattr": lambda: os.removexattr(snap / "xattr-file.txt", "user.comment"),
    }
    for what, attempt in attempts.items():
        with pytest.raises(OSError) as e:
            attempt()
        assert e.value.errno == errno.EROFS, f"{what}: {e.value}"
    assert f.read_bytes() == b"hello\n"


def _damage(repo: Path, snap_id: str, victim: str, kind: str) -> None:
    """Flip a byte in the first blob of file `victim`, or delete the pack holding that blob."""
    r = open_repository(os.fspath(repo), TEST_PASSWORD)
    node = RepositoryView(r).lookup(r.find_snapshot(snap_id), victim)
    hit = r.lookup(BlobType.DATA, node.content[0])
    pack = repo / "data" / hit.pack.hex()[:2] / hit.pack.hex()
    if kind == "missing":
        pack.unlink()
        return
    pack.chmod(0o600)
    with open(pack, "r+b") as f:
        f.seek(hit.offset + hit.length // 2)
        byte = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([byte[0] ^ 0xFF]))


@pytest.mark.parametrize("kind", ["damaged", "missing"])
def test_bad_pack_gives_eio_and_the_mount_stays_up(mover_repo: Repo, tmp_path: Path,
                                                    kind: str) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(mover_repo.path, repo)
    _damage(repo, mover_repo.full_id, "random-12m.bin", kind)
    full = Path("ids") / _short(mover_repo.full_id)
    # a damaged blob spoils only itself; a missing pack everything in it, and the other
    # snapshot's data went into a pack of its own
    ok = full / "tiny.txt" if kind == "damaged" else Path("snapshots/latest/many/file-00007.txt")
    with kbrowse_mount(repo, tmp_path / "m") as m:
        with pytest.raises(OSError) as e:
            (m.path / full / "random-12m.bin").read_bytes()
        assert e.value.errno == errno.EIO
        assert (m.path / ok).read_bytes() in (b"hello\n", b"7\n")
        assert os.path.ismount(m.path) and m.proc.poll() is None
        log = m.log.read_text(errors="replace")
        assert f"kbrowse mount: error: /{full}/random-12m.bin: read of" in log, log


@pytest.mark.parametrize("problem", ["does not exist", "is not empty", "is already mounted"])
def test_bad_mountpoint_is_a_one_line_error(mover_repo: Repo, mover_mount: Mount,
                                            tmp_path: Path, problem: str) -> None:
    mp = {"does not exist": tmp_path / "nowhere", "is not empty": tmp_path,
          "is already mounted": mover_mount.path}[problem]
    (tmp_path / "something").write_text("x")
    # no --foreground: the error must come before the command goes to the background
    proc = kbrowse("mount", os.fspath(mp), "-r", os.fspath(mover_repo.path),
                   "--password-file", os.fspath(_password_file(mover_repo.path)))
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1 and problem in proc.stderr, proc.stderr
    assert proc.stdout == ""


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_unmounts_cleanly(mover_repo: Repo, tmp_path: Path, sig: signal.Signals) -> None:
    locks = lambda: set(mover_repo.path.joinpath("locks").iterdir())
    before = locks()
    with kbrowse_mount(mover_repo.path, tmp_path / "m") as m:
        assert os.listdir(m.path / "snapshots")
        assert len(locks() - before) == 1  # a shared lock, as restic mount holds
        m.proc.send_signal(sig)
        assert m.proc.wait(timeout=15) == 0, m.log.read_text(errors="replace")
        assert not _is_mounted(m.path)
        assert locks() == before


def test_signal_ends_a_busy_mount(mover_repo: Repo, tmp_path: Path) -> None:
    """A shell still inside the mount does not keep `kbrowse mount` alive after Ctrl-C: the
    mount is detached at once, and the process ends shortly after (as libfuse's do)."""
    with kbrowse_mount(mover_repo.path, tmp_path / "m") as m:
        inside = m.path / "snapshots" / "latest"
        squatter = subprocess.Popen(["sleep", "60"], cwd=inside)
        try:
            m.proc.send_signal(signal.SIGINT)
            assert m.proc.wait(timeout=15) == 0, m.log.read_text(errors="replace")
            assert not _is_mounted(m.path)
        finally:
            squatter.kill()
            squatter.wait()


def _server_pids(mp: Path) -> list[int]:
    pids = []
    for d in Path("/proc").iterdir():
        try:
            cmd = (d / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if d.name.isdigit() and os.fsencode(mp) in cmd and b"mount" in cmd:
            pids.append(int(d.name))
    return pids


def test_background_mount_and_kbrowse_umount(mover_repo: Repo, tmp_path: Path) -> None:
    mp = tmp_path / "m"
    mp.mkdir()
    try:
        proc = kbrowse("mount", os.fspath(mp), "-r", os.fspath(mover_repo.path),
                       "--password-file", os.fspath(_password_file(mover_repo.path)))
        assert proc.returncode == 0, proc.stderr
        assert os.path.ismount(mp)
        assert (mp / "snapshots" / "latest" / "many" / "file-00007.txt").read_text() == "7\n"
        assert _server_pids(mp)
        proc = kbrowse("umount", os.fspath(mp))
        assert proc.returncode == 0, proc.stderr
        assert not _is_mounted(mp)
        deadline = time.monotonic() + 15
        while _server_pids(mp) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _server_pids(mp), "the serving process did not exit after umount"
        proc = kbrowse("umount", os.fspath(mp))
        assert proc.returncode == 1 and "is not mounted" in proc.stderr
    finally:
        _unmount(mp)


def test_wrong_password_fails_before_backgrounding(mover_repo: Repo, tmp_path: Path) -> None:
    (tmp_path / "m").mkdir()
    (tmp_path / "pw").write_text("wrong\n")
    proc = kbrowse("mount", os.fspath(tmp_path / "m"), "-r", os.fspath(mover_repo.path),
                   "--password-file", os.fspath(tmp_path / "pw"))
    assert proc.returncode != 0 and "wrong password" in proc.stderr, proc.stderr
    assert not _is_mounted(tmp_path / "m")
