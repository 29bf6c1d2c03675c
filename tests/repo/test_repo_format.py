"""Unit tests of mover.repo's byte formats (restic-format.md §2–§9), plus files restic itself
wrote going through our decoders and encoders unchanged, byte for byte."""

from __future__ import annotations

import base64
import gc
import hashlib
import json
import os
import random
import stat
import struct
from pathlib import Path

import pytest
import zstandard

from mover.repo import compression, keyfile, polynomial

from mover.golang import gojson

from mover.golang import gotime
from mover.repo.backend import FileType
from mover.repo.backend.local import LocalBackend
from mover.repo.blob import BlobType, PackedBlob
from mover.repo.crypto import OVERHEAD, Key
from mover.errors import IntegrityError
from mover.repo.index import Index, decode_index_file, encode_index_file
from mover.repo.pack import (
    ENTRY_COMPRESSED,
    ENTRY_PLAIN,
    PackBuilder,
    expected_size,
    header_length,
    parse_header,
)
from mover.repo.repository import Repository
from mover.view.snapshot import Snapshot
from mover.repo.tree import decode_tree, encode_tree
from mover.view.node import Node, go_mode_from_posix, posix_perm_from_go
from tests.support.mover_cli import TEST_PASSWORD, Mover
from tests.support.restic_cli import Restic

# ---- crypto (§3) ------------------------------------------------------------------------------

VECTOR_KEY = Key(
    encrypt=bytes.fromhex("303e8687b1d7db18421bdc6bb8588ccadac4d59ee87b8ff70c44e635790cafef"),
    mac_k=bytes.fromhex("ef4d8824cb80b2bcc5fbff8a9b12a42c"),
    mac_r=bytes.fromhex("cc8d4b948ee0ebfe1d415de921d10353"),
)
VECTOR_BLOB = bytes.fromhex(
    "69fb41c62d12def4593bd71757138606338f621aeaeb39da0fe4f99233f8037a54ea63338a813bcf3f75d8c3cc75dddf8750"
)


def test_restic_crypto_vector_decrypts() -> None:
    assert VECTOR_KEY.mac_ok(VECTOR_BLOB)
    assert VECTOR_KEY.open(VECTOR_BLOB) == b"Dies ist ein Test!"


@pytest.mark.parametrize("pos", [0, 15, 16, 20, -17, -16, -1])
def test_any_flipped_bit_fails_the_mac(pos: int) -> None:
    bad = bytearray(VECTOR_BLOB)
    bad[pos] ^= 0x80
    assert not VECTOR_KEY.mac_ok(bytes(bad))
    with pytest.raises(IntegrityError, match="the thing: MAC check failed"):
        VECTOR_KEY.open(bytes(bad), "the thing")


def test_short_and_zero_iv_ciphertexts_are_rejected() -> None:
    with pytest.raises(IntegrityError, match="too short"):
        VECTOR_KEY.open(VECTOR_BLOB[:31])
    sealed = VECTOR_KEY.seal(b"x")
    with pytest.raises(IntegrityError, match="all-zero IV"):
        VECTOR_KEY.open(bytes(16) + sealed[16:])


def test_seal_open_round_trip() -> None:
    key = Key.random()
    for plain in (b"", b"a", os.urandom(1000), os.urandom(70_001)):
        sealed = key.seal(plain)
        assert len(sealed) == len(plain) + OVERHEAD
        assert key.open(sealed) == plain
    a, b = key.seal(b"same"), key.seal(b"same")
    assert a[:16] != b[:16] and a != b  # a fresh IV each time
    with pytest.raises(IntegrityError):
        Key.random().open(a)  # another key


def test_key_split_and_json() -> None:
    raw = bytes(range(64))
    k = Key.from_kdf_output(raw)
    assert k.encrypt == raw[:32] and k.mac_k == raw[32:48]
    mask = bytes.fromhex("ffffff0ffcffff0ffcffff0ffcffff0f")
    assert k.mac_r == bytes(a & b for a, b in zip(raw[48:], mask))
    j = k.to_json()
    assert list(j) == ["mac", "encrypt"] and list(j["mac"]) == ["k", "r"]
    assert Key.from_json(j) == k
    with pytest.raises(IntegrityError):
        Key.from_json({"mac": {"k": "AA==", "r": "AA=="}, "encrypt": "AA=="})


def test_key_file_round_trip() -> None:
    master = Key.random()
    file_id, raw = keyfile.new_key_file(b"secret", master)
    assert file_id == hashlib.sha256(raw).hexdigest()
    obj = json.loads(raw)
    assert list(obj) == ["created", "username", "hostname", "kdf", "N", "r", "p", "salt", "data"]
    assert obj["kdf"] == "scrypt" and len(base64.b64decode(obj["salt"])) == 64
    kf = keyfile.KeyFile.from_bytes(raw, "key")
    assert keyfile.open_master(b"secret", kf, "key") == master
    assert keyfile.open_master(b"wrong", kf, "key") is None
    kf.salt = kf.salt[:32]
    with pytest.raises(IntegrityError, match="salt is 32 bytes"):
        keyfile.open_master(b"secret", kf, "key")


