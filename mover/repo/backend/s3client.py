"""One S3 location (bucket + prefix) on boto3: restic's URL forms, credentials, retries, errors.

Shared by the repository backend (`mover.repo.backend.s3`) and Velero's object store
(`mover.velero.objectstore`), so both read the same credentials (environment, AWS profiles,
shared credentials files, Velero's credentials file), retry the same way and report the same
one-line errors.

One boto3 client per `S3Client`, shared by all threads (clients are thread-safe, sessions are
not). Every call goes through `S3Client.call`, which retries transient failures (dropped
connections, 5xx, throttling) with exponential backoff within a bounded time, and turns every
botocore error into a one-line `RepoError` for the operator.
"""

from __future__ import annotations

import os
import posixpath
import random
import re
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass, field
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

from mover.errors import BackendError, NotFound, RepoError

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
    """The bucket does not exist (distinct from a missing object)."""


@dataclass(frozen=True)
class S3Location:
    """Where objects live: ``endpoint_url`` is ``scheme://host[:port]``."""

    endpoint_url: str
    bucket: str
    prefix: str  # without leading or trailing "/"; "" for the bucket root
    scheme: str  # "http" or "https"

    @property
    def host(self) -> str:
        """Host name without port."""
        return urlsplit(self.endpoint_url).hostname or ""

    def join(self, relpath: str) -> str:
        """The object key of ``relpath`` below the prefix."""
        return f"{self.prefix}/{relpath}" if self.prefix else relpath

    def child(self, relpath: str) -> S3Location:
        """The location of a sub-prefix, e.g. ``restic/<namespace>`` below a BSL."""
        return S3Location(self.endpoint_url, self.bucket, _clean_prefix(self.join(relpath)),
                          self.scheme)

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


@dataclass(frozen=True)
class S3Options:
    """How to reach and sign for a location; the same for a BSL and the repositories in it."""

    region: str | None = None
    path_style: bool | None = None  # None: path-style except on AWS
    ca_bundle: str | os.PathLike[str] | None = None
    insecure_tls: bool = False
    profile: str | None = None
    credentials_file: str | os.PathLike[str] | None = None  # AWS or Velero style
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    max_connections: int = 64
    connect_timeout: float = 5.0
    read_timeout: float = 60.0


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


def _no_answer(err: Exception) -> bool:
    """The endpoint did not answer at all (as opposed to answering with an error)."""
    return isinstance(err, (BotoConnectionError, HTTPClientError)) and not isinstance(
        err, SSLError
    )


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _reason(err: Exception) -> str:
    """The useful part of a connection error, e.g. "[Errno 111] Connection refused"."""
    cause = getattr(err, "kwargs", {}).get("error", err)
    found = _ERRNO_TEXT.findall(str(cause))
    return found[-1].strip() if found else _one_line(str(err))


