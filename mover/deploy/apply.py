"""Apply manifests through the API: create what is missing, update what exists (keeping the
server's resourceVersion), and wait for CRDs to be Established before creating their objects."""

from __future__ import annotations

from collections.abc import Callable

from mover.deploy.manifests import Manifest
from mover.kube.framework.client import Kube, KubeError, Resource
from mover.kube.resources import wait_established


def apply(kube: Kube, docs: list[Manifest], *, create_only: Callable[[Manifest], bool] = lambda d: False,
          report: Callable[[str, Manifest], None] = lambda action, doc: None, timeout: float = 60.0) -> None:
    """``report(action, doc)`` hears "created", "configured", "unchanged" or "kept" per object."""
    resources: dict[tuple[str, str], Resource] = {}
    for doc in docs:
        key = (doc["apiVersion"], doc["kind"])
        if key not in resources:
            resources = _resource_map(kube)
        if key not in resources:
            raise KubeError(404, "NotFound", f"the server does not serve {doc['kind']} ({doc['apiVersion']})")
        res = resources[key]
        report(_apply_one(kube, res, doc, create_only(doc)), doc)
        if doc["kind"] == "CustomResourceDefinition":
            wait_established(kube, doc["metadata"]["name"], timeout)


def _resource_map(kube: Kube) -> dict[tuple[str, str], Resource]:
    return {(r.api_version, r.kind): r for r in kube.discover()}


def _apply_one(kube: Kube, res: Resource, doc: Manifest, create_only: bool) -> str:
    namespace = doc["metadata"].get("namespace")
    for _ in range(5):
        existing = kube.get_or_none(res, namespace, doc["metadata"]["name"])
        if existing is None:
            try:
                kube.create(res, namespace, doc)
                return "created"
            except KubeError as exc:
                if exc.already_exists:
                    continue
                raise
        if create_only:
            return "kept"
        desired = {**doc, "metadata": {**doc["metadata"], "resourceVersion": existing["metadata"]["resourceVersion"]}}
        if "status" in existing:
            desired["status"] = existing["status"]
        try:
            updated = kube.replace(res, namespace, desired)
        except KubeError as exc:
            if exc.conflict:
                continue
            raise
        same = updated["metadata"]["resourceVersion"] == existing["metadata"]["resourceVersion"]
        return "unchanged" if same else "configured"
    raise KubeError(409, "Conflict", f"{doc['kind']} {doc['metadata']['name']} kept changing; try again")
