"""Repositories nobody here wrote: restic's and rustic's own test fixtures, side by side with
restic 0.14.

`../shared/fixtures/` (beside the clone; see its SOURCES.md) holds restic's v1 test
repositories, healthy and damaged, rustic's v2 ones, rustic_core's key files and two source
trees. Each repository is unpacked into a temporary directory once per module, then for every
one: the snapshot lists of `kbrowse` and `mover` are restic's, every snapshot `restic restore`
restores comes out of `kbrowse cp` the same (and where restic fails, kbrowse fails, naming why),
`kbrowse mount` shows what `restic mount` shows, and `mover check` gives restic's verdict with
restic's hints, with and without --read-data. What restic's and rustic's own tests expect of
each fixture (SOURCES.md) is asserted too, so those facts hold even where restic does not run.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tarfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from mover.errors import RepoError
from mover.opener import open_view
from mover.repo import keyfile
from mover.repo.backend import FileType, Handle
from mover.repo.backend.local import LocalBackend
from mover.repo.check import DUPLICATE_ADVICE
from mover.repo.open import open_repository
from mover.view import SnapshotView
from tests.fuse.test_mount import _MISSING as FUSE_MISSING
from tests.fuse.test_mount import KBROWSE, mounted
from tests.support.mover_cli import TEST_PASSWORD, Mover
from tests.support.restic_cli import Restic
from tests.support.s3server import S3Server
from tests.support.treekit import assert_same_tree

FIXTURES = Path(__file__).resolve().parents[2] / ".." / "shared" / "fixtures"
pytestmark = pytest.mark.skipif(not FIXTURES.is_dir(),
                                reason=f"no fixture folder at {FIXTURES} (shared/ beside the clone)")
IS_ROOT = os.geteuid() == 0


@dataclass(frozen=True)
class Fixture:
    """One repository tarball and what its upstream tests (SOURCES.md) say of it."""

    tarball: str
    password: str
    snapshots: int
    check_ok: bool
    mixed: frozenset[str] = frozenset()  # packs with trees and data (8 hex digits)
    duplicated: frozenset[str] = frozenset()  # packs several index files list (8 hex digits)
    named: frozenset[str] = frozenset()  # ids the check must name, as restic does
    # what restic 0.14 retries for minutes on a missing pack file (its backend's backoff):
    # there, the facts its tests recorded (SOURCES.md) stand in for running it
    restic_slow: frozenset[str] = frozenset()

    @property
    def name(self) -> str:
        return Path(self.tarball).name.removesuffix(".tar.gz")


def _ids(text: str) -> frozenset[str]:
    return frozenset(text.split())


REPOS = [
    Fixture("restic/small-repo.tar.gz", "geheim", 4, True, mixed=_ids("8a8b6fb6 735e9834 032468ee")),
    Fixture("restic/repo-restore-permissions-test.tar.gz", "geheim", 1, True,
            mixed=_ids("d4dedec2 4137f251")),
    Fixture("restic/repo-same-timestamps.tar.gz", "geheim", 3, True),
    Fixture("restic/copy-unstable-json.tar.gz", "geheim", 1, True),
    Fixture("restic/repo-layout-default.tar.gz", "geheim", 3, True,
            mixed=_ids("aa464e9f fc919a3b c089d627")),
    Fixture("restic/repo-layout-s3legacy.tar.gz", "geheim", 3, True,
            mixed=_ids("aa464e9f fc919a3b c089d627")),
    Fixture("restic/walktree-test-repo.tar.gz", "geheim", 1, True, mixed=_ids("e37559c8")),
    Fixture("restic/duplicate-packs-in-index-test-repo.tar.gz", "geheim", 0, True,
            duplicated=_ids("7a9e2014 a86ae6b0 cb99c728 4a9d97e1 91dfddb1")),
    Fixture("restic/repo-index-missing.tar.gz", "geheim", 2, False,
            named=_ids("c5897731 289ec472 d44cf31e")),
    Fixture("restic/repo-index-missing-blob.tar.gz", "geheim", 1, False,
            named=_ids("f2ca1bb6 8f120ae0 f885cf59")),
    Fixture("restic/repo-data-missing.tar.gz", "geheim", 1, False, named=_ids("1959b7f2"),
            restic_slow=_ids("read-data restore mount")),
    Fixture("restic/repo-unused-data-missing.tar.gz", "geheim", 1, False,
            named=_ids("b2a0e676 d05c8106 f6a0bdd2"), restic_slow=_ids("read-data")),
    Fixture("restic/repo-unreferenced-data.tar.gz", "geheim", 1, True, named=_ids("f885cf59")),
    Fixture("restic/repo-obsolete-index.tar.gz", "geheim", 1, True,
            duplicated=_ids("f5c03970 88128df7")),
    Fixture("restic/repo-mixed.tar.gz", "geheim", 1, True, mixed=_ids("d9de8b05")),
    Fixture("restic/repo-duplicates.tar.gz", "geheim", 1, True),
    Fixture("rustic/restic-repo.tar.gz", "restic", 2, True),
    Fixture("rustic/rustic-repo.tar.gz", "rustic", 2, True),
    Fixture("rustic/rustic-copy-repo.tar.gz", "rustic", 0, True),
]
SOURCE_TREES = ["restic/backup-data.tar.gz", "restic/test.hl.tar.gz"]
KEYS = {"key1": "test", "key2": "test2", "key-failing": None}  # rustic_core's; None: broken
CONFIG_ID = "7272fa991a4d1449369cd44645be9e7f4aa6572040a83b510cd455187bccc5a6"
OTHER = {"kopia/kopia-kat.json": "kopia's known-answer vectors: the kopia reader's, not restic's",
         "SOURCES.md": "where each fixture comes from"}

# restic 0.14's check output, the lines that are neither progress nor verdict
RESTIC_HINT = re.compile(r"^pack [0-9a-f]+ (contains a mix of tree and data blobs|contained in "
                         r"several indexes: \{[0-9a-f ]+\})$|^This is non-critical, you can run "
                         r"`restic rebuild-index' to correct this$|^Mixed packs .*$")
NAMED_ID = re.compile(r"(?:pack|blob|id) ([0-9a-f]{8})[0-9a-f]*")


def test_every_fixture_is_covered() -> None:
    """A fixture added to shared/ without a row here fails, instead of going untested."""
    files = {p.relative_to(FIXTURES).as_posix() for p in FIXTURES.rglob("*") if p.is_file()}
    covered = ({f.tarball for f in REPOS} | set(SOURCE_TREES) | set(OTHER)
               | {f"rustic_core/{k}" for k in [*KEYS, "config"]})
    assert files == covered


# ---- the repositories, unpacked once ------------------------------------------------------------

@dataclass
class Unpacked:
    fixture: Fixture
    path: Path  # the repository
    password_file: Path
    _restic: Restic | None = None
    _restic_bin: str | None = field(default=None, repr=False)

    def mover(self) -> Mover:
        return Mover(self.path, password=self.fixture.password)

    def restic(self) -> Restic:
        if self._restic_bin is None:
            pytest.skip("restic 0.14 is not installed")
        return Restic(os.fspath(self.path), self.fixture.password, binary=self._restic_bin)


def _unpack(tarball: Path, into: Path) -> None:
    with tarfile.open(tarball) as tar:
        tar.extractall(into, filter="tar")


@pytest.fixture(scope="module")
def unpacked(tmp_path_factory: pytest.TempPathFactory) -> Callable[[Fixture], Unpacked]:
    restic_bin = shutil.which("restic")
    done: dict[str, Unpacked] = {}

    def get(f: Fixture) -> Unpacked:
        if f.name not in done:
            base = tmp_path_factory.mktemp(f.name)
            _unpack(FIXTURES / f.tarball, base)
            pw = base / "password"
            pw.write_text(f.password + "\n")
            done[f.name] = Unpacked(f, base / "repo", pw, _restic_bin=restic_bin)
        return done[f.name]

    return get


def kbrowse(u: Unpacked, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([*KBROWSE, "-r", os.fspath(u.path), "--password-file",
                           os.fspath(u.password_file), *args], capture_output=True, text=True,
                          errors="surrogateescape", stdin=subprocess.DEVNULL, timeout=120,
                          env=_env(), cwd=cwd, check=False)
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr
    return proc


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("RESTIC_")}


REPO_IDS = [f.name for f in REPOS]


# ---- snapshot lists -------------------------------------------------------------------------------

SNAPSHOT_FIELDS = ("id", "time", "tree", "paths", "hostname", "username", "parent", "tags")


def _fields(snaps: list[dict]) -> list[tuple]:
    return sorted(tuple(json.dumps(s.get(k) or None) for k in SNAPSHOT_FIELDS) for s in snaps)


@pytest.mark.parametrize("fixture", REPOS, ids=REPO_IDS)
def test_snapshot_lists(fixture: Fixture, unpacked: Callable[[Fixture], Unpacked]) -> None:
    u = unpacked(fixture)
    proc = kbrowse(u, "snapshots", "--json")
    assert proc.returncode == 0, proc.stderr
    ours = json.loads(proc.stdout)
    assert len(ours) == fixture.snapshots
    assert _fields(json.loads(u.restic().run("snapshots", "--json", "--no-lock").stdout)) == \
        _fields(ours)


# ---- restores ------------------------------------------------------------------------------------

@pytest.mark.parametrize("fixture", REPOS, ids=REPO_IDS)
def test_restores(fixture: Fixture, unpacked: Callable[[Fixture], Unpacked],
                  tmp_path: Path) -> None:
    """Every snapshot: what restic restores, kbrowse restores the same; where restic fails (a
    pack or an index entry missing), kbrowse fails too, in one line, naming what is missing."""
    u = unpacked(fixture)
    if "restore" in fixture.restic_slow:  # the one file of its one snapshot is in the lost pack
        ours = kbrowse(u, "cp", "latest:/", os.fspath(tmp_path / "kbrowse"))
        assert ours.returncode == 1
        assert ours.stderr.startswith("kbrowse: error: ") and fixture.named <= _named(ours.stderr)
        return
    r = u.restic()
    snaps = r.snapshots()
    view = open_view(os.fspath(u.path), fixture.password)
    for i, snap in enumerate(snaps):
        short = snap["short_id"]
        theirs = r.run("restore", short, "--target", tmp_path / f"restic-{short}", check=False)
        dest = tmp_path / f"kbrowse-{short}"
        if i == len(snaps) - 1:  # the command line for one, its restorer in-process for the rest
            ours = kbrowse(u, "cp", f"{short}:/", os.fspath(dest))
            ok = ours.returncode == 0
            assert ok or all(line.startswith("kbrowse: error: ") for line in
                             ours.stderr.splitlines()), ours.stderr
        else:
            ok = _restores(view, short, dest)
        if theirs.returncode == 0:
            assert ok, short
            assert_same_tree(tmp_path / f"restic-{short}", dest, check_owner=IS_ROOT)
        else:  # a tree or a blob is not in the index: restic fails, and so does kbrowse
            assert not ok and not fixture.check_ok, theirs.stderr


def _restores(view: SnapshotView, ref: str, dest: Path) -> bool:
    try:
        return view.restore(view.root(view.find_snapshot(ref)), os.fspath(dest)).ok
    except RepoError:
        return False


# ---- check ---------------------------------------------------------------------------------------

def _named(text: str) -> set[str]:
    return set(NAMED_ID.findall(text))


@pytest.mark.parametrize("read_data", [False, True], ids=["plain", "read-data"])
@pytest.mark.parametrize("fixture", REPOS, ids=REPO_IDS)
def test_check(fixture: Fixture, read_data: bool, unpacked: Callable[[Fixture], Unpacked]) -> None:
    """restic's verdict and restic's hints, line for line; the packs and blobs restic names
    in its errors and warnings are named too."""
    u = unpacked(fixture)
    ours = u.mover().check(read_data=read_data)
    out = ours.stdout + ours.stderr
    assert (ours.returncode == 0) == fixture.check_ok, out
    hints = {line for line in ours.stdout.splitlines() if RESTIC_HINT.match(line)}
    assert {h.split()[1][:8] for h in hints if "mix of" in h} == fixture.mixed
    assert fixture.duplicated <= {h.split()[1][:8] for h in hints if "several" in h}
    assert fixture.named <= _named(out)

    if read_data and "read-data" in fixture.restic_slow:
        return
    theirs = u.restic().check(read_data=read_data)
    restic_out = theirs.stdout + theirs.stderr
    assert (theirs.returncode == 0) == fixture.check_ok, restic_out
    assert hints == {line for line in theirs.stdout.splitlines() if RESTIC_HINT.match(line)}
    assert _named(restic_out) <= _named(out)


def test_check_json_carries_the_hints(unpacked: Callable[[Fixture], Unpacked]) -> None:
    u = unpacked(next(f for f in REPOS if f.name == "duplicate-packs-in-index-test-repo"))
    report = json.loads(u.mover().run("check", "--json").stdout)
    assert report["ok"] and not report["errors"]
    hint = ("pack 7a9e2014189c20e06e4e9ee8c90b4f49cc9cace671856e2a5c441b65fd22631c contained in "
            "several indexes: {18fa4c0d 5124b665 553b0823 6b13aae6 6eb129fd d2380c3d}")
    assert hint in report["hints"]
    assert report["advice"] == [DUPLICATE_ADVICE]


# ---- mount ---------------------------------------------------------------------------------------

def _virtual(root: Path) -> dict[str, tuple]:
    """The directories restic makes up (snapshots/, ids/, hosts/*, tags/*) and the snapshot
    directories in them: type, permissions, and a link's target."""
    out: dict[str, tuple] = {}
    for top in ("snapshots", "ids", "hosts", "tags"):
        stack = [top]
        while stack:
            rel = stack.pop()
            st = os.lstat(root / rel)
            out[rel] = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode))
            for name in os.listdir(root / rel):
                p = f"{rel}/{name}"
                st = os.lstat(root / p)
                if stat.S_ISLNK(st.st_mode):
                    out[p] = ("link", os.readlink(root / p))
                elif top in ("hosts", "tags") and rel == top:
                    stack.append(p)
                else:  # a snapshot's directory: restic shows its time
                    out[p] = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_mtime_ns,
                              st.st_uid, st.st_gid)
    return out


def _content(root: Path) -> dict[str, tuple]:
    """Every entry under a snapshot's directory: type, mode, owner, size, mtime, link target,
    and the file's sha256 (or the errno reading it gives)."""
    out: dict[str, tuple] = {}
    for dirpath, dirs, files in os.walk(root):
        for name in sorted(dirs + files):
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            what: object = None
            if stat.S_ISREG(st.st_mode):
                try:
                    with open(p, "rb") as f:
                        what = hashlib.sha256(f.read()).hexdigest()
                except OSError as e:
                    what = e.errno
            elif stat.S_ISLNK(st.st_mode):
                what = os.readlink(p)
            size = st.st_size if stat.S_ISREG(st.st_mode) else None
            out[os.path.relpath(p, root)] = (st.st_mode, st.st_uid, st.st_gid, size,
                                              st.st_mtime_ns, what)
    return out


@pytest.mark.skipif(FUSE_MISSING is not None, reason=f"cannot mount: {FUSE_MISSING}")
@pytest.mark.parametrize("fixture", REPOS, ids=REPO_IDS)
def test_mount(fixture: Fixture, unpacked: Callable[[Fixture], Unpacked], tmp_path: Path) -> None:
    """`kbrowse mount` and `restic mount` of the same repository: the same names, modes
    (dr-xr-xr-x for snapshot directories) and times, and the same content in every snapshot
    both can read."""
    u = unpacked(fixture)
    auth = ["--password-file", os.fspath(u.password_file)]
    if "mount" in fixture.restic_slow:  # its one file is in the lost pack: reading it fails
        with mounted([*KBROWSE, "mount", "--foreground", "-r", os.fspath(u.path), *auth,
                      os.fspath(tmp_path / "k")], tmp_path / "k") as k:
            (content,) = (_content(k.path / "ids" / n) for n in os.listdir(k.path / "ids"))
        assert [v[-1] for v in content.values() if stat.S_ISREG(v[0])] == [errno.EIO]
        return
    restic_bin = u.restic().binary
    with mounted([restic_bin, "-r", os.fspath(u.path), "--no-cache", *auth, "mount", "--no-lock",
                  os.fspath(tmp_path / "r")], tmp_path / "r") as r:
        expected = _virtual(r.path)
        expected_content = {n: _content(r.path / "ids" / n) for n in os.listdir(r.path / "ids")}
    with mounted([*KBROWSE, "mount", "--foreground", "-r", os.fspath(u.path), *auth,
                  os.fspath(tmp_path / "k")], tmp_path / "k") as k:
        got = _virtual(k.path)
        got_content = {n: _content(k.path / "ids" / n) for n in os.listdir(k.path / "ids")}
    # restic dates its made-up directories with the time of the mount, kbrowse with the newest
    # snapshot's (stable across mounts): only the snapshots' own directories carry a time
    assert got == expected
    snapshot_dirs = [v for p, v in got.items() if p.startswith("ids/")]
    assert len(snapshot_dirs) == fixture.snapshots
    assert all(v[:2] == (stat.S_IFDIR, 0o555) for v in snapshot_dirs)
    assert _go_times(got_content, expected_content) == expected_content


def _go_times(got: dict[str, dict[str, tuple]], expected: dict[str, dict[str, tuple]]
              ) -> dict[str, dict[str, tuple]]:
    """`got`, with restic's time where ours is one Go cannot give in nanoseconds since 1970
    (rustic writes Go's zero time, year 1; restic's mount shows what UnixNano overflows to)."""
    out = {}
    for snap, entries in got.items():
        out[snap] = {}
        for path, e in entries.items():
            theirs = expected.get(snap, {}).get(path)
            if theirs is not None and not -(1 << 63) <= e[4] < 1 << 63:
                e = (*e[:4], theirs[4], *e[5:])
            out[snap][path] = e
    return out


# ---- the s3legacy layout -----------------------------------------------------------------------

S3LEGACY = next(f for f in REPOS if f.name == "repo-layout-s3legacy")


def test_s3legacy_locks_go_where_restic_looks(unpacked: Callable[[Fixture], Unpacked]) -> None:
    from mover.repo.lock import Lock

    u = unpacked(S3LEGACY)
    repo = open_repository(os.fspath(u.path), S3LEGACY.password)
    assert repo.backend.layout.value == "s3legacy"
    with Lock(repo, exclusive=False).acquire():
        held = os.listdir(u.path / "lock")
        assert len(held) == 1
        assert u.restic().run("list", "locks", "--no-lock").stdout.split() == held
    assert os.listdir(u.path / "lock") == []


def test_s3legacy_on_s3(unpacked: Callable[[Fixture], Unpacked], s3_server: S3Server,
                        s3_bucket: str, tmp_path: Path) -> None:
    """The layout as old restic wrote it to S3: restic 0.14 reads it there, and so do mover
    and kbrowse."""
    u = unpacked(S3LEGACY)
    client = s3_server.client()
    for p in u.path.rglob("*"):
        if p.is_file():
            client.put_object(Bucket=s3_bucket, Key=f"old/{p.relative_to(u.path).as_posix()}",
                              Body=p.read_bytes())
    url = f"s3:{s3_server.endpoint_url}/{s3_bucket}/old"
    env = {**s3_server.env(), "AWS_CONFIG_FILE": os.fspath(tmp_path / "none"),
           "AWS_SHARED_CREDENTIALS_FILE": os.fspath(tmp_path / "none"),
           "AWS_EC2_METADATA_DISABLED": "true"}
    m = Mover(url, password=S3LEGACY.password, env_extra=env)
    assert len(m.snapshots()) == S3LEGACY.snapshots
    check = m.check(read_data=True)
    assert check.returncode == 0 and "contains a mix of tree and data blobs" in check.stdout
    r = Restic(url, S3LEGACY.password, env_extra=env, binary=u.restic().binary)
    r.restore("latest", tmp_path / "restic")
    proc = subprocess.run([*KBROWSE, "-r", url, "cp", "latest:/", os.fspath(tmp_path / "ours")],
                          env={**_env(), **env, "RESTIC_PASSWORD": S3LEGACY.password},
                          capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120,
                          check=False)
    assert proc.returncode == 0, proc.stderr
    assert_same_tree(tmp_path / "restic", tmp_path / "ours", check_owner=IS_ROOT)


# ---- keys ----------------------------------------------------------------------------------------

def _key_repo(where: Path, keys: list[str]) -> Path:
    """rustic_core's config with some of its key files, each under keys/<sha256>."""
    for d in ("keys", "data", "index", "snapshots", "locks"):
        (where / d).mkdir(parents=True)
    (where / "config").write_bytes((FIXTURES / "rustic_core" / "config").read_bytes())
    for k in keys:
        raw = (FIXTURES / "rustic_core" / k).read_bytes()
        (where / "keys" / hashlib.sha256(raw).hexdigest()).write_bytes(raw)
    return where


def _key_name(key: str) -> str:
    return hashlib.sha256((FIXTURES / "rustic_core" / key).read_bytes()).hexdigest()[:8]


@pytest.mark.parametrize("key", ["key1", "key2"])
def test_rustic_core_keys_open(key: str, tmp_path: Path, restic_bin: str) -> None:
    repo = _key_repo(tmp_path / "repo", [key])
    assert open_repository(os.fspath(repo), KEYS[key]).id == CONFIG_ID
    config = Restic(os.fspath(repo), KEYS[key], binary=restic_bin).run("cat", "config", "--no-lock")
    assert json.loads(config.stdout)["id"] == CONFIG_ID
    wrong = Mover(repo, password="not it").run("snapshots", check=False)
    assert wrong.returncode == 1 and wrong.stderr.startswith("mover: error: wrong password")


def test_broken_key_is_one_line_naming_it(tmp_path: Path, restic_bin: str) -> None:
    """rustic_core's key-failing (N=2^18, r=1, damaged base64): not "wrong password", not a
    traceback, with restic's words for what is wrong."""
    repo = _key_repo(tmp_path / "repo", ["key-failing"])
    theirs = Restic(os.fspath(repo), "test", binary=restic_bin).run("snapshots", "--no-lock",
                                                                    check=False)
    assert "illegal base64 data at input byte 216" in theirs.stderr
    proc = Mover(repo, password="test").run("snapshots", check=False)
    assert proc.returncode == 1
    assert proc.stderr == (f"mover: error: key {_key_name('key-failing')} in {repo}: not a valid "
                           "key file (illegal base64 data at input byte 216)\n")


def test_broken_key_beside_good_ones(tmp_path: Path) -> None:
    """Whatever order the key files are listed in, a good key opens; a password no key takes is
    a wrong password, and the broken key is named."""
    repo = _key_repo(tmp_path / "repo", list(KEYS))
    for password in ("test", "test2"):
        assert open_repository(os.fspath(repo), password).id == CONFIG_ID
    proc = Mover(repo, password="neither").run("snapshots", check=False)
    assert proc.returncode == 1 and proc.stderr.startswith("mover: error: wrong password")
    assert f"key {_key_name('key-failing')} in {repo}: not a valid key file" in proc.stderr


def _add_key(repo: Path, old_password: str, new_password: str, n: int, r: int, p: int) -> str:
    backend = LocalBackend(os.fspath(repo))
    master = keyfile.find_master(backend, old_password)
    name, raw = keyfile.new_key_file(new_password.encode(), master, n=n, r=r, p=p)
    backend.save(Handle(FileType.KEY, name), raw)
    return name


def test_key_beyond_openssl_scrypt_limit_opens(unpacked: Callable[[Fixture], Unpacked],
                                               tmp_path: Path) -> None:
    """N=2^18 with r=1 is a valid key to Go (restic opens it) though OpenSSL refuses it: the
    mover derives it (through libsodium), restic opens the key so made, and both commands do."""
    with pytest.raises(ValueError):  # what made it a traceback: OpenSSL will not, whatever memory
        hashlib.scrypt(b"x", salt=bytes(64), n=1 << 18, r=1, p=1, dklen=64, maxmem=1 << 30)
    u = unpacked(REPOS[0])
    repo = tmp_path / "repo"
    shutil.copytree(u.path, repo)
    before = os.listdir(repo / "keys")
    _add_key(repo, REPOS[0].password, "wide", n=1 << 18, r=1, p=1)
    for name in before:  # only the new key is left to open the repository with
        (repo / "keys" / name).unlink()
    assert len(Restic(os.fspath(repo), "wide", binary=u.restic().binary).snapshots()) == 4
    assert len(Mover(repo, password="wide").snapshots()) == 4
    pw = tmp_path / "pw"
    pw.write_text("wide\n")
    proc = subprocess.run([*KBROWSE, "-r", os.fspath(repo), "--password-file", os.fspath(pw),
                           "snapshots"], capture_output=True, text=True, env=_env(), timeout=60,
                          stdin=subprocess.DEVNULL, check=False)
    assert proc.returncode == 0 and "4 snapshots" in proc.stdout, proc.stderr


def _mutated_key(repo: Path, **changes: int) -> str:
    """The repository's key with its scrypt parameters changed (its data then opens nothing)."""
    (name,) = os.listdir(repo / "keys")
    obj = json.loads((repo / "keys" / name).read_bytes())
    (repo / "keys" / name).unlink()
    raw = json.dumps({**obj, **changes}).encode()
    new = hashlib.sha256(raw).hexdigest()
    (repo / "keys" / new).write_bytes(raw)
    return new


COMMANDS = [
    ("mover", ["snapshots"]), ("mover", ["check"]), ("mover", ["backup", "."]),
    ("kbrowse", ["snapshots"]), ("kbrowse", ["ls", "latest:/"]), ("kbrowse", ["cat", "latest:/x"]),
    ("kbrowse", ["cp", "latest:/", "out"]), ("kbrowse", ["mount", "mnt"]),
]


def test_unusable_key_every_command(tmp_path: Path) -> None:
    """A key asking scrypt for 16 GiB: each command says so in one line naming the key file,
    and exits 1 without allocating it."""
    repo = tmp_path / "repo"
    m = Mover(repo)
    m.init()
    name = _mutated_key(repo, N=1 << 24, r=8)
    message = (f"key {name[:8]} in {repo}: scrypt with N=16777216 r=8 p=1 needs 16385 MiB, more "
               f"than the 1024 MiB allowed for deriving a key")
    (tmp_path / "mnt").mkdir()
    pw = tmp_path / "pw"
    pw.write_text(m.password + "\n")
    for prog, args in COMMANDS:
        cmd = [sys.executable, "-m", f"{prog}.cli", "-r", os.fspath(repo), "--password-file",
               os.fspath(pw), *args]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=_env(), cwd=tmp_path,
                              timeout=60, stdin=subprocess.DEVNULL, check=False)
        assert (proc.returncode, proc.stdout, proc.stderr) == (
            1, "", f"{prog}: error: {message}\n"), args
    assert not os.path.ismount(tmp_path / "mnt")
    assert os.listdir(repo / "snapshots") == []


def test_invalid_scrypt_parameters_are_named(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    Mover(repo).init()
    name = _mutated_key(repo, N=1000)
    with pytest.raises(RepoError) as info:
        open_repository(os.fspath(repo), TEST_PASSWORD)
    assert str(info.value) == (f"key {name[:8]} in {repo}: scrypt parameter N must be a power of "
                               f"2 above 1 (N=1000 r=8 p=1)")


# ---- source trees: what restic's backup tests back up --------------------------------------------

@pytest.mark.parametrize("tarball", SOURCE_TREES, ids=[Path(t).name for t in SOURCE_TREES])
def test_source_trees_round_trip(tarball: str, tmp_path: Path, restic_bin: str) -> None:
    """Backed up by mover, checked and restored by restic: the same tree, hard links included."""
    src = tmp_path / "src"
    _unpack(FIXTURES / tarball, src)
    m = Mover(tmp_path / "repo")
    m.init()
    summary = m.backup(["."], cwd=src)
    assert summary["_returncode"] == 0
    r = Restic(os.fspath(tmp_path / "repo"), m.password or "", binary=restic_bin)
    assert r.check().returncode == 0
    r.restore("latest", tmp_path / "restored")
    assert_same_tree(src, tmp_path / "restored", check_owner=IS_ROOT)
    if tarball.endswith("test.hl.tar.gz"):
        a, b = (os.stat(tmp_path / "restored" / n) for n in ("test-base", "test-hardlink"))
        assert a.st_ino == b.st_ino and a.st_nlink == 2
