"""The app's connection to one cluster: the kube client, the watch-fed store, the storage
locations it opens as buckets, and the write requests it makes (as the velero CLI makes them).

Every request that fails becomes a ClusterError whose message is one line: for a missing RBAC
right it names the verb and the resource, so the operator knows what to ask for.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kbrowse.cluster.store import ClusterStore, failure
from mover.errors import RepoError
from mover.kube.framework.client import Kube, KubeError, Obj, Resource, load_api_client
from mover.kube.resources import BSLS

if TYPE_CHECKING:
    from mover.kube.storage import SecretFiles
    from mover.velero.bsl import BucketView

IN_CLUSTER = "(in-cluster)"  # the picker's name for the pod's service account
# One connection per watched kind, and room for the requests of describes and actions.
POOL_SIZE = 32


class ClusterError(RepoError):
    """A request the cluster refused or could not take; the message is one line."""


@dataclass
class KubeTarget:
    """What to connect to: a kubeconfig (None: $KUBECONFIG or ~/.kube/config) and a context
    (None: its current one), and the namespace Velero (or the mover server) runs in."""

    kubeconfig: str | None = None
    context: str | None = None
    namespace: str = "velero"


def kube_contexts(kubeconfig: str | None = None) -> list[str]:
    """The contexts of the kubeconfig, current first; ``IN_CLUSTER`` inside a pod."""
    found = [IN_CLUSTER] if os.environ.get("KUBERNETES_SERVICE_HOST") else []
    path = kubeconfig or os.environ.get("KUBECONFIG") or os.path.expanduser("~/.kube/config")
    if not os.path.isfile(path):
        return found
    from kubernetes import (
        config,  # slow to import: only when there is a kubeconfig to read
    )

    try:
        contexts, current = config.list_kube_config_contexts(config_file=path)
    except (config.ConfigException, OSError, ValueError, TypeError):
        return found
    names = [c["name"] for c in contexts or [] if c.get("name")]
    if current and current.get("name") in names:
        names.remove(current["name"])
        names.insert(0, current["name"])
    return found + names


@dataclass
class ClusterSession:
    target: KubeTarget
    kube: Kube
    store: ClusterStore
    context_name: str
    # Opened with the first bucket: the storage code imports boto3 (a third of a second), which
    # the cluster screens do not need to show their rows.
    _files: SecretFiles | None = None
    _buckets: dict[str, BucketView] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)  # the buckets (opened by workers)
    _closed: bool = False

    @classmethod
    def connect(cls, target: KubeTarget) -> ClusterSession:
        """Load the configuration (no request yet: the store's watches make the first ones)."""
        in_cluster = target.context == IN_CLUSTER
        context = None if in_cluster else target.context
        try:
            api_client = load_api_client(target.kubeconfig, context, pool_size=POOL_SIZE, in_cluster=in_cluster)
        except KubeError as exc:
            raise ClusterError(exc.message) from None
        kube = Kube(api_client)
        name = IN_CLUSTER if in_cluster else (context or _current_context(target.kubeconfig))
        return cls(target, kube, ClusterStore(kube, target.namespace), name)

    @property
    def namespace(self) -> str:
        return self.target.namespace

    @property
    def label(self) -> str:
        return f"{self.context_name} · namespace {self.namespace}"

    def close(self) -> None:
        """Stop the watches and close what was opened (again: nothing more happens)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            buckets, self._buckets = list(self._buckets.values()), {}
        self.store.stop()
        for bucket in buckets:
            bucket.close()
        if self._files is not None:
            self._files.close()
        self.kube.api_client.close()

    # ---- requests --------------------------------------------------------------------------

    def call(self, verb: str, res: Resource, request: Any) -> Any:
        """``request()`` (a Kube call), its refusal turned into one line about ``verb``."""
        try:
            return request()
        except KubeError as exc:
            raise ClusterError(failure(exc, verb, res, self.namespace)) from None

    def create(self, res: Resource, obj: Obj) -> Obj:
        return self.call("create", res, lambda: self.kube.create(res, self.namespace, obj))

    def patch(self, res: Resource, name: str, patch: Obj) -> Obj:
        return self.call("patch", res, lambda: self.kube.patch(res, self.namespace, name, patch))

    def bucket(self, location: str) -> BucketView:
        """The storage location ``location`` opened as a bucket (kept open for the session)."""
        from mover.kube.storage import SecretFiles, open_location
        from mover.velero.bsl import BucketView
        from mover.velero.repopassword import standard_sources

        with self._lock:
            if location in self._buckets:
                return self._buckets[location]
            if self._files is None:
                self._files = SecretFiles()
            bsl = self.store.raw("locations", location) or \
                self.call("get", BSLS, lambda: self.kube.get(BSLS, self.namespace, location))
            t = self.target
            passwords = standard_sources(namespace=self.namespace, kubeconfig=t.kubeconfig,
                                         context=None if t.context == IN_CLUSTER else t.context)
            bucket = self._buckets[location] = BucketView(open_location(self.kube, bsl, self._files), passwords)
            return bucket


def _current_context(kubeconfig: str | None) -> str:
    contexts = kube_contexts(kubeconfig)
    return next((c for c in contexts if c != IN_CLUSTER), "current context")
