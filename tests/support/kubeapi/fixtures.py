"""pytest fixture: a running API double, a kubeconfig pointing at it, and clients built from it."""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from kubernetes import client, config

from .server import KubeApiServer

CONTEXT = "kbrowse-test"
TOKEN = "kbrowse-test-token"


def write_kubeconfig(path: Path, server_url: str, token: str = TOKEN, namespace: str = "default") -> Path:
    """A kubeconfig with one cluster, one token user and the current context ``kbrowse-test``."""
    document = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": CONTEXT, "cluster": {"server": server_url}}],
        "users": [{"name": CONTEXT, "user": {"token": token}}],
        "contexts": [{"name": CONTEXT, "context": {"cluster": CONTEXT, "user": CONTEXT, "namespace": namespace}}],
        "current-context": CONTEXT,
    }
    path.write_text(yaml.safe_dump(document))
    return path


class KubeApi:
    """What the ``kube_api`` fixture yields."""

    def __init__(self, server: KubeApiServer, kubeconfig_path: Path) -> None:
        self.server = server
        self.kubeconfig_path = kubeconfig_path
        self._clients: list[client.ApiClient] = []

    @property
    def url(self) -> str:
        return self.server.url

    def api_client(self) -> client.ApiClient:
        """A new client configured from the kubeconfig, closed when the test ends."""
        api_client = config.new_client_from_config(config_file=str(self.kubeconfig_path))
        self._clients.append(api_client)
        return api_client

    def close(self) -> None:
        for api_client in self._clients:
            api_client.close()


def _dynamic_discovery_cache(server_url: str) -> Path:
    """Where kubernetes.dynamic caches discovery by default: keyed by host alone, so a port
    reused by a later test would otherwise see an earlier test's resources."""
    digest = hashlib.md5(server_url.encode(), usedforsecurity=False).hexdigest()
    return Path(tempfile.gettempdir()) / f"osrcp-{digest}.json"


@pytest.fixture
def kube_api(tmp_path: Path) -> Iterator[KubeApi]:
    server = KubeApiServer().start()
    cache = _dynamic_discovery_cache(server.url)
    cache.unlink(missing_ok=True)
    api = KubeApi(server, write_kubeconfig(tmp_path / "kubeconfig", server.url))
    try:
        yield api
    finally:
        api.close()
        server.stop()
        cache.unlink(missing_ok=True)
    if server.internal_errors:
        pytest.fail("the Kubernetes API double failed internally:\n" + "\n".join(server.internal_errors))
