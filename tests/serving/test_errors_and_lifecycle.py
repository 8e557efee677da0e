"""Limits, upstream failures, health endpoints and graceful drain of a real sidecar process."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from modeldeploy.contract.routing import Backend, RoutingTable
from tests.serving.processes import (
    Processes,
    SidecarProc,
    free_port,
    http,
    sidecar_binary,
    start_sidecar,
    write_routing,
)
from tests.serving.topology import IrisTrio
from tests.serving.traffic import IRIS_ROWS

pytestmark = [pytest.mark.serving, pytest.mark.slow]

REVISION = "eeee555555"
MAX_BODY = 4096
TIMEOUT = 0.5


def routing_file(workdir: Path) -> Path:
    path = workdir / "routing.json"
    table = RoutingTable(
        model="iris", namespace="ml", stable=Backend(revision=REVISION, url="http://127.0.0.1:1")
    )
    write_routing(path, table)
    return path


@pytest.fixture(scope="module")
def sidecar(iris_servers: IrisTrio, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SidecarProc]:
    workdir = Path(tmp_path_factory.mktemp("limits"))
    env = {"MODELDEPLOY_MAX_BODY_BYTES": str(MAX_BODY), "MODELDEPLOY_UPSTREAM_TIMEOUT": str(TIMEOUT)}
    with Processes() as procs:
        yield procs.add(
            start_sidecar(
                workdir,
                revision=REVISION,
                upstream=iris_servers.stable.url,
                routing_file=routing_file(workdir),
                env=env,
            )
        )


def json_error(body: bytes) -> dict[str, str]:
    payload = json.loads(body)
    assert isinstance(payload, dict) and set(payload) == {"error", "message", "revision"}, payload
    return payload


def test_responses_carry_the_revision_and_model_errors_pass_through(
    sidecar: SidecarProc, iris: IrisTrio
) -> None:
    status, headers, body = http("POST", sidecar.url + "/classify", IRIS_ROWS)
    assert status == 200 and headers["x-modeldeploy-revision"] == REVISION
    assert json.loads(body) == ["setosa", "versicolor", "virginica"]
    # BentoML's own 400 for bad input reaches the client unchanged, with the revision header.
    status, headers, body = http("POST", sidecar.url + "/classify", {"features": [[1, 2, 3]]})
    assert status == 400 and headers["x-modeldeploy-revision"] == REVISION
    assert b"rows of 4 numbers" in body
    status, headers, _ = http("GET", sidecar.url + "/livez")
    assert status == 200 and headers["x-modeldeploy-revision"] == REVISION


def test_oversize_body_gets_413_json(sidecar: SidecarProc, iris: IrisTrio) -> None:
    big = b'{"features": [' + b"[1.0, 2.0, 3.0, 4.0], " * 300 + b"[1.0, 2.0, 3.0, 4.0]]}"
    assert len(big) > MAX_BODY
    status, headers, body = http("POST", sidecar.url + "/classify", big, {"Content-Type": "application/json"})
    assert status == 413 and headers["x-modeldeploy-revision"] == REVISION
    error = json_error(body)
    assert error["error"] == "body_too_large" and str(MAX_BODY) in error["message"]
    assert sidecar.metric("modeldeploy_requests_total", code="413") >= 1
    # Just under the limit is served.
    rows = b'{"features": [' + b"[1.0, 2.0, 3.0, 4.0], " * 150 + b"[1.0, 2.0, 3.0, 4.0]]}"
    assert len(rows) <= MAX_BODY
    assert http("POST", sidecar.url + "/classify", rows, {"Content-Type": "application/json"})[0] == 200


def test_slow_upstream_gets_504_json(sidecar: SidecarProc, iris: IrisTrio) -> None:
    iris.stable.set_faults(latency_ms=TIMEOUT * 1000 * 4)
    started = time.monotonic()
    status, headers, body = http("POST", sidecar.url + "/classify", IRIS_ROWS)
    elapsed = time.monotonic() - started
    assert status == 504 and headers["x-modeldeploy-revision"] == REVISION
    assert json_error(body)["error"] == "upstream_timeout"
    assert TIMEOUT <= elapsed < TIMEOUT * 3
    assert sidecar.metric("modeldeploy_requests_total", code="504", route="local") >= 1


def test_health_and_readiness(sidecar: SidecarProc, iris: IrisTrio) -> None:
    status, _, body = http("GET", sidecar.url + "/healthz")
    assert status == 200 and json.loads(body)["status"] == "ok"
    status, _, body = http("GET", sidecar.url + "/readyz")
    assert status == 200 and json.loads(body)["status"] == "ready"


def test_upstream_down_gets_503_json_and_not_ready(tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    with Processes() as procs:
        sidecar = procs.add(
            start_sidecar(
                tmp_path,
                revision=REVISION,
                upstream=dead,
                routing_file=routing_file(tmp_path),
                wait_ready=False,
            )
        )
        status, headers, body = http("POST", sidecar.url + "/classify", IRIS_ROWS)
        assert status == 503 and headers["x-modeldeploy-revision"] == REVISION
        error = json_error(body)
        assert error["error"] == "upstream_unavailable" and dead in error["message"]
        assert http("GET", sidecar.url + "/healthz")[0] == 200
        status, _, body = http("GET", sidecar.url + "/readyz")
        assert status == 503 and json_error(body)["error"] == "not_ready"


def test_sigterm_drains_in_flight_requests(iris: IrisTrio, tmp_path: Path) -> None:
    iris.stable.set_faults(latency_ms=1500)
    with Processes() as procs:
        sidecar = procs.add(
            start_sidecar(
                tmp_path,
                revision=REVISION,
                upstream=iris.stable.url,
                routing_file=routing_file(tmp_path),
                env={"MODELDEPLOY_DRAIN_DELAY": "1.0"},
            )
        )
        result: dict[str, int] = {}

        def in_flight() -> None:
            result["status"] = http("POST", sidecar.url + "/classify", IRIS_ROWS)[0]

        thread = threading.Thread(target=in_flight)
        thread.start()
        time.sleep(0.3)
        sidecar.signal(signal.SIGTERM)
        time.sleep(0.2)
        # Draining: not ready any more, but still serving during the drain delay.
        status, _, body = http("GET", sidecar.url + "/readyz")
        assert status == 503 and json_error(body)["error"] == "draining"
        assert http("GET", sidecar.url + "/livez")[0] == 200
        thread.join(10)
        assert result == {"status": 200}
        assert sidecar.popen.wait(10) == 0
        assert "sidecar stopped" in sidecar.log_tail()


def test_bad_configuration_exits_2_with_the_reasons() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELDEPLOY_")}
    env |= {
        "MODELDEPLOY_MODEL": "iris",
        "MODELDEPLOY_UPSTREAM": "localhost:3000",
        "MODELDEPLOY_PORT": "99999",
    }
    done = subprocess.run(
        [str(sidecar_binary())],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2
    for reason in (
        "MODELDEPLOY_NAMESPACE: Field required",
        "MODELDEPLOY_UPSTREAM: upstream must be an http:// or https:// URL",
        "MODELDEPLOY_PORT: Input should be less than or equal to 65535",
    ):
        assert reason in done.stderr, done.stderr


def test_port_in_use_exits_1_with_the_reason(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if not k.startswith("MODELDEPLOY_")}
        env |= {
            "MODELDEPLOY_MODEL": "iris",
            "MODELDEPLOY_NAMESPACE": "ml",
            "MODELDEPLOY_REVISION": REVISION,
            "MODELDEPLOY_UPSTREAM": f"http://127.0.0.1:{free_port()}",
            "MODELDEPLOY_ROUTING_FILE": str(routing_file(tmp_path)),
            "MODELDEPLOY_LISTEN_HOST": "127.0.0.1",
            "MODELDEPLOY_PORT": str(free_port()),
            "MODELDEPLOY_METRICS_PORT": str(port),
        }
        done = subprocess.run(
            [str(sidecar_binary())],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert done.returncode == 1
    assert "cannot start" in done.stderr and "address already in use" in done.stderr, done.stderr
    assert "Unclosed" not in done.stderr, done.stderr


# Defects of the Python sidecar the Rust one must not have (issue 14) ----------------------------


def raw_request(headers: dict[str, str], body: bytes = b"", path: str = "/classify") -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: sidecar", "Content-Type: application/json"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def first_response(port: int, data: bytes, timeout: float = 3.0) -> tuple[int, dict[str, str], bytes]:
    """Send `data` and read until the first response's head and JSON body are in (or the peer closes)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        received = b""
        while b"\r\n\r\n" not in received:
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += chunk
        head, _, rest = received.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        pairs = (line.split(":", 1) for line in lines[1:] if ":" in line)
        headers = {k.strip().lower(): v.strip() for k, v in pairs}
        length = int(headers.get("content-length", "0"))
        while len(rest) < length:
            chunk = sock.recv(65536)
            if not chunk:
                break
            rest += chunk
        return status, headers, rest[:length]


