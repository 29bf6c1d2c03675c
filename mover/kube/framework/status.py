"""Writing an object's status.

Through the status subresource where the CRD has one (ours do); Velero's own CRDs have none,
so on a cluster installed by Velero the status is written through the object itself. A
resourceVersion makes the write conditional: a controller claiming a New backup either wins
or gets a 409, never both servers at once.
"""

from __future__ import annotations

from typing import Any

from mover.kube.framework.client import Kube, KubeError, Obj, Resource


def patch_status(kube: Kube, res: Resource, namespace: str, name: str, status: dict[str, Any],
                 resource_version: str | None = None) -> Obj:
    body: dict[str, Any] = {"status": status}
    if resource_version:
        body["metadata"] = {"resourceVersion": resource_version}
    if res not in kube.without_status_subresource:
        try:
            return kube.patch(res, namespace, name, body, subresource="status")
        except KubeError as exc:
            # A 404 for the subresource while the object exists: the CRD has no status subresource.
            if not exc.not_found or kube.get_or_none(res, namespace, name) is None:
                raise
            kube.without_status_subresource.add(res)
    return kube.patch(res, namespace, name, body)
