"""Fixtures shared by every test layer.

`cluster` starts the real local control plane (tests/cluster/localcluster.py) once per
session; `k8s` is an ApiClient for it. Layers that need real processes fail, not skip,
when a prerequisite is missing, so CI can never pass by skipping them.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import settings
from kubernetes import config
from kubernetes.client import ApiClient

from tests.cluster.localcluster import LocalCluster, running_cluster

# `namespace` and `operator` for the layers that run the real operator (a module may override them).
pytest_plugins = ("tests.support.operator_fixtures",)

# Property tests judge behaviour, not speed: hypothesis' default 200 ms deadline per example turns
# a loaded 2-core machine into false failures (test_psi failed so at load 40). Timing lives in bench/.
settings.register_profile("modeldeploy", deadline=None)
settings.load_profile("modeldeploy")


@pytest.fixture(scope="session")
def cluster() -> Iterator[LocalCluster]:
    with running_cluster() as c:
        yield c


@pytest.fixture(scope="session")
def real_cluster() -> Iterator[LocalCluster]:
    """The local cluster with a real node (only one per machine), for the e2e tests on real Pods."""
    with running_cluster(node="real") as c:
        yield c


@pytest.fixture(scope="session")
def k8s(cluster: LocalCluster) -> Iterator[ApiClient]:
    api_client = config.new_client_from_config(config_file=str(cluster.kubeconfig))
    try:
        yield api_client
    finally:
        api_client.close()