# ---- Go JSON and strconv.Quote (§8) -----------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "go"),
    [
        ({"a": "<b>&"}, '{"a":"\\u003cb\\u003e\\u0026"}'),
        ("line\u2028para\u2029", '"line\\u2028para\\u2029"'),
        ("bell\b feed\f", '"bell\\u0008 feed\\u000c"'),
        ("\\b is not \\f", '"\\\\b is not \\\\f"'),  # literal backslashes stay
        ("\\\b", '"\\\\\\u0008"'),
        ("tab\tnl\ncr\r", '"tab\\tnl\\ncr\\r"'),
        ("\x01\x1f\x7f", '"\\u0001\\u001f\x7f"'),  # Go leaves DEL raw
        ("ünïcödé ☃ 😀", '"ünïcödé ☃ 😀"'),  # non-ASCII is written raw
        ({"b": 1, "a": [True, None, 2.5]}, '{"b":1,"a":[true,null,2.5]}'),  # order kept, compact
    ],
)
def test_go_json_encoding(value: object, go: str) -> None:
    assert gojson.dumps(value) == go
    assert gojson.dumps_bytes(value) == go.encode()  # the trees' encoder (msgspec's)
    assert json.loads(go) == value


def test_go_json_bytes_encoder_writes_what_the_json_one_does_for_random_strings() -> None:
    rng = random.Random(16)
    alphabet = ["\\", '"', "\b", "\f", "\n", "<", ">", "&", "\u2028", "\u2029", "b", "f", "u", "0",
                "\x00", "\x1f", "\x7f", "\u00a0", "é", "😀"]
    for _ in range(20_000):
        s = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 10)))
        value = {"name": s, "xs": [s, None, rng.randrange(2**63)]}
        assert gojson.dumps_bytes(value) == gojson.dumps(value).encode(), repr(s)


@pytest.mark.parametrize(
    ("name", "quoted"),
    [
        ("plain name.txt", "plain name.txt"),
        ("new\nline", "new\\nline"),
        ('quote"and\\back', 'quote\\"and\\\\back'),
        ("\x00\x07\x08\x09\x0b\x0c\x0d\x1b\x7f", "\\x00\\a\\b\\t\\v\\f\\r\\x1b\\x7f"),
        (b"latin1-\xe9.txt".decode("utf-8", "surrogateescape"), "latin1-\\xe9.txt"),
        (b"dir-\xff\xfe".decode("utf-8", "surrogateescape"), "dir-\\xff\\xfe"),
        ("ünïcödé ☃.txt", "ünïcödé ☃.txt"),
        ("nbsp\u00a0zwsp\u200bbom\ufeff", "nbsp\\u00a0zwsp\\u200bbom\\ufeff"),
        ("tag\U000e0001", "tag\\U000e0001"),
        ("emoji 😀 and \ufffd", "emoji 😀 and \ufffd"),
    ],
)
def test_go_quote_matches_strconv(name: str, quoted: str) -> None:
    assert gojson.go_quote(name) == quoted
    assert gojson.go_unquote(quoted) == name


def test_go_quote_round_trips_random_byte_names() -> None:
    rng = random.Random(5)
    alphabet = [bytes([b]) for b in range(1, 256)] + ["é☃😀\u2028".encode()]
    for _ in range(2000):
        raw = b"".join(rng.choice(alphabet) for _ in range(rng.randrange(1, 16)))
        name = raw.decode("utf-8", "surrogateescape")
        quoted = gojson.go_quote(name)
        quoted.encode("utf-8")  # always valid text, so it fits in JSON
        assert gojson.go_unquote(quoted) == name, raw
        # and through a whole node's JSON
        node = node_via_tree(Node(name=name, type="fifo").to_json())
        assert node.name_bytes == raw


def test_go_unquote_other_escapes_and_garbage() -> None:
    assert gojson.go_unquote("\\101\\x42\\u0043\\U00000044\\'") == "ABCD'"
    assert gojson.go_unquote("bad \\q escape") == "bad \\q escape"  # shown as is, not dropped
    assert gojson.go_unquote("trailing \\") == "trailing \\"


# ---- times (§8) -------------------------------------------------------------------------------

BASE = 1_600_000_000 * 10**9  # 2020-09-13T12:26:40Z


@pytest.mark.parametrize(
    ("ns", "offset", "text"),
    [
        (0, 0, "1970-01-01T00:00:00Z"),
        (BASE + 123_456_789, 0, "2020-09-13T12:26:40.123456789Z"),
        (BASE + 120_000_000, 0, "2020-09-13T12:26:40.12Z"),  # trailing zeros dropped
        (BASE + 1, 0, "2020-09-13T12:26:40.000000001Z"),
        (BASE + 500_000_000, 7200, "2020-09-13T14:26:40.5+02:00"),
        (BASE, -(5 * 3600 + 30 * 60), "2020-09-13T06:56:40-05:30"),
        (-1, 0, "1969-12-31T23:59:59.999999999Z"),
        (gotime.ZERO, 0, "0001-01-01T00:00:00Z"),
        (253402300799 * 10**9 + 999_999_999, 0, "9999-12-31T23:59:59.999999999Z"),
    ],
)
def test_go_time_format_and_parse(ns: int, offset: int, text: str) -> None:
    assert gotime.format_ns(ns, offset) == text
    assert gotime.parse_ns(text) == ns


def test_go_time_clamps_and_parses_variants() -> None:
    assert gotime.format_ns(10**30) == "9999-12-31T23:59:59.999999999Z"
    assert gotime.format_ns(-(10**30)) == "0001-01-01T00:00:00Z"
    assert gotime.parse_ns("2020-09-13T12:26:40.1234567Z") == BASE + 123_456_700
    assert gotime.parse_ns("2020-09-13T14:26:40+02:00") == BASE
    with pytest.raises(ValueError):
        gotime.parse_ns("2020-09-13 noon")



