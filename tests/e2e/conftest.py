"""The e2e modules' default environment: the operator from the chart on the real node, one per
module (a module that needs another setup defines its own `env`, which takes precedence)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.cluster.localcluster import LocalCluster
from tests.support.real_env import RealNodeEnv


@pytest.fixture(scope="module")
def env(real_cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealNodeEnv]:
    e2e = RealNodeEnv(real_cluster, tmp_path_factory.mktemp("e2e")).start()
    try:
        yield e2e
    finally:
        e2e.stop()
