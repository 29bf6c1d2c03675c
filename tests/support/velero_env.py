"""A Velero-shaped cluster for tests: the API double with the velero.io CRDs, a storage
location on the SeaweedFS bucket (credentials in a secret, Velero's format), the mover server
running in a thread with short periods, and a clock tests can move.

Nothing here reaches into product code: the server is built with its public options, as
`mover server` builds it.
"""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from mover.deploy import crds
from mover.deploy.apply import apply
from mover.kube.framework.client import Kube, KubeError, Obj, Resource
from mover.kube.resources import BSLS, NAMESPACES, SECRETS
from mover.kube.server import Server, ServerOptions
from tests.support.s3server import S3Server

NS = "velero"
FINAL = ("Completed", "PartiallyFailed", "Failed", "FailedValidation")

CONFIGMAPS = Resource("", "v1", "configmaps", True, "ConfigMap")
SERVICES = Resource("", "v1", "services", True, "Service")
PVCS = Resource("", "v1", "persistentvolumeclaims", True, "PersistentVolumeClaim")
PVS = Resource("", "v1", "persistentvolumes", False, "PersistentVolume")
DEPLOYMENTS = Resource("apps", "v1", "deployments", True, "Deployment")
SERVICE_ACCOUNTS = Resource("", "v1", "serviceaccounts", True, "ServiceAccount")


class FakeClock:
    """A UTC clock that moves only when told to."""

    def __init__(self, start: datetime) -> None:
        self._now = start
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, **delta: float) -> datetime:
        with self._lock:
            self._now += timedelta(**delta)
            return self._now


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def install(kube: Kube) -> None:
    """The CRDs and the server's namespace, as `mover install` creates them."""
    apply(kube, crds.load())
    kube.create(NAMESPACES, None, {"metadata": {"name": NS}})


def credentials_secret(kube: Kube, s3: S3Server, name: str = "cloud-credentials") -> dict[str, str]:
    """A secret in Velero's credentials-file format; returns the BSL's credential selector."""
    text = f"[default]\naws_access_key_id={s3.access_key}\naws_secret_access_key={s3.secret_key}\n"
    kube.create(SECRETS, NS, {"metadata": {"name": name},
                              "data": {"cloud": base64.b64encode(text.encode()).decode()}})
    return {"name": name, "key": "cloud"}


def s3_location(kube: Kube, s3: S3Server, bucket: str, name: str = "default", *, endpoint: str | None = None,
                prefix: str = "", default: bool = True, credential: dict[str, str] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "provider": "aws", "default": default,
        "objectStorage": {"bucket": bucket, **({"prefix": prefix} if prefix else {})},
        "config": {"region": s3.region, "s3Url": endpoint or s3.endpoint_url, "s3ForcePathStyle": "true"},
    }
    if credential:
        spec["credential"] = credential
    return kube.create(BSLS, NS, {"apiVersion": "velero.io/v1", "kind": "BackupStorageLocation",
                                  "metadata": {"name": name}, "spec": spec})


def velero_object(kind: str, name: str, spec: dict[str, Any], **meta: Any) -> dict[str, Any]:
    return {"apiVersion": "velero.io/v1", "kind": kind, "metadata": {"name": name, **meta}, "spec": spec}


def fast_options(**overrides: Any) -> ServerOptions:
    """Periods short enough that tests wait fractions of a second, not minutes."""
    base = {"namespace": NS, "resync": 0.2, "validation_frequency": timedelta(seconds=1),
            "sync_period": timedelta(seconds=1), "watch_seconds": 5}
    return ServerOptions(**{**base, **overrides})


@contextmanager
def running_server(kube: Kube, **overrides: Any) -> Iterator[Server]:
    server = Server(kube, fast_options(**overrides)).start()
    try:
        yield server
    finally:
        server.stop(grace=5)


def wait_for(get: Callable[[], Any], done: Callable[[Any], bool], timeout: float = 20.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = get()
        if done(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or 'a condition'}; last value: {value!r}")
        time.sleep(0.05)


def phase(obj: dict[str, Any] | None) -> str:
    return ((obj or {}).get("status") or {}).get("phase", "")


def wait_phase(kube: Kube, res: Resource, name: str, phases: tuple[str, ...] = FINAL,
               timeout: float = 20.0) -> dict[str, Any]:
    return wait_for(lambda: kube.get_or_none(res, NS, name), lambda o: phase(o) in phases, timeout,
                    f"{res.kind} {name} to reach {'/'.join(phases)}")


class Watch:
    """Every change of one resource in the server's namespace, as a watch delivers them."""

    def __init__(self, kube: Kube, resource: Resource) -> None:
        self.events: list[Obj] = []
        self._stream = kube.watch(resource, NS, kube.list(resource, NS)["resourceVersion"], 60)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for event in self._stream:
                self.events.append(event["object"])
        except KubeError:
            pass

    def close(self) -> list[Obj]:
        self._stream.close()
        self._thread.join(5)
        return self.events
