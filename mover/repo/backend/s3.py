"""S3 backend on boto3, with restic's repository strings and object layout.

Objects are named ``<prefix>/<relpath>`` (no directory markers), exactly as restic's S3
backend writes them, so restic and this backend can share a repository. A PUT is atomic on
S3, so saves need no temporary objects.

One boto3 client is created per backend and shared by all threads (clients are thread-safe,
sessions are not). Every call goes through `S3Backend._call`, which retries transient
failures (dropped connections, 5xx, throttling) with exponential backoff within a bounded
time, and turns every botocore error into a one-line `RepoError` for the operator.
"""

from __future__ import annotations

import os
import posixpath
import random
import re
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import boto3
import botocore.session
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    HTTPClientError,
    IncompleteReadError,
    NoCredentialsError,
    ProfileNotFound,
    SSLError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError

from mover.repo.backend.base import Backend, FileType, Handle
from mover.repo.errors import BackendError, NotFound, RepoError

T = TypeVar("T")

DEFAULT_REGION = "us-east-1"

_URL_FORMS = (
    "s3:http[s]://host[:port]/bucket[/prefix], s3:host/bucket[/prefix] "
    "or s3://host/bucket[/prefix]"
)
_CREDENTIAL_CODES = frozenset(
    {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "403", "Forbidden"}
)
_NOT_FOUND_CODES = frozenset({"NoSuchKey", "404", "NotFound"})
_TRANSIENT_CODES = frozenset(
    {
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "RequestLimitExceeded",
        "RequestTimeout",
        "InternalError",
        "ServiceUnavailable",
    }
)
# Region in AWS host names such as s3.eu-west-1.amazonaws.com or s3-eu-west-1.amazonaws.com
# (the form Velero builds); the global s3.amazonaws.com has none.
_AWS_REGION_IN_HOST = re.compile(
    r"^s3[.-](?:dualstack\.)?([a-z]{2}(?:-[a-z]+)+-\d+)\.amazonaws\.com(?:\.cn)?$"
)
# What botocore accepts (S3 itself is stricter; the server says so).
_BUCKET_CHARS = re.compile(r"^[a-zA-Z0-9.\-_]{1,255}$")
_ERRNO_TEXT = re.compile(r"\[Errno -?\d+\] [^'\")\]]+")


class BucketNotFound(BackendError):
    """The repository's bucket does not exist (distinct from a missing object)."""


@dataclass(frozen=True)
class S3Location:
    """Where a repository lives: ``endpoint_url`` is ``scheme://host[:port]``."""

    endpoint_url: str
    bucket: str
    prefix: str  # without leading or trailing "/"; "" for the bucket root
    scheme: str  # "http" or "https"

    @property
    def host(self) -> str:
        """Host name without port."""
        return urlsplit(self.endpoint_url).hostname or ""

    def __str__(self) -> str:
        tail = f"/{self.prefix}" if self.prefix else ""
        return f"s3:{self.endpoint_url}/{self.bucket}{tail}"


def parse_s3_url(url: str) -> S3Location:
    """Parse a restic S3 repository string.

    ``s3:http://h:p/b/pre`` and ``s3:https://h/b/pre`` give the scheme explicitly;
    ``s3:h/b/pre`` and ``s3://h/b/pre`` mean HTTPS, as in restic. The prefix is optional.
    """
    if url.startswith(("s3:http://", "s3:https://")):
        parts = urlsplit(url[3:])
        scheme, host, path = parts.scheme, parts.netloc, parts.path.lstrip("/")
        if parts.query or parts.fragment:
            raise _bad_url(url, "it has a query or fragment")
    elif url.startswith("s3:"):
        # "s3://h/b" and "s3:h/b" both start with the host once "s3:" and "//" are gone.
        scheme = "https"
        host, _, path = url[3:].lstrip("/").partition("/")
    else:
        raise _bad_url(url, 'it does not start with "s3:"')
    if not host:
        raise _bad_url(url, "the host is missing")
    bucket, _, prefix = path.partition("/")
    if not bucket:
        raise _bad_url(url, "the bucket name is missing")
    if not _BUCKET_CHARS.match(bucket):
        raise _bad_url(url, f"the bucket name {bucket!r} has characters S3 does not allow")
    return S3Location(f"{scheme}://{host}", bucket, _clean_prefix(prefix), scheme)


def _bad_url(url: str, why: str) -> RepoError:
    return RepoError(f"invalid S3 repository {url!r}: {why}; expected {_URL_FORMS}")


def _clean_prefix(prefix: str) -> str:
    """Normalise like restic's path.Clean: no empty, "." or trailing components."""
    if not prefix.strip("/"):
        return ""
    cleaned = posixpath.normpath("/" + prefix).lstrip("/")
    return "" if cleaned == "." else cleaned


