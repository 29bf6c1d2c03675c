"""Talking to a Kubernetes API server: configuration (in-cluster or kubeconfig) and plain-dict
REST calls for any resource, built on the official client's transport (auth, TLS, proxies).

Objects travel as the JSON the server speaks, not as the typed models: the backup needs every
field of every kind (typed models drop what they do not know), and custom resources have no
models anyway.
"""

from __future__ import annotations

import builtins
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from kubernetes import client, config
from kubernetes.client.rest import ApiException
from kubernetes.watch.watch import iter_resp_lines

Obj = dict[str, Any]

MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
# How long a single request may take before the client gives up (connect, read), in seconds.
REQUEST_TIMEOUT = (10, 60)


@dataclass(frozen=True)
class Resource:
    """A served resource: what a URL needs, and what discovery tells about it."""

    group: str
    version: str
    plural: str
    namespaced: bool
    kind: str = ""
    # From discovery; not part of a resource's identity.
    verbs: tuple[str, ...] = field(default=(), compare=False)
    aliases: tuple[str, ...] = field(default=(), compare=False)  # singular name, short names

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def qualified(self) -> str:
        """``plural.group`` (``plural`` for the core group): the name Velero's filters and tarball use."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    def path(self, namespace: str | None = None, name: str | None = None, subresource: str | None = None) -> str:
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace is not None:
            base += f"/namespaces/{quote(namespace, safe='')}"
        base += f"/{self.plural}"
        if name is not None:
            base += f"/{quote(name, safe='')}"
        if subresource is not None:
            base += f"/{subresource}"
        return base


class KubeError(Exception):
    """A request the server refused, or could not be reached for."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status = status  # 0 when the server could not be reached
        self.reason = reason
        self.message = message

    @property
    def not_found(self) -> bool:
        return self.status == 404

    @property
    def conflict(self) -> bool:
        """A stale resourceVersion (not AlreadyExists, which is also a 409)."""
        return self.status == 409 and self.reason != "AlreadyExists"

    @property
    def already_exists(self) -> bool:
        return self.status == 409 and self.reason == "AlreadyExists"

    @property
    def gone(self) -> bool:
        return self.status == 410

    @classmethod
    def from_api_exception(cls, exc: ApiException) -> KubeError:
        reason, message = exc.reason or "", str(exc.reason or "")
        try:
            body = json.loads(exc.body or b"")
            reason, message = body.get("reason", reason), body.get("message", message)
        except (ValueError, TypeError, AttributeError):
            pass
        return cls(exc.status or 0, reason, message)


def load_api_client(kubeconfig: str | None = None, context: str | None = None,
                    pool_size: int | None = None, in_cluster: bool = False) -> client.ApiClient:
    """In a pod with no kubeconfig asked for (or ``in_cluster``): the service account.
    Otherwise the kubeconfig (``--kubeconfig``, then ``$KUBECONFIG``, then ``~/.kube/config``),
    as kubectl chooses. ``pool_size``: connections kept per server, for callers holding many
    watches open at once (the default is five per CPU; beyond it urllib3 opens and drops a
    connection per request)."""
    configuration = client.Configuration()
    if pool_size is not None:
        configuration.connection_pool_maxsize = pool_size
    if in_cluster or (kubeconfig is None and context is None and os.environ.get("KUBERNETES_SERVICE_HOST")
                      and not os.environ.get("KUBECONFIG")):
        try:
            config.load_incluster_config(client_configuration=configuration)
        except config.ConfigException as exc:
            raise KubeError(0, "NoConfiguration", f"cannot use the pod's service account: {exc}") from None
        return client.ApiClient(configuration)
    path = kubeconfig or os.environ.get("KUBECONFIG") or os.path.expanduser("~/.kube/config")
    try:
        return config.new_client_from_config(config_file=path, context=context, client_configuration=configuration)
    except (config.ConfigException, OSError) as exc:
        raise KubeError(0, "NoConfiguration", f"cannot load kubeconfig {path}: {exc}") from None


