"""Fixtures of the serving layer: three real BentoML iris servers shared by the whole session.

`iris_servers` starts stable (variant a), canary (variant a) and shadow (variant b, probabilities
slightly different) once; `iris` hands them to a test and resets their fault switches afterwards.
Each test module starts its own sidecars (they start in about a second), so metrics are per module.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.serving.processes import Processes, launch_iris
from tests.serving.topology import IrisTrio


@pytest.fixture(scope="session")
def iris_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IrisTrio]:
    workdir: Path = tmp_path_factory.mktemp("iris")
    with Processes() as procs:
        # Launch all three, then wait: BentoML start-up (several seconds) overlaps.
        trio = IrisTrio(
            stable=procs.add(launch_iris(workdir / "stable", name="iris-stable")),
            canary=procs.add(launch_iris(workdir / "canary", name="iris-canary")),
            shadow=procs.add(launch_iris(workdir / "shadow", name="iris-shadow", env={"IRIS_VARIANT": "b"})),
        )
        for server in trio.all():
            server.wait_ready(120)
        yield trio


@pytest.fixture
def iris(iris_servers: IrisTrio) -> Iterator[IrisTrio]:
    iris_servers.reset_faults()
    try:
        yield iris_servers
    finally:
        iris_servers.reset_faults()