def test_unknown_expectation_gets_417_json_and_is_counted(sidecar: SidecarProc, iris: IrisTrio) -> None:
    before = sidecar.metric("modeldeploy_requests_total", code="417")
    body = json.dumps(IRIS_ROWS).encode()
    status, headers, payload = first_response(
        sidecar.port, raw_request({"Expect": "pigeons", "Content-Length": str(len(body))}, body)
    )
    assert status == 417 and headers["x-modeldeploy-revision"] == REVISION, (status, headers)
    assert headers["x-modeldeploy-error"] == "expectation_failed"
    assert json_error(payload)["error"] == "expectation_failed"
    assert sidecar.metric("modeldeploy_requests_total", code="417") == before + 1


def test_expect_continue_with_a_too_large_body_gets_413_at_once(sidecar: SidecarProc, iris: IrisTrio) -> None:
    """No `100 Continue` first (that would invite the upload): the very first answer is the 413."""
    head = raw_request({"Expect": "100-continue", "Content-Length": str(MAX_BODY * 10)})
    status, headers, payload = first_response(sidecar.port, head)
    assert status == 413 and headers["x-modeldeploy-error"] == "body_too_large", (status, headers)
    assert json_error(payload)["error"] == "body_too_large"


def test_expect_continue_within_the_limit_is_served(sidecar: SidecarProc, iris: IrisTrio) -> None:
    body = json.dumps(IRIS_ROWS).encode()
    with socket.create_connection(("127.0.0.1", sidecar.port), timeout=5) as sock:
        sock.sendall(raw_request({"Expect": "100-continue", "Content-Length": str(len(body))}))
        interim = sock.recv(65536)
        assert interim.startswith(b"HTTP/1.1 100"), interim
        sock.sendall(body)
        answer = b""
        while b"setosa" not in answer:
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 200") and b"setosa" in answer, answer


