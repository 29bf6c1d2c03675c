"""What the source picker can offer without being told: repositories from the environment and
the demo; the kubeconfig's contexts (clusters) and the storage locations found there."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from mover.errors import RepoError

DEMO_DIR = "kbrowse-demo"


@dataclass
class Source:
    label: str
    location: str
    password: str | None = None  # known without asking (a password file, $RESTIC_PASSWORD)
    context: str | None = None  # a cluster: the kubeconfig context (or IN_CLUSTER)
    bsl: str | None = None  # a storage location of that cluster (or, with no context, a
    # bucket directory), opened as a bucket


def _read_password(path: str | Path) -> str | None:
    try:
        pw = Path(path).read_text(encoding="utf-8").rstrip("\r\n")
    except OSError:
        return None
    return pw or None


def find_sources(env: Mapping[str, str] | None = None, cwd: str | Path = ".") -> list[Source]:
    env = os.environ if env is None else env
    found = []
    loc = env.get("RESTIC_REPOSITORY")
    if loc:
        pw = None
        if env.get("RESTIC_PASSWORD_FILE"):
            pw = _read_password(env["RESTIC_PASSWORD_FILE"])
        elif env.get("RESTIC_PASSWORD"):
            pw = env["RESTIC_PASSWORD"]
        found.append(Source(f"$RESTIC_REPOSITORY  {loc}", loc, pw))
    demo = Path(cwd) / DEMO_DIR
    if (demo / "bucket" / "backups").is_dir():
        found.append(Source(f"demo bucket  {demo / 'bucket'}", str(demo / "bucket"),
                            bsl=str(demo / "bucket")))
    return found


def find_clusters(kubeconfig: str | None = None, namespace: str = "velero") -> list[Source]:
    """The kubeconfig's contexts (current first, and the pod's own service account), as
    cluster sources; reading the kubeconfig asks no server."""
    path = kubeconfig or os.environ.get("KUBECONFIG") or os.path.expanduser("~/.kube/config")
    if not os.path.isfile(path) and not os.environ.get("KUBERNETES_SERVICE_HOST"):
        return []  # and the Kubernetes client (most of a second to import) is not needed
    from kbrowse.cluster.session import kube_contexts

    return [Source(f"cluster  {name}  (Velero in namespace {namespace})", name, context=name)
            for name in kube_contexts(kubeconfig)]


def find_locations(context: str, kubeconfig: str | None = None, namespace: str = "velero") -> list[Source]:
    """The storage locations one cluster has (none when it cannot be asked)."""
    from kbrowse.cluster.session import ClusterSession, KubeTarget
    from mover.kube.framework.client import KubeError
    from mover.kube.resources import BSLS

    try:
        session = ClusterSession.connect(KubeTarget(kubeconfig, context, namespace))
    except RepoError:
        return []
    try:
        items = session.kube.list(BSLS, namespace)["items"]
    except KubeError:
        return []
    finally:
        session.close()
    found = []
    for loc in items:
        name, storage = loc["metadata"]["name"], (loc.get("spec") or {}).get("objectStorage") or {}
        where = storage.get("bucket", "") + (f"/{storage['prefix']}" if storage.get("prefix") else "")
        found.append(Source(f"storage location  {name}  {where}  (cluster {context})", where,
                            context=context, bsl=name))
    return found