@dataclass(frozen=True)
class RetryPolicy:
    """How long to keep retrying transient failures of one operation.

    ``attempts`` and ``deadline`` (seconds since the first try) both bound our own retries;
    ``sdk_retries`` more happen inside each attempt in botocore (mode ``sdk_mode``).
    """

    attempts: int = 6
    base_delay: float = 0.5
    max_delay: float = 8.0
    deadline: float = 20.0
    sdk_retries: int = 1
    sdk_mode: str = "standard"

    def delays(self) -> Iterator[float]:
        """Backoff before attempt 2, 3, ...: doubling, capped, with jitter so that many
        threads hitting the same outage do not retry in lockstep."""
        delay = self.base_delay
        while True:
            yield delay * random.uniform(0.5, 1.0)
            delay = min(delay * 2, self.max_delay)


def resolve_region(region: str | None, location: S3Location) -> str:
    """Explicit region, else AWS_DEFAULT_REGION / AWS_REGION, else the one in an AWS host
    name, else us-east-1 (what S3-compatible servers usually expect)."""
    if region:
        return region
    env = os.environ.get("AWS_DEFAULT_REGION") or os.environ.get("AWS_REGION")
    if env:
        return env
    match = _AWS_REGION_IN_HOST.match(location.host)
    return match.group(1) if match else DEFAULT_REGION


def _is_aws(location: S3Location) -> bool:
    return location.host.endswith((".amazonaws.com", ".amazonaws.com.cn"))


def _addressing_style(path_style: bool | None, location: S3Location) -> str:
    if path_style is None:
        # S3-compatible servers (MinIO, SeaweedFS, Ceph) rarely have wildcard DNS for
        # virtual-host buckets; AWS prefers virtual hosts ("auto" falls back for dotted names).
        return "auto" if _is_aws(location) else "path"
    return "path" if path_style else "virtual"


def _checksum_options(location: S3Location) -> dict[str, str]:
    """Since botocore 1.36, uploads carry CRC32 headers and aws-chunked bodies by default,
    which many S3-compatible servers reject; ask for them only when AWS requires them.
    Stored data is hash-checked by the repository layer anyway."""
    if _is_aws(location) or "request_checksum_calculation" not in Config.OPTION_DEFAULTS:
        return {}
    return {
        "request_checksum_calculation": "when_required",
        "response_checksum_validation": "when_required",
    }


def _make_session(profile: str | None, credentials_file: str | os.PathLike[str] | None) -> Any:
    """A private boto3 session using the normal credential chain, or the given file."""
    core = botocore.session.Session()
    if credentials_file is not None:
        path = Path(credentials_file)
        if not path.is_file():
            raise BackendError(
                f"S3 credentials file {path} does not exist: check the path "
                "(a Velero-style file has [default] with aws_access_key_id/aws_secret_access_key)"
            )
        core.set_config_variable("credentials_file", str(path))
        # An explicitly set profile makes botocore skip AWS_ACCESS_KEY_ID & co. from the
        # environment, so the file the operator named is the one used.
        profile = profile or os.environ.get("AWS_PROFILE") or "default"
    if profile is not None:
        core.set_config_variable("profile", profile)
    return boto3.session.Session(botocore_session=core)


def _code(err: ClientError) -> str:
    return str(err.response.get("Error", {}).get("Code", ""))


def _status(err: ClientError) -> int:
    return int(err.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))


def _is_transient(err: Exception) -> bool:
    if isinstance(err, SSLError):  # a certificate problem does not fix itself
        return False
    if isinstance(err, (BotoConnectionError, HTTPClientError, IncompleteReadError)):
        return True
    if isinstance(err, ClientError):
        return _code(err) in _TRANSIENT_CODES or _status(err) >= 500
    return False


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _reason(err: Exception) -> str:
    """The useful part of a connection error, e.g. "[Errno 111] Connection refused"."""
    cause = getattr(err, "kwargs", {}).get("error", err)
    found = _ERRNO_TEXT.findall(str(cause))
    return found[-1].strip() if found else _one_line(str(err))


