"""Opening a BackupStorageLocation's object store, as Velero's object-store plugins do.

Provider ``aws`` (also ``velero.io/aws``) takes Velero's AWS plugin config: ``s3Url`` (an
S3-compatible endpoint; AWS itself when empty), ``region``, ``s3ForcePathStyle``,
``insecureSkipTLSVerify``, ``profile``, and the CA from ``objectStorage.caCert(Ref)``.
Credentials come from ``spec.credential`` (a secret in Velero's credentials-file format,
an AWS shared-credentials file); without one, from the server's environment. Provider
``local`` is a directory (``objectStorage.bucket`` is its path) for single-machine use.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import tempfile
import threading
from typing import Any

from mover.errors import RepoError
from mover.kube.framework.client import Kube, KubeError, Obj
from mover.kube.resources import SECRETS
from mover.repo.backend.s3client import RetryPolicy, S3Options, parse_s3_url
from mover.velero.objectstore import LocalStore, ObjectStore, S3Store

AWS_PROVIDERS = ("aws", "velero.io/aws")
LOCAL_PROVIDERS = ("local", "velero.io/local")


class LocationError(RepoError):
    """The location's spec cannot be used (unknown provider, missing secret, ...)."""


def _true(value: str | None) -> bool:
    return (value or "").strip().lower() in ("true", "1", "yes")


class SecretFiles:
    """Secret values written to private files, because boto3 reads credentials and CA bundles
    from files (Velero does the same with its credential secrets). Named by content, so an
    unchanged secret is not rewritten for every backup."""

    def __init__(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="mover-credentials-")

    def write(self, data: bytes) -> str:
        path = os.path.join(self.dir, hashlib.sha256(data).hexdigest()[:32])
        if not os.path.exists(path):
            # A temporary file of its own: two threads may write the same secret at once.
            fd, tmp = tempfile.mkstemp(dir=self.dir)  # mode 0600
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        return path

    def close(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


def _secret_value(kube: Kube, namespace: str, selector: dict[str, Any], what: str) -> bytes:
    name, key = selector.get("name", ""), selector.get("key", "")
    try:
        secret = kube.get(SECRETS, namespace, name)
    except KubeError as exc:
        raise LocationError(f"cannot read {what} secret {namespace}/{name}: {exc.message}") from None
    value = (secret.get("data") or {}).get(key)
    if value is None:
        raise LocationError(f"{what} secret {namespace}/{name} has no key {key!r}")
    return base64.b64decode(value)


def open_location(kube: Kube, bsl: Obj, files: SecretFiles, retry: RetryPolicy | None = None) -> ObjectStore:
    spec = bsl.get("spec") or {}
    namespace = bsl["metadata"]["namespace"]
    provider = spec.get("provider", "")
    storage = spec.get("objectStorage") or {}
    bucket, prefix = storage.get("bucket", ""), (storage.get("prefix") or "").strip("/")
    if not bucket:
        raise LocationError("objectStorage.bucket is empty")
    if provider in LOCAL_PROVIDERS:
        return LocalStore(os.path.join(bucket, prefix) if prefix else bucket)
    if provider not in AWS_PROVIDERS:
        raise LocationError(f"provider {provider!r} is not supported (use aws for S3 and S3-compatible "
                            "storage, or local for a directory)")
    config = spec.get("config") or {}
    region = config.get("region") or None
    endpoint = (config.get("s3Url") or "").rstrip("/") or \
        f"https://s3.{region or 'us-east-1'}.amazonaws.com"
    ca_file = None
    if storage.get("caCertRef"):
        ca_file = files.write(_secret_value(kube, namespace, storage["caCertRef"], "CA certificate"))
    elif storage.get("caCert"):
        ca_file = files.write(base64.b64decode(storage["caCert"]))
    credentials_file = None
    if spec.get("credential"):
        credentials_file = files.write(_secret_value(kube, namespace, spec["credential"], "credential"))
    options = S3Options(
        region=region,
        path_style=_true(config.get("s3ForcePathStyle")) or None,
        insecure_tls=_true(config.get("insecureSkipTLSVerify")),
        ca_bundle=ca_file,
        profile=config.get("profile") or None,
        credentials_file=credentials_file,
        retry=retry or RetryPolicy(),
    )
    tail = f"/{prefix}" if prefix else ""
    return S3Store(parse_s3_url(f"s3:{endpoint}/{bucket}{tail}"), options)


class StoreCache:
    """Open object stores, one per location spec (and credentials): making an S3 client costs
    tens of milliseconds, and controllers need a location's store for every backup, restore,
    validation and sync. Stores are shared between threads; callers must not close them."""

    def __init__(self) -> None:
        self.files = SecretFiles()
        self._lock = threading.Lock()
        self._stores: dict[tuple[Any, ...], ObjectStore] = {}

    def open(self, kube: Kube, bsl: Obj, retry: RetryPolicy | None = None) -> ObjectStore:
        meta, spec = bsl["metadata"], bsl.get("spec") or {}
        # A rotated secret keeps the location's generation: its resourceVersion is part of the key.
        secrets = tuple(_secret_version(kube, meta["namespace"], ref)
                        for ref in (spec.get("credential"), (spec.get("objectStorage") or {}).get("caCertRef"))
                        if ref)
        key = (meta.get("uid"), meta.get("generation"), secrets, retry)
        with self._lock:
            if key in self._stores:
                return self._stores[key]
        store = open_location(kube, bsl, self.files, retry)
        with self._lock:
            stale = [k for k in self._stores if k[0] == key[0] and k[3] == retry and k != key]
            for k in stale:
                self._stores.pop(k).close()
            kept = self._stores.setdefault(key, store)
        if kept is not store:
            store.close()
        return kept

    def close(self) -> None:
        with self._lock:
            stores, self._stores = list(self._stores.values()), {}
        for store in stores:
            store.close()
        self.files.close()


def _secret_version(kube: Kube, namespace: str, selector: dict[str, Any]) -> str:
    secret = kube.get_or_none(SECRETS, namespace, selector.get("name", ""))
    return (secret or {}).get("metadata", {}).get("resourceVersion", "")


def download_url(store: ObjectStore, key: str, ttl_seconds: int) -> str:
    """A URL the operator's client can fetch the object from, without credentials: a
    pre-signed GET for S3 (what Velero's DownloadRequest hands out), file:// for a directory."""
    if isinstance(store, S3Store):
        return store.s3.client.generate_presigned_url(
            "get_object", Params={"Bucket": store.s3.bucket, "Key": store.s3.key(key)}, ExpiresIn=ttl_seconds)
    if isinstance(store, LocalStore):
        return "file://" + os.path.join(store.root, *key.split("/"))
    raise LocationError(f"cannot make a download URL for {store.location()}")
