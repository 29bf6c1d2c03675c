"""S3Backend against a real S3 server (SeaweedFS), plus restic's own S3 client.

The URL parsing and region tests need no server.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from botocore.stub import Stubber

from mover.repo.backend.base import FileType, Handle
from mover.repo.backend.s3 import (
    RetryPolicy,
    S3Backend,
    S3Location,
    parse_s3_url,
    resolve_region,
)
from mover.errors import BackendError, NotFound, RepoError
from tests.support.restic_cli import Restic
from tests.support.s3server import S3Server, free_ports

# Short enough that a test of an unreachable server fails in about a second.
FAST_FAIL = RetryPolicy(attempts=4, base_delay=0.05, max_delay=0.2, deadline=1.0, sdk_retries=0)
# Long enough to ride out a SeaweedFS restart (about 3.5 s).
PATIENT = RetryPolicy(attempts=100, base_delay=0.2, max_delay=1.0, deadline=30.0)

ID_A = "ab" + "0" * 62
ID_B = "cd" + "1" * 62

BackendFactory = Callable[..., S3Backend]


@pytest.fixture(autouse=True)
def clean_aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No AWS settings from the developer's environment or ~/.aws leak into a test."""
    for var in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_DEFAULT_REGION",
        "AWS_REGION",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    # Without credentials botocore would otherwise probe the EC2 metadata service for seconds.
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture
def server_env(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    """Credentials for the test server in AWS_* variables, as an operator would set them."""
    for name, value in s3_server.env().items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def make_backend(s3_server: S3Server, server_env: None) -> Iterator[BackendFactory]:  # noqa: F811
    """Factory: `make_backend(bucket, prefix="repo", **options)`; closes them afterwards."""
    made: list[S3Backend] = []

    def make(bucket: str, prefix: str = "repo", **options: object) -> S3Backend:
        options.setdefault("retry", FAST_FAIL)
        url = f"s3:{s3_server.endpoint_url}/{bucket}" + (f"/{prefix}" if prefix else "")
        backend = S3Backend.from_url(url, **options)  # type: ignore[arg-type]
        made.append(backend)
        return backend

    yield make
    for backend in made:
        backend.close()


@pytest.fixture
def backend(make_backend: BackendFactory, s3_bucket: str) -> S3Backend:  # noqa: F811
    return make_backend(s3_bucket)


def raw_keys(server: S3Server, bucket: str) -> set[str]:
    """Every key in the bucket, read with a plain boto3 client."""
    pages = server.client().get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return {obj["Key"] for page in pages for obj in page.get("Contents", ())}


def assert_one_line(err: BaseException) -> None:
    assert "\n" not in str(err)
    assert type(err).__module__.startswith("mover."), type(err)


# -- repository strings, region, addressing (no server) ---------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "s3:http://127.0.0.1:9000/bucket/some/prefix",
            S3Location("http://127.0.0.1:9000", "bucket", "some/prefix", "http"),
        ),
        (
            "s3:https://minio.example.com/bucket/p",
            S3Location("https://minio.example.com", "bucket", "p", "https"),
        ),
        (
            "s3:s3.amazonaws.com/bucket/velero/restic/ns1",
            S3Location("https://s3.amazonaws.com", "bucket", "velero/restic/ns1", "https"),
        ),
        ("s3://host:8333/bucket", S3Location("https://host:8333", "bucket", "", "https")),
        ("s3:host/bucket/", S3Location("https://host", "bucket", "", "https")),
        ("s3:http://h/b//a/./c/", S3Location("http://h", "b", "a/c", "http")),
    ],
)
def test_parse_s3_url(url: str, expected: S3Location) -> None:
    assert parse_s3_url(url) == expected


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("", 'does not start with "s3:"'),
        ("http://host/bucket", 'does not start with "s3:"'),
        ("s3:", "host is missing"),
        ("s3://", "host is missing"),
        ("s3:http:///bucket", "host is missing"),
        ("s3:http://host:9000", "bucket name is missing"),
        ("s3:https://host/", "bucket name is missing"),
        ("s3:host", "bucket name is missing"),
        ("s3:http://host/bucket?x=1", "query or fragment"),
        ("s3:host/Bad_Bucket!/p", "'Bad_Bucket!' has characters S3 does not allow"),
    ],
)
def test_parse_s3_url_rejects(url: str, why: str) -> None:
    with pytest.raises(RepoError, match="invalid S3 repository") as info:
        parse_s3_url(url)
    assert why in str(info.value)
    assert "expected s3:http" in str(info.value)
    assert_one_line(info.value)


