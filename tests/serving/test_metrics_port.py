"""The sidecar's metrics/admin port (9090 in a pod) is read-only: GET /metrics and GET /routing
answer, every other method on every path is refused with the sidecar's JSON error, and nothing
changes (routing state and request counters are the same before and after)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.serving.processes import Processes, SidecarProc, http, start_sidecar
from tests.serving.test_errors_and_lifecycle import routing_file
from tests.serving.topology import IrisTrio

pytestmark = [pytest.mark.serving, pytest.mark.slow]

REVISION = "eeee555555"
READ_ONLY = {"/metrics", "/routing"}
PATHS = [
    "/metrics",
    "/routing",
    "/",
    "/healthz",
    "/readyz",
    "/faults",
    "/classify",
    "/metrics/x",
    "/-/reload",
]
WRITES = ["POST", "PUT", "DELETE", "PATCH"]


@pytest.fixture(scope="module")
def sidecar(iris_servers: IrisTrio, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SidecarProc]:
    workdir = Path(tmp_path_factory.mktemp("metrics-port"))
    with Processes() as procs:
        yield procs.add(
            start_sidecar(
                workdir,
                revision=REVISION,
                upstream=iris_servers.stable.url,
                routing_file=routing_file(workdir),
            )
        )


def state(sidecar: SidecarProc) -> tuple[object, float]:
    return sidecar.routing_state(), sidecar.metric("modeldeploy_requests_total")


def refused(status: int, headers: dict[str, str], body: bytes, expected: int) -> None:
    assert status == expected, (status, body)
    payload = json.loads(body)
    assert (
        set(payload) == {"error", "message", "revision"}
        and headers["x-modeldeploy-error"] == payload["error"]
    )


def test_only_get_of_metrics_and_routing_answers(sidecar: SidecarProc, iris: IrisTrio) -> None:
    base = f"http://{sidecar.metrics_address}"
    before = state(sidecar)
    for path in PATHS:
        for method in WRITES:
            status, headers, body = http(method, base + path, b'{"canary": {"weight": 100}}')
            refused(status, headers, body, 405 if path in READ_ONLY else 404)
            if path in READ_ONLY:
                assert set(headers["allow"].replace(" ", "").split(",")) == {"GET", "HEAD"}
        status, headers, body = http("GET", base + path)
        if path in READ_ONLY:
            assert status == 200
        else:
            refused(status, headers, body, 404)
    assert state(sidecar) == before, "a refused request changed the sidecar's state"
    # Nothing reached the model either: the sidecar's counters cover every proxied request.
    assert http("GET", sidecar.url + "/livez")[0] == 200
    assert sidecar.metric("modeldeploy_requests_total") == before[1] + 1


@settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    method=st.sampled_from([*WRITES, "OPTIONS", "TRACE", "PROPFIND", "MKCOL"]),
    path=st.sampled_from(sorted(READ_ONLY))
    | st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=20).map(
        lambda t: "/" + t.replace("?", "").replace("#", "")
    ),
)
def test_no_other_method_or_path_is_served(
    sidecar: SidecarProc, iris: IrisTrio, method: str, path: str
) -> None:
    before = sidecar.routing_state()
    status, headers, body = http(method, f"http://{sidecar.metrics_address}{path}", b"x")
    assert status in (400, 404, 405), (method, path, status)
    if status != 400:  # 400: a path the HTTP parser refuses before any handler
        refused(status, headers, body, status)
    assert sidecar.routing_state() == before