class Kube:
    """Dict-in, dict-out calls on any resource. Thread-safe: the official client pools connections."""

    def __init__(self, api_client: client.ApiClient) -> None:
        self.api_client = api_client
        # Custom resources whose CRD has no status subresource (Velero's own CRDs): see status.py.
        self.without_status_subresource: set[Resource] = set()

    # One request

    def request(self, method: str, path: str, *, query: dict[str, Any] | None = None, body: Any = None,
                content_type: str = "application/json", timeout: Any = REQUEST_TIMEOUT) -> Any:
        response = self._open(method, path, query, body, content_type, timeout)
        try:
            data = response.data
        finally:
            response.release_conn()
        return json.loads(data) if data else None

    def _open(self, method: str, path: str, query: dict[str, Any] | None, body: Any, content_type: str,
              timeout: Any) -> Any:
        params = [(k, v) for k, v in (query or {}).items() if v is not None]
        try:
            return self.api_client.call_api(
                path, method, query_params=params, body=body, auth_settings=["BearerToken"],
                header_params={"Accept": "application/json", "Content-Type": content_type},
                _preload_content=False, _request_timeout=timeout)
        except ApiException as exc:
            raise KubeError.from_api_exception(exc) from None
        except Exception as exc:  # urllib3: refused, reset, timed out: "not reachable now"
            raise KubeError(0, "Unreachable", f"{method} {path}: {exc}") from None

    # Verbs

    def get(self, res: Resource, namespace: str | None, name: str) -> Obj:
        return self.request("GET", res.path(namespace, name))

    def get_or_none(self, res: Resource, namespace: str | None, name: str) -> Obj | None:
        try:
            return self.get(res, namespace, name)
        except KubeError as exc:
            if exc.not_found:
                return None
            raise

    def list(self, res: Resource, namespace: str | None = None, *, label_selector: str | None = None,
             field_selector: str | None = None, page_size: int = 500) -> Obj:
        """Every item (following ``continue``), with the list's resourceVersion. Typed lists omit
        each item's apiVersion and kind; they are filled in so items stand alone."""
        query: dict[str, Any] = {"labelSelector": label_selector, "fieldSelector": field_selector,
                                 "limit": page_size}
        items: list[Obj] = []
        while True:
            page = self.request("GET", res.path(namespace), query=query)
            items += page.get("items") or []
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                break
            query["continue"] = token
        for item in items:
            item.setdefault("apiVersion", res.api_version)
            item.setdefault("kind", res.kind or page.get("kind", "").removesuffix("List"))
        return {"items": items, "resourceVersion": (page.get("metadata") or {}).get("resourceVersion", "")}

    def create(self, res: Resource, namespace: str | None, body: Obj) -> Obj:
        return self.request("POST", res.path(namespace), body=body)

    def replace(self, res: Resource, namespace: str | None, body: Obj, subresource: str | None = None) -> Obj:
        return self.request("PUT", res.path(namespace, body["metadata"]["name"], subresource), body=body)

    def patch(self, res: Resource, namespace: str | None, name: str, patch: Any, *,
              subresource: str | None = None, content_type: str = MERGE_PATCH) -> Obj:
        return self.request("PATCH", res.path(namespace, name, subresource), body=patch, content_type=content_type)

    def delete(self, res: Resource, namespace: str | None, name: str, *, propagation: str | None = None,
               uid: str | None = None) -> None:
        body: Obj = {"kind": "DeleteOptions", "apiVersion": "v1"}
        if propagation:
            body["propagationPolicy"] = propagation
        if uid:
            body["preconditions"] = {"uid": uid}
        self.request("DELETE", res.path(namespace, name), body=body)

    def watch(self, res: Resource, namespace: str | None, resource_version: str, timeout_seconds: int,
              label_selector: str | None = None) -> WatchStream:
        query = {"watch": "true", "resourceVersion": resource_version, "allowWatchBookmarks": "true",
                 "timeoutSeconds": timeout_seconds, "labelSelector": label_selector}
        # The read timeout outlasts the server's own timeout, so a silent dead connection ends too.
        response = self._open("GET", res.path(namespace), query, None, "application/json",
                              (10, timeout_seconds + 15))
        return WatchStream(response)

    # Discovery

    def server_version(self) -> Obj:
        return self.request("GET", "/version")

    def discover(self) -> builtins.list[Resource]:  # `list` here is the method above
        """Every resource the server serves (not subresources), each once: in its group's
        preferred version, or in the first version that has it (client-go's
        ServerPreferredResources), so a kind served only in v2alpha1 is not missed."""
        found: dict[tuple[str, str], Resource] = {}
        groups = [("", ["v1"])] + [
            (g["name"], _version_order(g)) for g in self.request("GET", "/apis").get("groups") or []]
        for group, versions in groups:
            for version in versions:
                path = f"/apis/{group}/{version}" if group else f"/api/{version}"
                for res in _resources(group, version, self.request("GET", path)):
                    found.setdefault((group, res.plural), res)
        return list(found.values())


def _version_order(group: Obj) -> list[str]:
    versions = [v["version"] for v in group.get("versions") or []]
    preferred = (group.get("preferredVersion") or {}).get("version")
    return ([preferred] if preferred else []) + [v for v in versions if v != preferred]


def _resources(group: str, version: str, document: Obj) -> list[Resource]:
    return [Resource(group, version, r["name"], bool(r.get("namespaced")), r.get("kind", ""),
                     tuple(r.get("verbs") or ()),
                     tuple(a for a in [r.get("singularName"), *(r.get("shortNames") or []),
                                       r.get("kind", "").lower()] if a))
            for r in document.get("resources") or [] if "/" not in r["name"]]


class WatchStream:
    """The events of one watch request, until the server ends it or ``close()`` is called
    (from any thread: that is how a controller stops a watch blocked in a read)."""

    def __init__(self, response: Any) -> None:
        self._response = response
        self._closed = False

    def __iter__(self) -> Iterator[Obj]:
        try:
            for line in iter_resp_lines(self._response):
                if line:
                    yield json.loads(line)
        except Exception as exc:  # a connection cut mid-stream: the caller resumes
            if not self._closed:
                raise KubeError(0, "WatchBroken", f"watch stream broken: {exc}") from None
        finally:
            self.close()

    def close(self) -> None:
        self._closed = True
        try:
            self._response.shutdown()  # unblocks a read in another thread
        except Exception:  # already closed, or nothing to shut down
            pass
        self._response.release_conn()