def test_go_time_equals_compares_without_parsing_as_parse_does() -> None:
    texts = ["1970-01-01T00:00:00Z", "2020-09-13T12:26:40.123456789Z", "2020-09-13T12:26:40.12Z",
             "2020-09-13T12:26:40.120Z", "2020-09-13T12:26:40.000000001Z", "1969-12-31T23:59:59.999999999Z",
             "0001-01-01T00:00:00Z", "9999-12-31T23:59:59.999999999Z", "2020-09-13T14:26:40.5+02:00",
             "2020-09-13t12:26:40z", "2020-09-13T12:26:40.1234567891Z", "2020-09-13T12:26:40+0000"]
    for text in texts:
        ns = gotime.parse_ns(text)
        assert gotime.equals_ns(text, ns), text
        for other in (ns + 1, ns - 1, ns + 10**9, ns - 10**9, ns + 3600 * 10**9):
            assert not gotime.equals_ns(text, other), (text, other)
    with pytest.raises(ValueError):
        gotime.equals_ns("2020-09-13 noon", BASE)


def test_node_times_compared_as_text_stay_text() -> None:
    text, ctext = "2026-01-02T03:04:05.5Z", "2026-01-02T03:04:06Z"
    entry = {"name": "f", "type": "file", "mtime": text, "atime": text, "ctime": ctext, "content": []}
    [node] = decode_tree(json.dumps({"nodes": [entry]}).encode(), "t")
    m, c = gotime.parse_ns(text), gotime.parse_ns(ctext)
    assert node.times_equal(m, c) and node.times_equal(m, c, m)
    assert not node.times_equal(m + 1, c) and not node.times_equal(m, c - 1)
    assert not node.times_equal(m, c, c)  # an atime that is not the mtime is compared too
    assert node._mtime == text and node._ctime == ctext  # compared, not parsed
    assert node.mtime == m and node.times_equal(m, c, m)  # parsed: compared as numbers
    [untimed] = decode_tree(b'{"nodes":[{"name":"e","type":"file","content":[]}]}', "t")  # Go's zero time
    for zero in (untimed, Node(name="z", type="file")):
        assert zero.times_equal(gotime.ZERO, gotime.ZERO, gotime.ZERO) and not zero.times_equal(0, 0)

# ---- chunker polynomial (§4) ------------------------------------------------------------------


def _divides(d: int, f: int) -> bool:
    while f.bit_length() >= d.bit_length():
        f ^= d << (f.bit_length() - d.bit_length())
    return f == 0