def test_location_string() -> None:
    assert str(parse_s3_url("s3:http://h:1/b/p/q")) == "s3:http://h:1/b/p/q"
    assert str(parse_s3_url("s3:h/b")) == "s3:https://h/b"


def test_region_resolution(monkeypatch: pytest.MonkeyPatch) -> None:
    custom = parse_s3_url("s3:http://127.0.0.1:9000/b")
    aws = parse_s3_url("s3:s3-eu-west-1.amazonaws.com/b/p")
    assert resolve_region(None, custom) == "us-east-1"
    assert resolve_region(None, aws) == "eu-west-1"
    assert resolve_region(None, parse_s3_url("s3:s3.ap-south-2.amazonaws.com/b")) == "ap-south-2"
    monkeypatch.setenv("AWS_REGION", "ca-central-1")
    assert resolve_region(None, custom) == "ca-central-1"
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-north-1")
    assert resolve_region(None, aws) == "eu-north-1"
    assert resolve_region("us-west-2", aws) == "us-west-2"


@pytest.mark.parametrize(
    ("url", "path_style", "style"),
    [
        ("s3:http://127.0.0.1:9000/b", None, "path"),
        ("s3:http://127.0.0.1:9000/b", False, "virtual"),
        ("s3:s3.amazonaws.com/b", None, "auto"),
        ("s3:s3.amazonaws.com/b", True, "path"),
    ],
)
def test_addressing_style(url: str, path_style: bool | None, style: str) -> None:
    backend = S3Backend.from_url(url, path_style=path_style)
    try:
        assert backend._client.meta.config.s3["addressing_style"] == style
    finally:
        backend.close()


def test_missing_credentials_file(tmp_path: Path) -> None:
    with pytest.raises(BackendError, match="credentials file .* does not exist") as info:
        S3Backend.from_url("s3:http://127.0.0.1:1/b", credentials_file=tmp_path / "nope")
    assert_one_line(info.value)


# -- files of every type --------------------------------------------------------------------


@pytest.mark.parametrize(
    "handle",
    [
        Handle(FileType.CONFIG),
        Handle(FileType.KEY, ID_A),
        Handle(FileType.PACK, ID_A),
        Handle(FileType.INDEX, ID_A),
        Handle(FileType.SNAPSHOT, ID_A),
        Handle(FileType.LOCK, ID_A),
    ],
    ids=lambda h: h.type.name,
)
def test_save_load_stat_list_remove(
    backend: S3Backend, s3_server: S3Server, s3_bucket: str, handle: Handle  # noqa: F811
) -> None:
    data = bytes(range(256)) * 40
    backend.save(handle, data)

    assert raw_keys(s3_server, s3_bucket) == {f"repo/{handle.relpath()}"}
    assert backend.load(handle) == data
    assert backend.load(handle, 100, 50) == data[100:150]
    assert backend.load(handle, 10_000) == data[10_000:]
    assert backend.load(handle, len(data) - 5, 100) == data[-5:]  # short file: fewer bytes
    assert backend.load(handle, len(data), 10) == b""
    assert backend.load(handle, 0, 0) == b""
    assert backend.stat(handle) == len(data)
    assert backend.exists(handle)
    if handle.type is not FileType.CONFIG:
        assert list(backend.list(handle.type)) == [(ID_A, len(data))]

    backend.save(handle, b"overwritten")
    assert backend.load(handle) == b"overwritten"

    backend.remove(handle)
    backend.remove(handle)  # missing: not an error
    assert not backend.exists(handle)
    with pytest.raises(NotFound, match=f"{handle.relpath()} not found in repository s3:http"):
        backend.load(handle)
    with pytest.raises(NotFound):
        backend.stat(handle)
    with pytest.raises(NotFound):
        backend.load(handle, 0, 0)