class S3Client:
    """The objects below one S3 location; `noun` names it in messages ("repository", ...)."""

    def __init__(
        self, location: S3Location, options: S3Options | None = None, noun: str = "repository"
    ) -> None:
        self.location = location
        self.options = options or S3Options()
        self.noun = noun
        self.retry = self.options.retry
        self.region = resolve_region(self.options.region, location)
        # Set once an operation has spent its whole retry budget on an endpoint that does not
        # answer, cleared by the next success. While set, operations try once: a backup with
        # dozens of pending uploads then fails within one deadline instead of one per upload.
        self._endpoint_down = False
        opts = self.options
        config = Config(
            **_checksum_options(location),
            region_name=self.region,
            signature_version="s3v4",
            s3={"addressing_style": _addressing_style(opts.path_style, location)},
            retries={"max_attempts": self.retry.sdk_retries, "mode": self.retry.sdk_mode},
            # Enough pooled connections for the archiver's concurrent uploads; beyond the
            # pool size urllib3 would discard connections and reconnect.
            max_pool_connections=opts.max_connections,
            connect_timeout=opts.connect_timeout,
            read_timeout=opts.read_timeout,
            tcp_keepalive=True,
        )
        verify: bool | str | None = None  # botocore's default CA bundle
        if opts.insecure_tls:
            verify = False
        elif opts.ca_bundle is not None:
            verify = os.fspath(opts.ca_bundle)
        try:
            session = _make_session(opts.profile, opts.credentials_file)
            self.client = session.client(
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

    @property
    def bucket(self) -> str:
        return self.location.bucket

    def key(self, relpath: str) -> str:
        return self.location.join(relpath)

    def relpath(self, key: str) -> str:
        prefix = self.location.prefix
        return key[len(prefix) + 1 :] if prefix else key

    # -- object operations (keys are full object keys) ----------------------------------

    def get(self, key: str, offset: int = 0, length: int | None = None) -> bytes:
        """The object's bytes (a range when asked), read with retries; NotFound when missing."""
        return self.call("load", key, lambda: self._get(key, offset, length))

    def put(self, key: str, data: bytes) -> None:
        self.call("save", key, lambda: self.client.put_object(Bucket=self.bucket, Key=key, Body=data))

    def size(self, key: str) -> int:
        """The object's size; NotFound when missing, BucketNotFound when the bucket is."""
        try:
            head = self.call("stat", key, lambda: self.client.head_object(Bucket=self.bucket, Key=key))
        except NotFound:
            # HEAD answers a bare 404 for a missing bucket too; tell the two apart.
            self.call("stat", "", lambda: self.client.head_bucket(Bucket=self.bucket))
            raise
        return int(head["ContentLength"])

    def delete(self, key: str) -> None:
        try:
            self.call("remove", key, lambda: self.client.delete_object(Bucket=self.bucket, Key=key))
        except NotFound:  # S3 answers 204 for missing keys; some servers say NoSuchKey
            pass

    def list(self, prefix: str) -> Iterator[tuple[str, int]]:
        """Every (key, size) under `prefix`, one retried ListObjectsV2 call per page."""
        for page in self._pages(prefix, None):
            for obj in page.get("Contents", ()):
                yield obj["Key"], int(obj["Size"])

    def any_key(self, prefix: str) -> bool:
        """Whether some object's key starts with `prefix` (one request, one key at most)."""
        page = self.call("list", prefix, lambda: self.client.list_objects_v2(
            Bucket=self.bucket, Prefix=prefix, MaxKeys=1))
        return bool(page.get("Contents"))

    def list_dirs(self, prefix: str) -> Iterator[str]:
        """The "folders" right under `prefix` (which ends in "/"), as full key prefixes."""
        for page in self._pages(prefix, "/"):
            for common in page.get("CommonPrefixes", ()):
                yield common["Prefix"]

    def ensure_bucket(self) -> None:
        try:
            self.call("create", "", lambda: self.client.head_bucket(Bucket=self.bucket))
            return
        except BucketNotFound:
            pass
        args: dict[str, Any] = {"Bucket": self.bucket}
        if self.region != DEFAULT_REGION:  # AWS rejects an explicit us-east-1 constraint
            args["CreateBucketConfiguration"] = {"LocationConstraint": self.region}

        def create_bucket() -> None:
            try:
                self.client.create_bucket(**args)
            except ClientError as err:
                # Another process may have created it between our HEAD and this PUT.
                if _code(err) != "BucketAlreadyOwnedByYou":
                    raise

        self.call("create", "", create_bucket)

    def close(self) -> None:
        self.client.close()

    # -- helpers ---------------------------------------------------------------------------

    def _get(self, key: str, offset: int, length: int | None) -> bytes:
        """One ranged GET, body included (so a connection dropped mid-body is retried)."""
        ranged = offset > 0 or length is not None
        args: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if ranged:
            end = "" if length is None else str(offset + length - 1)
            args["Range"] = f"bytes={offset}-{end}"
        try:
            resp = self.client.get_object(**args)
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

    def _pages(self, prefix: str, delimiter: str | None) -> Iterator[dict[str, Any]]:
        args: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix}
        if delimiter:
            args["Delimiter"] = delimiter
        while True:
            page = self.call("list", prefix, lambda: self.client.list_objects_v2(**args))
            yield page
            if not page.get("IsTruncated"):
                return
            args["ContinuationToken"] = page["NextContinuationToken"]

    def call(self, op: str, key: str, fn: Callable[[], T]) -> T:
        """Run `fn`, retrying transient failures within `self.retry`; raise RepoError.

        `key` is the object key, or "" for calls on the bucket itself.
        """
        start = time.monotonic()
        delays = self.retry.delays()
        attempt = 1
        while True:
            try:
                result = fn()
                self._endpoint_down = False
                return result
            except (BotoCoreError, ClientError) as err:
                delay = next(delays)
                spent = time.monotonic() - start
                if (
                    not _is_transient(err)
                    or attempt >= self.retry.attempts
                    or spent + delay > self.retry.deadline
                    or (self._endpoint_down and _no_answer(err))
                ):
                    if _no_answer(err):
                        self._endpoint_down = True
                    raise self._translate(err, op, key, attempt, spent) from None
            time.sleep(delay)
            attempt += 1

    def _translate(
        self, err: Exception, op: str, key: str, attempts: int, spent: float
    ) -> RepoError:
        """One line for the operator: what failed, where, and what to do."""
        loc, endpoint, noun = self.location, self.location.endpoint_url, self.noun
        where = f"{endpoint}/{self.bucket}/{key}" if key else str(loc)
        tries = f" after {attempts} attempts in {spent:.0f} s" if attempts > 1 else ""
        if isinstance(err, ClientError):
            code = _code(err)
            if code == "NoSuchBucket" or (not key and code in _NOT_FOUND_CODES):
                return BucketNotFound(
                    f"bucket {self.bucket!r} does not exist at {endpoint}: "
                    f"check the {noun} URL, or create the {noun} first"
                )
            if code in _NOT_FOUND_CODES:
                return NotFound(f"{self.relpath(key)} not found in {noun} {loc}")
            if code in _CREDENTIAL_CODES:
                label = f"HTTP {code}" if code.isdigit() else code  # HEAD has no error body
                return BackendError(
                    f"S3 refused the credentials for {loc} ({label}): check "
                    "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE or the credentials file"
                )
            message = _one_line(str(err.response.get("Error", {}).get("Message", "")))
            return BackendError(f"S3 {op} of {where} failed{tries}: {code} {message}".rstrip())
        if isinstance(err, NoCredentialsError):
            return BackendError(
                f"no S3 credentials found for {loc}: set AWS_ACCESS_KEY_ID and "
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