def wait_metric(sidecar: SidecarProc, expected: float, timeout: float = 5.0, **labels: str) -> float:
    deadline = time.monotonic() + timeout
    value = sidecar.metric("modeldeploy_requests_total", **labels)
    while value < expected and time.monotonic() < deadline:
        time.sleep(0.05)
        value = sidecar.metric("modeldeploy_requests_total", **labels)
    return value


def test_client_going_away_is_499_not_the_revisions_error(sidecar: SidecarProc, iris: IrisTrio) -> None:
    """Buffered (the client leaves while the model thinks) and streamed (the client leaves mid-stream):
    counted as code 499 on route local, never 502/5xx against the revision."""
    body = json.dumps(IRIS_ROWS).encode()
    stream_body = json.dumps({"features": IRIS_ROWS["features"] * 40}).encode()  # 10 ms per row: 1.2 s
    before_499 = sidecar.metric("modeldeploy_requests_total", code="499", route="local")
    before_5xx = sum(sidecar.metric("modeldeploy_requests_total", code=str(c)) for c in (500, 502, 503, 504))
    iris.stable.set_faults(latency_ms=300)
    with socket.create_connection(("127.0.0.1", sidecar.port)) as sock:
        sock.sendall(raw_request({"Content-Length": str(len(body))}, body))
        time.sleep(0.1)  # the model is still thinking
    assert wait_metric(sidecar, before_499 + 1, code="499", route="local") == before_499 + 1
    iris.stable.set_faults(latency_ms=0)
    with socket.create_connection(("127.0.0.1", sidecar.port)) as sock:
        sock.sendall(raw_request({"Content-Length": str(len(stream_body))}, stream_body, "/classify_stream"))
        first = sock.recv(65536)
        assert first.startswith(b"HTTP/1.1 200"), first
        time.sleep(0.1)  # a few lines relayed, many to come
    assert wait_metric(sidecar, before_499 + 2, code="499", route="local") == before_499 + 2
    after_5xx = sum(sidecar.metric("modeldeploy_requests_total", code=str(c)) for c in (500, 502, 503, 504))
    assert after_5xx == before_5xx
    assert "Traceback" not in sidecar.log_tail()