def test_list_keeps_types_apart(
    backend: S3Backend, s3_server: S3Server, s3_bucket: str  # noqa: F811
) -> None:
    backend.save(Handle(FileType.CONFIG), b"c")
    backend.save(Handle(FileType.PACK, ID_A), b"p1")
    backend.save(Handle(FileType.PACK, ID_B), b"p22")
    backend.save(Handle(FileType.INDEX, ID_B), b"i")
    assert sorted(backend.list(FileType.PACK)) == [(ID_A, 2), (ID_B, 3)]
    assert list(backend.list(FileType.INDEX)) == [(ID_B, 1)]
    assert list(backend.list(FileType.SNAPSHOT)) == []
    assert raw_keys(s3_server, s3_bucket) == {
        "repo/config",
        f"repo/data/ab/{ID_A}",
        f"repo/data/cd/{ID_B}",
        f"repo/index/{ID_B}",
    }
    with pytest.raises(ValueError):
        list(backend.list(FileType.CONFIG))


def test_repository_at_bucket_root(
    make_backend: BackendFactory, s3_server: S3Server, s3_bucket: str  # noqa: F811
) -> None:
    backend = make_backend(s3_bucket, prefix="")
    assert backend.location() == f"s3:{s3_server.endpoint_url}/{s3_bucket}"
    backend.save(Handle(FileType.KEY, ID_A), b"k")
    assert raw_keys(s3_server, s3_bucket) == {f"keys/{ID_A}"}
    assert list(backend.list(FileType.KEY)) == [(ID_A, 1)]


# -- create ---------------------------------------------------------------------------------


def test_create_makes_bucket_and_refuses_existing_repo(
    make_backend: BackendFactory, s3_server: S3Server  # noqa: F811
) -> None:
    s3_server.start()
    bucket = f"new-{time.monotonic_ns()}"
    backend = make_backend(bucket, prefix="velero/restic/ns1")
    backend.create()
    backend.create()  # bucket there, no config yet: still fine
    assert raw_keys(s3_server, bucket) == set()  # no directory markers

    backend.save(Handle(FileType.CONFIG), b"config")
    with pytest.raises(RepoError, match="a repository already exists at s3:http") as info:
        backend.create()
    assert_one_line(info.value)
    make_backend(bucket, prefix="velero/restic/ns2").create()  # another prefix is free


# -- many objects, many threads ---------------------------------------------------------------


def test_list_paginates_past_1000(backend: S3Backend) -> None:
    names = [f"{i:064x}" for i in range(1100)]
    with ThreadPoolExecutor(32) as pool:
        list(pool.map(lambda n: backend.save(Handle(FileType.INDEX, n), n[-4:].encode()), names))
    listed = dict(backend.list(FileType.INDEX))
    assert sorted(listed) == names
    assert set(listed.values()) == {4}


def test_concurrent_saves_and_loads(backend: S3Backend) -> None:
    blobs = {f"{i:02x}{i:062x}": bytes([i]) * (1000 + i) for i in range(128)}

    def roundtrip(item: tuple[str, bytes]) -> bool:
        name, data = item
        backend.save(Handle(FileType.PACK, name), data)
        return backend.load(Handle(FileType.PACK, name), 10, 20) == data[10:30]

    with ThreadPoolExecutor(32) as pool:
        assert all(pool.map(roundtrip, blobs.items()))
    assert dict(backend.list(FileType.PACK)) == {n: len(d) for n, d in blobs.items()}


# -- errors ---------------------------------------------------------------------------------


