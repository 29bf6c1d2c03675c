"""The app in cluster mode against the Kubernetes API double, with `mover server` running in
this process on a SeaweedFS bucket (as tests/velero/test_velero_cmds.py runs the CLI)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from kbrowse.cluster.session import ClusterSession, KubeTarget
from mover.kube.framework.client import Kube
from tests.kube.conftest import kube  # noqa: F401 - the fixture
from tests.kube.test_controllers import make_app
from tests.support.kubeapi.fixtures import KubeApi, kube_api  # noqa: F401 - fixture
from tests.support.s3server import S3Server
from tests.support.velero_env import (
    NS,
    credentials_secret,
    running_server,
    s3_location,
)


@pytest.fixture
def cluster(kube: Kube, s3_server: S3Server, s3_bucket: str) -> Iterator[Kube]:  # noqa: F811
    """A Velero-shaped cluster: a storage location on the bucket, an application in `shop`,
    the mover server reconciling."""
    s3_location(kube, s3_server, s3_bucket, credential=credentials_secret(kube, s3_server))
    make_app(kube)
    with running_server(kube):
        yield kube


@pytest.fixture
def session(kube_api: KubeApi) -> Iterator[ClusterSession]:  # noqa: F811
    """What `kbrowse --kubeconfig K` connects with (the app starts and closes it)."""
    s = ClusterSession.connect(KubeTarget(str(kube_api.kubeconfig_path), None, NS))
    yield s
    s.close()