class S3Backend(Backend):
    """A repository in an S3 bucket (AWS or an S3-compatible server)."""

    def __init__(
        self,
        location: S3Location,
        *,
        region: str | None = None,
        path_style: bool | None = None,
        ca_bundle: str | os.PathLike[str] | None = None,
        insecure_tls: bool = False,
        profile: str | None = None,
        credentials_file: str | os.PathLike[str] | None = None,
        retry: RetryPolicy | None = None,
        max_connections: int = 64,
        connect_timeout: float = 5.0,
        read_timeout: float = 60.0,
    ) -> None:
        self.s3_location = location
        self._bucket = location.bucket
        self.retry = retry or RetryPolicy()
        self.region = resolve_region(region, location)
        config = Config(
            **_checksum_options(location),
            region_name=self.region,
            signature_version="s3v4",
            s3={"addressing_style": _addressing_style(path_style, location)},
            retries={"max_attempts": self.retry.sdk_retries, "mode": self.retry.sdk_mode},
            # Enough pooled connections for the archiver's concurrent uploads; beyond the
            # pool size urllib3 would discard connections and reconnect.
            max_pool_connections=max_connections,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            tcp_keepalive=True,
        )
        verify: bool | str | None = None  # botocore's default CA bundle
        if insecure_tls:
            verify = False
        elif ca_bundle is not None:
            verify = os.fspath(ca_bundle)
        try:
            session = _make_session(profile, credentials_file)
            self._client = session.client(
                "s3", endpoint_url=location.endpoint_url, verify=verify, config=config
            )
        except ProfileNotFound as err:
            raise BackendError(
                f"AWS profile {err.kwargs.get('profile')!r} for {location} is in neither the "
                "shared credentials file nor the config file: check AWS_PROFILE or the profile name"
            ) from None
        except BotoCoreError as err:  # e.g. an unreadable config file
            raise BackendError(
                f"cannot set up the S3 client for {location}: {_one_line(str(err))}"
            ) from None

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        region: str | None = None,
        path_style: bool | None = None,
        ca_bundle: str | os.PathLike[str] | None = None,
        insecure_tls: bool = False,
        profile: str | None = None,
        credentials_file: str | os.PathLike[str] | None = None,
        retry: RetryPolicy | None = None,
    ) -> S3Backend:
        """A backend for a restic repository string such as ``s3:http://host:9000/b/p``."""
        return cls(
            parse_s3_url(url),
            region=region,
            path_style=path_style,
            ca_bundle=ca_bundle,
            insecure_tls=insecure_tls,
            profile=profile,
            credentials_file=credentials_file,
            retry=retry,
        )

    # -- Backend interface -----------------------------------------------------------------

    def location(self) -> str:
        return str(self.s3_location)

    def create(self) -> None:
        self._ensure_bucket()
        if self.exists(Handle(FileType.CONFIG)):
            raise RepoError(
                f"a repository already exists at {self.s3_location} (it has a config file): "
                "choose another bucket or prefix"
            )

    def save(self, h: Handle, data: bytes) -> None:
        key = self._key(h)
        self._call(
            "save", key, lambda: self._client.put_object(Bucket=self._bucket, Key=key, Body=data)
        )

    def load(self, h: Handle, offset: int = 0, length: int | None = None) -> bytes:
        if offset < 0 or (length is not None and length < 0):
            raise ValueError(f"bad range offset={offset} length={length} for {h}")
        if length == 0:
            self.stat(h)  # still report a missing file
            return b""
        key = self._key(h)
        return self._call("load", key, lambda: self._get(key, offset, length))

    def stat(self, h: Handle) -> int:
        key = self._key(h)
        try:
            head = self._call(
                "stat", key, lambda: self._client.head_object(Bucket=self._bucket, Key=key)
            )
        except NotFound:
            # HEAD answers a bare 404 for a missing bucket too; tell the two apart.
            self._call("stat", "", lambda: self._client.head_bucket(Bucket=self._bucket))
            raise
        return int(head["ContentLength"])

    def remove(self, h: Handle) -> None:
        key = self._key(h)
        try:
            self._call(
                "remove", key, lambda: self._client.delete_object(Bucket=self._bucket, Key=key)
            )
        except NotFound:  # S3 answers 204 for missing keys; some servers say NoSuchKey
            pass

    def list(self, t: FileType) -> Iterator[tuple[str, int]]:
        if t is FileType.CONFIG:
            raise ValueError("the config is a single file: use stat(), not list()")
        directory = self._join(t.value + "/")
        for key, size in self._list_keys(directory):
            name = key[len(directory) :]
            if t is FileType.PACK:
                # Packs sit one level deeper (data/ab/ab...); yield the id only.
                name = name.rpartition("/")[2]
            if name and "/" not in name:
                yield name, size

    def close(self) -> None:
        self._client.close()

    # -- helpers ---------------------------------------------------------------------------

    def _key(self, h: Handle) -> str:
        return self._join(h.relpath())

    def _join(self, relpath: str) -> str:
        return f"{self.s3_location.prefix}/{relpath}" if self.s3_location.prefix else relpath

    def _relpath(self, key: str) -> str:
        return key[len(self.s3_location.prefix) + 1 :] if self.s3_location.prefix else key

    def _get(self, key: str, offset: int, length: int | None) -> bytes:
        """One ranged GET, body included (so a connection dropped mid-body is retried)."""
        ranged = offset > 0 or length is not None
        args: dict[str, Any] = {"Bucket": self.s3_location.bucket, "Key": key}
        if ranged:
            end = "" if length is None else str(offset + length - 1)
            args["Range"] = f"bytes={offset}-{end}"
        try:
            resp = self._client.get_object(**args)
        except ClientError as err:
            if _code(err) == "InvalidRange":  # offset at or past the end of the file
                return b""
            raise
        with closing(resp["Body"]) as body:
            data: bytes = body.read()
        if ranged and resp["ResponseMetadata"]["HTTPStatusCode"] == 200:
            # The server ignored the Range header and sent the whole object.
            data = data[offset : None if length is None else offset + length]
        return data

    def _list_keys(self, prefix: str) -> Iterator[tuple[str, int]]:
        """Every (key, size) under `prefix`, one retried ListObjectsV2 call per page."""
        args: dict[str, Any] = {"Bucket": self.s3_location.bucket, "Prefix": prefix}
        while True:
            page = self._call("list", prefix, lambda: self._client.list_objects_v2(**args))
            for obj in page.get("Contents", ()):
                yield obj["Key"], int(obj["Size"])
            if not page.get("IsTruncated"):
                return
            args["ContinuationToken"] = page["NextContinuationToken"]

    def _ensure_bucket(self) -> None:
        try:
            self._call("create", "", lambda: self._client.head_bucket(Bucket=self._bucket))
            return
        except BucketNotFound:
            pass
        args: dict[str, Any] = {"Bucket": self.s3_location.bucket}
        if self.region != DEFAULT_REGION:  # AWS rejects an explicit us-east-1 constraint
            args["CreateBucketConfiguration"] = {"LocationConstraint": self.region}

        def create_bucket() -> None:
            try:
                self._client.create_bucket(**args)
            except ClientError as err:
                # Another process may have created it between our HEAD and this PUT.
                if _code(err) != "BucketAlreadyOwnedByYou":
                    raise

        self._call("create", "", create_bucket)

    def _call(self, op: str, key: str, fn: Callable[[], T]) -> T:
        """Run `fn`, retrying transient failures within `self.retry`; raise RepoError."""
        start = time.monotonic()
        delays = self.retry.delays()
        attempt = 1
        while True:
            try:
                return fn()
            except (BotoCoreError, ClientError) as err:
                delay = next(delays)
                spent = time.monotonic() - start
                if (
                    not _is_transient(err)
                    or attempt >= self.retry.attempts
                    or spent + delay > self.retry.deadline
                ):
                    raise self._translate(err, op, key, attempt, spent) from None
            time.sleep(delay)
            attempt += 1

    def _translate(
        self, err: Exception, op: str, key: str, attempts: int, spent: float
    ) -> RepoError:
        """One line for the operator: what failed, where, and what to do.

        `key` is the object key, or "" for calls on the bucket itself.
        """
        repo, endpoint = self.s3_location, self.s3_location.endpoint_url
        where = f"{endpoint}/{self._bucket}/{key}" if key else str(repo)
        tries = f" after {attempts} attempts in {spent:.0f} s" if attempts > 1 else ""
        if isinstance(err, ClientError):
            code = _code(err)
            if code == "NoSuchBucket" or (not key and code in _NOT_FOUND_CODES):
                return BucketNotFound(
                    f"bucket {self._bucket!r} does not exist at {endpoint}: "
                    "check the repository URL, or create the repository first"
                )
            if code in _NOT_FOUND_CODES:
                return NotFound(f"{self._relpath(key)} not found in repository {repo}")
            if code in _CREDENTIAL_CODES:
                label = f"HTTP {code}" if code.isdigit() else code  # HEAD has no error body
                return BackendError(
                    f"S3 refused the credentials for {repo} ({label}): check "
                    "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE or the credentials file"
                )
            message = _one_line(str(err.response.get("Error", {}).get("Message", "")))
            return BackendError(f"S3 {op} of {where} failed{tries}: {code} {message}".rstrip())
        if isinstance(err, NoCredentialsError):
            return BackendError(
                f"no S3 credentials found for {repo}: set AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or give a credentials file"
            )
        if isinstance(err, SSLError):
            return BackendError(
                f"TLS with S3 endpoint {endpoint} failed ({_reason(err)}): "
                "check that it speaks HTTPS, and give its CA bundle if a private CA signed it"
            )
        if isinstance(err, BotoConnectionError):
            return BackendError(
                f"cannot reach S3 endpoint {endpoint} ({_reason(err)}){tries}: "
                "is the URL right and the server up?"
            )
        return BackendError(f"S3 {op} of {where} failed{tries}: {_one_line(str(err))}")