def test_wrong_secret(
    make_backend: BackendFactory, s3_bucket: str, monkeypatch: pytest.MonkeyPatch  # noqa: F811
) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    backend = make_backend(s3_bucket)
    for call in (
        lambda: backend.load(Handle(FileType.CONFIG)),
        lambda: backend.stat(Handle(FileType.CONFIG)),  # HEAD: a bare 403, no error code
        lambda: list(backend.list(FileType.KEY)),
        lambda: backend.save(Handle(FileType.LOCK, ID_A), b"x"),
        backend.create,
    ):
        with pytest.raises(BackendError, match="S3 refused the credentials for s3:http") as info:
            call()
        assert "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY" in str(info.value)
        assert_one_line(info.value)


def test_unknown_access_key(
    make_backend: BackendFactory, s3_bucket: str, monkeypatch: pytest.MonkeyPatch  # noqa: F811
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "nobody")
    with pytest.raises(BackendError, match=r"refused the credentials .*\(InvalidAccessKeyId\)"):
        make_backend(s3_bucket).load(Handle(FileType.CONFIG))


def test_missing_bucket(make_backend: BackendFactory, s3_server: S3Server) -> None:  # noqa: F811
    s3_server.start()
    backend = make_backend("no-such-bucket")
    expected = f"bucket 'no-such-bucket' does not exist at {s3_server.endpoint_url}"
    for call in (
        lambda: backend.load(Handle(FileType.CONFIG)),
        lambda: backend.stat(Handle(FileType.CONFIG)),
        lambda: backend.exists(Handle(FileType.CONFIG)),
        lambda: list(backend.list(FileType.SNAPSHOT)),
        lambda: backend.save(Handle(FileType.LOCK, ID_A), b"x"),
    ):
        with pytest.raises(BackendError, match=expected) as info:
            call()
        assert_one_line(info.value)


def test_wrong_port(server_env: None) -> None:
    port = free_ports(1)[0]
    backend = S3Backend.from_url(f"s3:http://127.0.0.1:{port}/bucket/repo", retry=FAST_FAIL)
    started = time.monotonic()
    with pytest.raises(BackendError) as info:
        backend.load(Handle(FileType.CONFIG))
    assert time.monotonic() - started < 3
    message = str(info.value)
    assert message.startswith(f"cannot reach S3 endpoint http://127.0.0.1:{port} (")
    assert "Connection refused" in message
    assert message.endswith("is the URL right and the server up?")
    assert_one_line(info.value)


def test_no_credentials(s3_server: S3Server, s3_bucket: str) -> None:  # noqa: F811
    backend = S3Backend.from_url(f"s3:{s3_server.endpoint_url}/{s3_bucket}", retry=FAST_FAIL)
    with pytest.raises(BackendError, match="no S3 credentials found for s3:http") as info:
        backend.stat(Handle(FileType.CONFIG))
    assert_one_line(info.value)


# -- credentials from files ------------------------------------------------------------------


def test_velero_credentials_file_wins_over_env(
    s3_server: S3Server,  # noqa: F811
    s3_bucket: str,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    creds = tmp_path / "cloud"
    creds.write_text(
        "[default]\n"
        f"aws_access_key_id = {s3_server.access_key}\n"
        f"aws_secret_access_key = {s3_server.secret_key}\n"
    )
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "stale")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "stale")
    url = f"s3:{s3_server.endpoint_url}/{s3_bucket}/repo"
    backend = S3Backend.from_url(url, credentials_file=creds, retry=FAST_FAIL)
    backend.save(Handle(FileType.KEY, ID_A), b"key")
    assert backend.load(Handle(FileType.KEY, ID_A)) == b"key"
    backend.close()


def test_profile_from_shared_credentials_file(
    s3_server: S3Server,  # noqa: F811
    s3_bucket: str,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    creds = tmp_path / "credentials"
    creds.write_text(
        "[default]\naws_access_key_id = wrong\naws_secret_access_key = wrong\n"
        f"[backup]\naws_access_key_id = {s3_server.access_key}\n"
        f"aws_secret_access_key = {s3_server.secret_key}\n"
    )
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(creds))
    monkeypatch.setenv("AWS_PROFILE", "backup")
    backend = S3Backend.from_url(f"s3:{s3_server.endpoint_url}/{s3_bucket}", retry=FAST_FAIL)
    assert list(backend.list(FileType.KEY)) == []
    backend.close()
    with pytest.raises(BackendError, match="AWS profile 'nope' for s3:http.* in neither") as info:
        S3Backend.from_url(f"s3:{s3_server.endpoint_url}/{s3_bucket}", profile="nope")
    assert_one_line(info.value)


