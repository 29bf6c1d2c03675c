"""Fixtures of the cluster tests: the API double with Velero's CRDs, and a storage location."""

from __future__ import annotations

import pytest

from mover.kube.framework.client import Kube
from tests.support.kubeapi.fixtures import KubeApi, kube_api  # noqa: F401 - fixture
from tests.support.s3server import S3Server
from tests.support.velero_env import credentials_secret, install, s3_location


@pytest.fixture
def kube(kube_api: KubeApi) -> Kube:  # noqa: F811
    k = Kube(kube_api.api_client())
    install(k)
    return k


@pytest.fixture
def location(kube: Kube, s3_server: S3Server, s3_bucket: str) -> str:
    """The default storage location on a fresh bucket; returns the bucket."""
    s3_location(kube, s3_server, s3_bucket, credential=credentials_secret(kube, s3_server))
    return s3_bucket