def _irreducible_by_trial_division(f: int) -> bool:
    deg = f.bit_length() - 1
    return deg >= 1 and not any(
        _divides(d, f) for d in range(2, 1 << (deg // 2 + 1)) if 1 <= d.bit_length() - 1 <= deg // 2
    )


def _mulmod(a: int, b: int, m: int) -> int:
    r = 0
    while b:
        if b & 1:
            r ^= a
        b >>= 1
        a <<= 1
        if a.bit_length() == m.bit_length():
            a ^= m
    return r


def _rabin_degree_53(f: int) -> bool:
    """Rabin's test for a prime degree n: x^(2^n) = x (mod f) and gcd(x^2 - x, f) = 1."""
    assert f.bit_length() - 1 == 53
    h = 2
    for _ in range(53):
        h = _mulmod(h, h, f)
    gcd_ok = not _divides(2, f) and not _divides(3, f)  # factors of x^2 + x are x and x + 1
    return h == 2 and gcd_ok


def test_polynomial_irreducibility() -> None:
    assert polynomial.is_irreducible(0x25B468838DCB75)  # restic's design doc
    assert polynomial.is_irreducible(0x3DA3358B4DC173)  # restic/chunker's test polynomial
    for f in range(2, 1 << 11):  # every polynomial up to degree 10
        assert polynomial.is_irreducible(f) == _irreducible_by_trial_division(f), bin(f)
    a, b = 0b10000000000000000000000000011, 0b1000000000000000000000000101011
    product = 0
    for i in range(b.bit_length()):
        if b >> i & 1:
            product ^= a << i
    assert not polynomial.is_irreducible(product)
    rng = random.Random(53)
    for _ in range(150):
        f = (rng.getrandbits(64) & ((1 << 54) - 1)) | (1 << 53) | 1
        assert polynomial.is_irreducible(f) == _rabin_degree_53(f), hex(f)


def test_random_polynomial_is_like_restics() -> None:
    for _ in range(3):
        f = polynomial.random_polynomial()
        assert f.bit_length() - 1 == 53 and f & 1 and _rabin_degree_53(f)


# ---- packs (§6) -------------------------------------------------------------------------------


def _blob_id(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def test_pack_layout_and_header() -> None:
    key = Key.random()
    data1 = os.urandom(1000)
    tree = b'{"nodes":[]}\n' * 50
    empty = b""
    ztree = compression.compress(tree)
    b = PackBuilder()
    b.add(BlobType.DATA, _blob_id(data1), key.seal(data1), 0)
    b.add(BlobType.TREE, _blob_id(tree), key.seal(ztree), len(tree))
    b.add(BlobType.DATA, _blob_id(empty), key.seal(empty), 0)
    pack_id, raw, blobs = b.finish(key)

    assert pack_id == hashlib.sha256(raw).digest()
    (hlen,) = struct.unpack("<I", raw[-4:])
    header = key.open(raw[-4 - hlen:-4])
    want = (
        struct.pack("<BI", 0, 1000 + OVERHEAD) + _blob_id(data1)
        + struct.pack("<BII", 3, len(ztree) + OVERHEAD, len(tree)) + _blob_id(tree)
        + struct.pack("<BI", 0, OVERHEAD) + _blob_id(empty)
    )
    assert header == want and len(header) == 2 * ENTRY_PLAIN + ENTRY_COMPRESSED
    assert len(raw) == expected_size(blobs) == sum(x.length for x in blobs) + len(header) + OVERHEAD + 4

    assert header_length(raw[-4:], len(raw), "p") == hlen
    parsed = parse_header(key, raw[-4 - hlen:-4], pack_id, "p")
    assert parsed == blobs
    assert [(x.offset, x.compressed) for x in parsed] == [
        (0, False), (1000 + OVERHEAD, True), (1000 + OVERHEAD + len(ztree) + OVERHEAD, False)
    ]
    for pb, plain in zip(parsed, (data1, tree, empty)):
        got = key.open(raw[pb.offset:pb.offset + pb.length])
        if pb.compressed:
            got = compression.decompress(got, pb.raw_length, "blob")
        assert got == plain and pb.plain_length == len(plain)

    with pytest.raises(IntegrityError, match="invalid blob type 3"):
        parse_header(key, raw[-4 - hlen:-4], pack_id, "p", allow_compressed=False)


def test_pack_header_errors() -> None:
    key = Key.random()
    with pytest.raises(IntegrityError, match="too short"):
        header_length(struct.pack("<I", 40), 72, "p")
    with pytest.raises(IntegrityError, match="invalid header length"):
        header_length(struct.pack("<I", 5000), 4000, "p")
    with pytest.raises(IntegrityError, match="invalid header length"):
        header_length(struct.pack("<I", 17 * 1024 * 1024), 100 * 1024 * 1024, "p")
    with pytest.raises(IntegrityError, match="invalid blob type 4"):
        parse_header(key, key.seal(struct.pack("<BI", 4, 40) + bytes(32)), b"p", "p")
    with pytest.raises(IntegrityError, match="truncated header entry"):
        parse_header(key, key.seal(struct.pack("<BI", 0, 40) + bytes(20)), b"p", "p")
    with pytest.raises(IntegrityError, match="MAC"):
        parse_header(Key.random(), key.seal(struct.pack("<BI", 0, 40) + bytes(32)), b"p", "p")


def _repo_files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_spooled_packs_are_whole_and_leave_no_temp_files(tmp_path: Path) -> None:
    """A local repository writes each pack into a temporary file as it fills; stored, every pack
    is named by its content's hash and reads back, and neither a flush nor an abandoned backup
    (Ctrl-C) leaves a temporary file behind."""
    Repository.init(LocalBackend(str(tmp_path / "repo")), TEST_PASSWORD)
    repo = Repository.open(LocalBackend(str(tmp_path / "repo")), TEST_PASSWORD)
    repo.pack_size = 5 * 3000  # ~5 blobs a pack
    blobs = [os.urandom(2500) for _ in range(23)]
    ids = [repo.save_blob(BlobType.DATA, b)[0] for b in blobs]
    repo.save_blob(BlobType.TREE, b'{"nodes":[]}\n')
    repo.flush()
    files = _repo_files(tmp_path / "repo")
    assert not [f for f in files if "-tmp-" in f]
    packs = [tmp_path / "repo" / f for f in files if f.startswith("data/")]
    assert len(packs) >= 4  # three full data packs, the rest of the data, the tree
    for p in packs:
        assert hashlib.sha256(p.read_bytes()).hexdigest() == p.name
        assert stat.S_IMODE(p.stat().st_mode) == 0o400
    assert [repo.load_blob(BlobType.DATA, i) for i in ids] == blobs

    repo.save_blob(BlobType.DATA, os.urandom(500))  # a pack begun, not full
    assert [f for f in _repo_files(tmp_path / "repo") if "-tmp-" in f]
    repo.abandon_pending()
    assert _repo_files(tmp_path / "repo") == files


def test_a_failed_pack_write_drops_the_pack_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A write that fails halfway leaves the spool's end unknown: the pack is dropped (the
    backup fails with the error), never stored with its later blobs at the wrong offsets."""
    from mover.errors import BackendError
    from mover.repo.backend import local

    Repository.init(LocalBackend(str(tmp_path / "repo")), TEST_PASSWORD)
    repo = Repository.open(LocalBackend(str(tmp_path / "repo")), TEST_PASSWORD)
    repo.pack_size = 5 * 3000
    real_write = local.PackSpool.write
    calls = 0

    def flaky_write(self: local.PackSpool, data: bytes | bytearray | memoryview) -> None:
        nonlocal calls
        calls += 1
        if calls == 3:
            real_write(self, memoryview(data)[:100])  # a short write, then the error
            raise BackendError("cannot write: No space left on device")
        real_write(self, data)

    monkeypatch.setattr(local.PackSpool, "write", flaky_write)
    blobs = [os.urandom(2000) for _ in range(8)]
    saved = []
    for b in blobs:
        try:
            saved.append(repo.save_blob(BlobType.DATA, b)[0])
        except BackendError:
            pass
    repo.flush()
    assert len(saved) == 7
    assert not [f for f in _repo_files(tmp_path / "repo") if "-tmp-" in f]
    # the two blobs before the failure went with their pack; every pack stored reads back whole
    for b in blobs[3:]:
        assert repo.load_blob(BlobType.DATA, hashlib.sha256(b).digest()) == b
    for b in blobs[:3]:
        assert not repo.index.has(BlobType.DATA, hashlib.sha256(b).digest())


# ---- index files (§7) -------------------------------------------------------------------------

P1, P2 = bytes.fromhex("11" * 32), bytes.fromhex("22" * 32)
B1, B2, B3 = bytes.fromhex("aa" * 32), bytes.fromhex("bb" * 32), bytes.fromhex("cc" * 32)


def test_index_file_encoding() -> None:
    packs = {
        P1: [PackedBlob(BlobType.DATA, B1, P1, 0, 37), PackedBlob(BlobType.TREE, B2, P1, 37, 100, 300)],
        P2: [PackedBlob(BlobType.DATA, B3, P2, 0, 50, 18)],
    }
    raw = encode_index_file(packs)
    assert raw == (
        '{"packs":[{"id":"' + "11" * 32 + '","blobs":['
        '{"id":"' + "aa" * 32 + '","type":"data","offset":0,"length":37},'
        '{"id":"' + "bb" * 32 + '","type":"tree","offset":37,"length":100,"uncompressed_length":300}]},'
        '{"id":"' + "22" * 32 + '","blobs":['
        '{"id":"' + "cc" * 32 + '","type":"data","offset":0,"length":50,"uncompressed_length":18}]}]}\n'
    ).encode()
    sup, blobs = decode_index_file(raw, "i")
    assert sup == [] and blobs == [b for bl in packs.values() for b in bl]

    with_sup = encode_index_file(packs, supersedes=[B3])
    assert with_sup.startswith(b'{"supersedes":["' + b"cc" * 32 + b'"],"packs":[')
    assert decode_index_file(with_sup, "i")[0] == [B3]


def test_legacy_index_format_and_bad_indexes() -> None:
    legacy = json.dumps([{"id": P1.hex(), "blobs": [
        {"id": B1.hex(), "type": "data", "offset": 0, "length": 37},
        {"id": B2.hex(), "type": "tree", "offset": 37, "length": 80},
    ]}]).encode()
    sup, blobs = decode_index_file(legacy, "i")
    assert sup == [] and [(b.type, b.id, b.pack, b.offset, b.length) for b in blobs] == [
        (BlobType.DATA, B1, P1, 0, 37), (BlobType.TREE, B2, P1, 37, 80)
    ]
    for bad in (b"not json", b'{"packs":[{"id":"zz","blobs":[]}]}',
                b'{"packs":[{"id":"' + b"11" * 32 + b'","blobs":[{"id":"aa","type":"blob"}]}]}'):
        with pytest.raises(IntegrityError, match="index/x: not a valid index file"):
            decode_index_file(bad, "index/x")
    # well-formed JSON whose numbers do not fit: the in-memory index says so the same way
    pack = '{"packs":[{"id":"' + "11" * 32 + '","blobs":[%s]}]}'
    for blob in ('{"id":"' + "aa" * 31 + '","type":"data","offset":0,"length":5}',
                 '{"id":"' + "aa" * 32 + '","type":"data","offset":-1,"length":5}',
                 '{"id":"' + "aa" * 32 + '","type":"tree","offset":0,"length":4294967296}'):
        with pytest.raises(IntegrityError, match="index/x: not a valid index file"):
            Index().add_index_file((pack % blob).encode(), "index/x")
    short_pack = '{"packs":[{"id":"' + "11" * 31 + '","blobs":[]}]}'
    with pytest.raises(IntegrityError, match="index/x: not a valid index file"):
        Index().add_index_file(short_pack.encode(), "index/x")


def test_in_memory_index() -> None:
    idx = Index()
    idx.add([PackedBlob(BlobType.DATA, B1, P1, 0, 37), PackedBlob(BlobType.TREE, B1, P1, 37, 60, 90)])
    idx.add([PackedBlob(BlobType.DATA, B1, P2, 0, 37)])  # a duplicate: the first stays
    assert len(idx) == 2 and idx.packs() == {P1, P2}
    assert idx.has(BlobType.DATA, B1) and idx.has(BlobType.TREE, B1) and not idx.has(BlobType.TREE, B2)
    assert idx.get(BlobType.DATA, B1) == PackedBlob(BlobType.DATA, B1, P1, 0, 37)
    assert idx.get(BlobType.TREE, B1).plain_length == 90
    assert idx.get(BlobType.DATA, B2) is None

    # enough packs to grow the table of pack ids several times: each blob still finds its pack
    many = Index()
    packs = [hashlib.sha256(b"pack%d" % i).digest() for i in range(3000)]
    blobs = [hashlib.sha256(b"blob%d" % i).digest() for i in range(6000)]
    many.add([PackedBlob(BlobType.DATA, b, packs[i // 2], i % 2 * 100, 100) for i, b in enumerate(blobs)])
    many.add([PackedBlob(BlobType.TREE, B1, packs[7], 200, 10)])
    assert many.packs() == set(packs) and len(many) == 6001
    assert [many.get(BlobType.DATA, b).pack for b in blobs] == [packs[i // 2] for i in range(6000)]
    assert many.get(BlobType.TREE, B1) == PackedBlob(BlobType.TREE, B1, packs[7], 200, 10)
    assert {pb.pack for pb in many} == set(packs)


# ---- unpacked files (§5) ----------------------------------------------------------------------


def test_unpacked_encoding_v1_and_v2() -> None:
    doc = b'{"packs":[]}\n'
    assert compression.encode_unpacked(doc, 1) == doc
    v2 = compression.encode_unpacked(doc, 2)
    assert v2[0] == 2 and v2[1:5] == b"\x28\xb5\x2f\xfd"  # version byte, then a zstd frame
    assert compression.decode_unpacked(v2, "f") == doc
    assert compression.decode_unpacked(doc, "f") == doc  # raw JSON object
    assert compression.decode_unpacked(b"[1]", "f") == b"[1]"  # raw JSON array
    assert compression.decode_unpacked(b"", "f") == b""
    with pytest.raises(IntegrityError, match="f: unsupported encoding format byte 0x03"):
        compression.decode_unpacked(b"\x03" + doc, "f")
    with pytest.raises(IntegrityError, match="cannot decompress"):
        compression.decode_unpacked(b"\x02not zstd", "f")


def test_zstd_frames_without_content_size() -> None:
    """klauspost leaves the content size out for small inputs (§5): we must still read them."""
    plain = b'{"time":"2022-08-31T10:11:12Z","exclusive":false}'
    frame = zstandard.ZstdCompressor(write_content_size=False).compress(plain)
    assert zstandard.get_frame_parameters(frame).content_size == zstandard.CONTENTSIZE_UNKNOWN
    assert compression.decode_unpacked(b"\x02" + frame, "lock") == plain
    assert compression.decompress(frame, len(plain), "blob") == plain
    with pytest.raises(IntegrityError, match="decompressed to"):
        compression.decompress(frame, len(plain) + 1, "blob")


# ---- trees and nodes (§8) ---------------------------------------------------------------------

GO_MODES = [
    (stat.S_IFREG | 0o644, 420, "file"),
    (stat.S_IFREG | 0o4755, (1 << 23) | 0o755, "setuid file"),
    (stat.S_IFDIR | 0o755, 2147484141, "dir"),
    (stat.S_IFDIR | 0o2755, (1 << 31) | (1 << 22) | 0o755, "setgid dir"),
    (stat.S_IFDIR | 0o1777, (1 << 31) | (1 << 20) | 0o777, "sticky dir"),
    (stat.S_IFLNK | 0o777, 134218239, "symlink"),
    (stat.S_IFBLK | 0o660, (1 << 26) | 0o660, "block device"),
    (stat.S_IFCHR | 0o666, (1 << 26) | (1 << 21) | 0o666, "char device"),
    (stat.S_IFIFO | 0o644, (1 << 25) | 0o644, "fifo"),
    (stat.S_IFSOCK | 0o755, (1 << 24) | 0o755, "socket"),
]


@pytest.mark.parametrize(("posix", "go", "what"), GO_MODES, ids=[w for _, _, w in GO_MODES])
def test_go_file_mode(posix: int, go: int, what: str) -> None:
    assert go_mode_from_posix(posix) == go
    assert posix_perm_from_go(go) == stat.S_IMODE(posix)


T1 = "2020-09-13T12:26:40.123456789Z"
T1_NS = BASE + 123_456_789
COMMON = {"mtime": T1, "atime": T1, "ctime": "2020-09-13T12:26:41Z", "uid": 1000, "gid": 100,
          "user": "alice", "group": "users", "inode": 4242, "device_id": 2049}
ID_A, ID_B = "ab" * 32, "cd" * 32


def _node(name: str, type_: str, posix_mode: int, **kw) -> Node:
    return Node(name=name, type=type_, mode=go_mode_from_posix(posix_mode), mtime=T1_NS,
                atime=T1_NS, ctime=BASE + 10**9, uid=1000, gid=100, user="alice", group="users",
                inode=4242, device_id=2049, **kw)


NODES = [
    (_node("file.txt", "file", stat.S_IFREG | 0o644, size=7, links=1,
           content=[bytes.fromhex(ID_A), bytes.fromhex(ID_B)]),
     {"name": "file.txt", "type": "file", "mode": 420, **COMMON, "size": 7, "links": 1,
      "content": [ID_A, ID_B]}),
    (_node("empty", "file", stat.S_IFREG | 0o600, links=2, content=[]),
     {"name": "empty", "type": "file", "mode": 384, **COMMON, "links": 2, "content": []}),
    (_node("dir", "dir", stat.S_IFDIR | 0o2755, subtree=bytes.fromhex(ID_A)),
     {"name": "dir", "type": "dir", "mode": 2151678445, **COMMON, "content": None, "subtree": ID_A}),
    (_node("link", "symlink", stat.S_IFLNK | 0o777, links=1, linktarget="../x y"),
     {"name": "link", "type": "symlink", "mode": 134218239, **COMMON, "links": 1,
      "linktarget": "../x y", "content": None}),
    (_node("sda", "dev", stat.S_IFBLK | 0o660, links=1, device=2048),
     {"name": "sda", "type": "dev", "mode": 67109296, **COMMON, "links": 1, "device": 2048,
      "content": None}),
    (_node("null", "chardev", stat.S_IFCHR | 0o666, links=1, device=259),
     {"name": "null", "type": "chardev", "mode": 69206454, **COMMON, "links": 1, "device": 259,
      "content": None}),
    (_node("pipe", "fifo", stat.S_IFIFO | 0o644),
     {"name": "pipe", "type": "fifo", "mode": 33554852, **COMMON, "content": None}),
    (_node("sock", "socket", stat.S_IFSOCK | 0o755),
     {"name": "sock", "type": "socket", "mode": 16777709, **COMMON, "content": None}),
    (_node("x", "file", stat.S_IFREG | 0o644, size=1, links=1, content=[bytes.fromhex(ID_A)],
           xattrs=[("user.b", b"\x00\xff"), ("user.a", b"v")]),
     {"name": "x", "type": "file", "mode": 420, **COMMON, "size": 1, "links": 1,
      "extended_attributes": [{"name": "user.b", "value": "AP8="}, {"name": "user.a", "value": "dg=="}],
      "content": [ID_A]}),
]


def node_via_tree(d: dict) -> Node:
    """A node's JSON form decoded as part of a tree, the only way nodes are read."""
    [node] = decode_tree(('{"nodes":[' + gojson.dumps(d) + "]}").encode(), "t")
    return node


@pytest.mark.parametrize(("node", "want"), NODES, ids=[n.name for n, _ in NODES])
def test_node_json(node: Node, want: dict) -> None:
    got = node.to_json()
    assert got == want
    assert list(got) == list(want)  # Go struct order
    assert node_via_tree(got) == node


def test_zero_times_and_minimal_node() -> None:
    n = Node(name="z", type="fifo")
    assert gojson.dumps(n.to_json()) == (
        '{"name":"z","type":"fifo","mtime":"0001-01-01T00:00:00Z","atime":"0001-01-01T00:00:00Z",'
        '"ctime":"0001-01-01T00:00:00Z","uid":0,"gid":0,"content":null}'
    )
    assert node_via_tree(n.to_json()) == n


def test_non_utf8_link_target_is_kept_raw() -> None:
    target = b"to-\xff".decode("utf-8", "surrogateescape")
    d = Node(name="l", type="symlink", linktarget=target).to_json()
    assert d["linktarget"] == "to-\ufffd" and base64.b64decode(d["linktarget_raw"]) == b"to-\xff"
    assert node_via_tree(d).linktarget == target


def test_tree_encoding_sorts_bytewise_and_refuses_duplicates() -> None:
    names = ["b", "B", "a", "é", b"\xff".decode("utf-8", "surrogateescape"), "a-", "\U0001f600"]
    raw = encode_tree([Node(name=n, type="fifo") for n in names])
    assert raw.endswith(b"}\n") and raw.startswith(b'{"nodes":[{"name":"B"')
    order = [n.name_bytes for n in decode_tree(raw, "t")]
    assert order == sorted(order) and len(order) == len(names)
    assert encode_tree([]) == b'{"nodes":[]}\n'
    assert decode_tree(b'{"nodes":null}\n', "t") == []
    with pytest.raises(ValueError, match="duplicate"):
        encode_tree([Node(name="a", type="fifo"), Node(name="a", type="file")])
    with pytest.raises(IntegrityError, match="t: not a valid tree"):
        decode_tree(b'{"nodes":[{"type":"file"}]}', "t")


def test_tree_decoding_skips_unknown_keys_and_refuses_wrong_types() -> None:
    # a later restic's extra keys are skipped, as restic itself does; Go's nulls for slices
    # and pointers are empty; a number where a string belongs is damage, and says where
    raw = (b'{"nodes":[{"name":"d","type":"dir","mode":2147484141,"mtime":"2026-01-02T03:04:05.5Z",'
           b'"atime":"2026-01-02T03:04:05.5Z","ctime":"2026-01-02T03:04:06+01:00","uid":7,'
           b'"generic_attributes":{"windows":"x"},"extended_attributes":null,"content":null,'
           b'"subtree":"' + ID_A.encode() + b'"}],"future":[1,2]}')
    [node] = decode_tree(raw, "t")
    assert (node.name, node.type, node.uid, node.subtree, node.content, node.xattrs) == (
        "d", "dir", 7, bytes.fromhex(ID_A), None, [])
    assert node.mtime == node.atime == gotime.parse_ns("2026-01-02T03:04:05.5Z")
    assert node.ctime == node.mtime + 10**9 // 2 - 3600 * 10**9
    assert gc.isenabled()
    for bad, why in ((b'{"nodes":[{"name":1,"type":"file"}]}', r"\$\.nodes\[0\]\.name"),
                     (b'{"nodes":[{"name":"a","type":"file","mtime":"yesterday"}]}', "yesterday"),
                     (b'{"nodes":[{"name":"a","type":"file","content":["zz"]}]}', "hex"),
                     (b'{"nodes":[', "truncated")):
        with pytest.raises(IntegrityError, match=f"t: not a valid tree .*{why}"):
            decode_tree(bad, "t")
        assert gc.isenabled()  # the collector paused for the decoding runs again


def _tree_of_times(*times: str) -> bytes:
    return ('{"nodes":[' + ",".join(
        f'{{"name":"n{i}","type":"file","mtime":"{t}","atime":"{t}","ctime":"{t}","content":[]}}'
        for i, t in enumerate(times)) + "]}").encode()


def test_tree_times_are_checked_at_once_and_parsed_when_read() -> None:
    texts = ["2026-01-02T03:04:05.123456789+01:00", "2026-01-02T03:04:05Z", "2026-01-02t03:04:05z",
             "2026-01-02 03:04:05.5-02:30",
             # forms msgspec's check lets through: parse_ns reads them too, so no later read fails
             "2026-01-02T03:04:05.1234567891Z", "2026-01-02T03:04:05+0100",
             # msgspec refuses year 0 (Go writes it), so the tree is parsed at once instead
             "0000-06-01T00:00:00Z"]
    for text in texts:
        [node] = decode_tree(_tree_of_times(text), "t")
        assert node.mtime == node.atime == node.ctime == gotime.parse_ns(text)
    [a] = decode_tree(_tree_of_times(texts[0]), "t")
    assert a._mtime == texts[0]  # not parsed until read
    ns = gotime.parse_ns(texts[0])
    assert a == Node(name="n0", type="file", mtime=ns, atime=ns, ctime=ns, content=[])
    assert a._mtime == ns  # comparing read it
    assert gotime.parse_ns("2026-01-02T03:04:05.1234567891Z") == gotime.parse_ns("2026-01-02T03:04:05.123456789Z")
    assert gotime.parse_ns("2026-01-02T03:04:05+0100") == gotime.parse_ns("2026-01-02T02:04:05Z")
    encoded = encode_tree(decode_tree(_tree_of_times(texts[0]), "t"))
    assert b'"mtime":"2026-01-02T02:04:05.123456789Z"' in encoded  # re-encoded as before, in UTC
    for bad in ("2026-02-30T00:00:00Z", "2026-01-02T24:00:00Z", "2026-01-02T03:04:60Z",
                "2026-01-02T03:04:05", "2026-01-02T03:04Z", "2026-01-02T03:04:05.Z"):
        with pytest.raises(IntegrityError, match="t: not a valid tree"):
            decode_tree(_tree_of_times("2026-01-02T03:04:05Z", bad), "t")


def test_node_compares_sets_and_prints_like_a_dataclass() -> None:
    n = Node(name="a", type="file", mtime=5, content=[b"x"])
    assert n == Node("a", "file", 0, 5, content=[b"x"]) and n != Node(name="a", type="file")
    assert n.xattrs == [] and n.atime == gotime.ZERO
    n.mtime = 7
    assert n.mtime == 7 and n != Node(name="a", type="file", mtime=5, content=[b"x"])
    assert repr(n).startswith("Node(name='a', type='file', mode=0, mtime=7, atime=")
    with pytest.raises(TypeError):
        hash(n)


def test_snapshot_json() -> None:
    tree = bytes.fromhex(ID_A)
    s = Snapshot(time=BASE + 5, tree=tree, paths=["/data"], hostname="velero", tags=["a=b"])
    d = s.to_json()
    assert list(d) == ["time", "tree", "paths", "hostname", "tags"]  # empty fields left out
    full = Snapshot(time=BASE, tree=tree, paths=["/a", "/b"], hostname="h", username="u", uid=1,
                    gid=2, excludes=["*.tmp"], tags=["t"], parent=bytes.fromhex(ID_B),
                    original=bytes.fromhex(ID_B), program_version="mover 0.1.0")
    assert list(full.to_json()) == ["time", "parent", "tree", "paths", "hostname", "username",
                                    "uid", "gid", "excludes", "tags", "original", "program_version"]
    back = Snapshot.from_bytes(full.to_bytes(), b"id", "s")
    for f in ("time", "tree", "paths", "hostname", "username", "uid", "gid", "excludes", "tags",
              "parent", "original", "program_version"):
        assert getattr(back, f) == getattr(full, f), f
    restic_style = (b'{"time":"2022-08-31T10:11:12.123456789+02:00","tree":"' + ID_A.encode()
                    + b'","paths":["/x"],"hostname":"h","summary":{"files_new":1}}')
    parsed = Snapshot.from_bytes(restic_style, b"id", "s")  # unknown fields are ignored
    assert parsed.time == gotime.parse_ns("2022-08-31T08:11:12.123456789Z")
    with pytest.raises(IntegrityError, match="s: not a valid snapshot"):
        Snapshot.from_bytes(b'{"paths":[]}', b"id", "s")


# ---- what restic wrote goes through us unchanged ----------------------------------------------


def test_restic_written_files_reencode_byte_identically(
    full_tree: tuple[Path, dict], tmp_path: Path, restic_bin: str
) -> None:
    """restic 0.14 backs up the full tree (into a mover-made repository); every tree blob, the
    index and the snapshot it wrote decode and re-encode to the very same bytes, and the Go mode
    of every node is what go_mode_from_posix makes of the source's st_mode."""
    root, _ = full_tree
    repo_path = tmp_path / "repo"
    Mover(repo_path).init()
    r = Restic(str(repo_path), TEST_PASSWORD, binary=restic_bin)
    snap_id = r.backup(["."], cwd=root)

    repo = Repository.open(LocalBackend(str(repo_path)), TEST_PASSWORD)
    snap_raw = repo.load_unpacked(FileType.SNAPSHOT, snap_id)
    snap = Snapshot.from_bytes(snap_raw, bytes.fromhex(snap_id), "s")
    assert snap.to_bytes() == snap_raw

    (index_name,) = [n for n, _ in repo.backend.list(FileType.INDEX)]
    index_raw = repo.load_unpacked(FileType.INDEX, index_name)
    _sup, blobs = decode_index_file(index_raw, "i")
    by_pack: dict[bytes, list[PackedBlob]] = {}
    for b in blobs:
        by_pack.setdefault(b.pack, []).append(b)
    assert encode_index_file(by_pack) == index_raw

    types_seen = set()
    stack = [(snap.tree, root)]
    while stack:
        tree_id, directory = stack.pop()
        raw = repo.load_blob(BlobType.TREE, tree_id)
        nodes = decode_tree(raw, "t")
        assert encode_tree(nodes) == raw, f"tree of {directory} re-encodes differently"
        for n in nodes:
            types_seen.add(n.type)
            path = os.path.join(os.fsencode(directory), n.name_bytes)
            assert n.mode == go_mode_from_posix(os.lstat(path).st_mode), n.name
            if n.type == "dir":
                stack.append((n.subtree, Path(os.fsdecode(path))))
    assert {"file", "dir", "symlink", "fifo"} <= types_seen