# -- retries -----------------------------------------------------------------------------------


def test_retries_throttling_and_5xx_within_bound() -> None:
    quick = RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.01, deadline=5, sdk_retries=0)
    backend = S3Backend.from_url("s3:http://127.0.0.1:1/bucket/repo", retry=quick)
    handle = Handle(FileType.SNAPSHOT, ID_A)
    with Stubber(backend._client) as stub:
        # the first file other than the config looks up the layout: keys/ has a key file
        stub.add_response("list_objects_v2", {"Contents": [{"Key": "repo/keys/k", "Size": 1}]},
                          {"Bucket": "bucket", "Prefix": "repo/keys/", "MaxKeys": 1})
        stub.add_client_error("put_object", "SlowDown", http_status_code=503)
        stub.add_client_error("put_object", "InternalError", http_status_code=500)
        stub.add_response("put_object", {})
        backend.save(handle, b"s")
        for _ in range(3):
            stub.add_client_error("put_object", "SlowDown", "Reduce your request rate.", 503)
        with pytest.raises(BackendError) as info:
            backend.save(handle, b"s")
        stub.assert_no_pending_responses()
    assert str(info.value) == (
        f"S3 save of http://127.0.0.1:1/bucket/repo/snapshots/{ID_A} failed after 3 attempts "
        "in 0 s: SlowDown Reduce your request rate."
    )


def test_outage_short_fails_clearly_and_longer_window_survives(
    make_backend: BackendFactory, s3_server: S3Server, s3_bucket: str  # noqa: F811
) -> None:
    impatient = make_backend(s3_bucket)
    patient = make_backend(s3_bucket, retry=PATIENT)
    handle = Handle(FileType.PACK, ID_B)
    outcome: list[BaseException | None] = []

    def save() -> None:
        try:
            patient.save(handle, b"saved during an outage")
            outcome.append(None)
        except BaseException as err:
            outcome.append(err)

    s3_server.stop()
    try:
        started = time.monotonic()
        with pytest.raises(BackendError, match="cannot reach S3 endpoint") as info:
            impatient.save(handle, b"x")
        assert time.monotonic() - started < 3
        assert "attempts" in str(info.value)
        assert_one_line(info.value)

        saver = threading.Thread(target=save)
        saver.start()
        time.sleep(0.5)  # let the first attempts fail
        assert saver.is_alive()
    finally:
        s3_server.start()
    saver.join(timeout=PATIENT.deadline + 5)
    assert outcome == [None]
    assert patient.load(handle) == b"saved during an outage"


# -- restic itself ----------------------------------------------------------------------------


def test_restic_repository_is_readable(
    make_backend: BackendFactory, s3_server: S3Server, restic_bin: str  # noqa: F811
) -> None:
    s3_server.start()
    bucket = f"restic-{time.monotonic_ns()}"  # restic creates the bucket itself
    url = f"s3:{s3_server.endpoint_url}/{bucket}/velero/restic/default"
    restic = Restic(url, "pw", env_extra=s3_server.env(), binary=restic_bin)
    restic.init()

    backend = make_backend(bucket, prefix="velero/restic/default")
    keys = list(backend.list(FileType.KEY))
    assert len(keys) == 1 and len(keys[0][0]) == 64 and keys[0][1] > 0
    config = backend.load(Handle(FileType.CONFIG))
    assert len(config) == backend.stat(Handle(FileType.CONFIG)) > 0
    assert backend.load(Handle(FileType.KEY, keys[0][0]))[:1] == b"{"  # key files are JSON
    with pytest.raises(RepoError, match="a repository already exists"):
        backend.create()

