"""Bad input against a real sidecar process in front of real BentoML iris: fuzzed bodies and raw
HTTP, header abuse, oversize / truncated / slow bodies, slowloris, odd methods and paths.

What every test holds the sidecar to: each answer is an HTTP response (or a closed connection
for bytes that are not HTTP at all); an error the sidecar produces itself is its JSON error shape
with `x-modeldeploy-revision`; the model's own answers are relayed with that header; the process
stays up; honest clients sending predictions at the same time are all answered 200
(`HonestTraffic`); memory and file descriptors stay bounded. Requests whose framing cannot be
parsed (request line, header names, header count/size, chunk framing arriving with the headers)
never reach a handler: aiohttp answers them 400 text/plain and closes the connection.
"""

from __future__ import annotations

import gzip
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.serving.processes import Processes, SidecarProc, start_sidecar
from tests.serving.raw_http import (
    HonestTraffic,
    RawResponse,
    answer_then_close,
    exchange,
    open_fds,
    parse_response,
    rss_bytes,
)
from tests.serving.test_errors_and_lifecycle import routing_file
from tests.serving.topology import IrisTrio
from tests.serving.traffic import IRIS_ROWS

pytestmark = [pytest.mark.serving, pytest.mark.slow]

REVISION = "eeee555555"
MAX_BODY = 4096
BODY_TIMEOUT = 1.5
IDLE_TIMEOUT = 1.5
FUZZ = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
    derandomize=True,
)


@pytest.fixture(scope="module")
def sidecar(iris_servers: IrisTrio, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SidecarProc]:
    workdir = Path(tmp_path_factory.mktemp("bad-input"))
    env = {
        "MODELDEPLOY_MAX_BODY_BYTES": str(MAX_BODY),
        "MODELDEPLOY_BODY_TIMEOUT": str(BODY_TIMEOUT),
        "MODELDEPLOY_IDLE_TIMEOUT": str(IDLE_TIMEOUT),
    }
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


def request(method: str, path: str, headers: dict[str, str], body: bytes = b"") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: sidecar", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    if body and "Transfer-Encoding" not in headers:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def sidecar_error(response: RawResponse | None, status: int, kind: str) -> dict[str, str]:
    assert response is not None, "no response"
    assert response.status == status, response
    assert response.headers.get("x-modeldeploy-revision") == REVISION, response.headers
    assert response.headers.get("x-modeldeploy-error") == kind, response.headers
    payload = response.json()
    assert isinstance(payload, dict) and set(payload) == {"error", "message", "revision"}, payload
    assert payload["error"] == kind and payload["revision"] == REVISION, payload
    return payload


def check_answer(raw: bytes) -> RawResponse | None:
    """The invariant for any bytes sent: nothing, aiohttp's parser 400, the model's answer relayed,
    or the sidecar's own JSON error (marked by `x-modeldeploy-error`). An error the sidecar made
    without its JSON (aiohttp's text/plain 500 for an exception in a handler) has no revision
    header and fails here."""
    response = parse_response(raw)
    if response is None:
        return None
    assert 100 <= response.status < 600, response
    if "x-modeldeploy-revision" not in response.headers:
        assert response.status == 400, response  # unparseable framing, refused before any handler
        return response
    if kind := response.headers.get("x-modeldeploy-error"):
        assert response.status >= 400, response
        payload = response.json()
        assert isinstance(payload, dict) and set(payload) == {"error", "message", "revision"}, response
        assert payload["error"] == kind, response
    return response


class LogWatch:
    """Lines the sidecar logs after this point."""

    def __init__(self, proc: SidecarProc) -> None:
        self.proc = proc
        self.offset = proc.log_path.stat().st_size

    def new(self) -> str:
        with self.proc.log_path.open("rb") as log:
            log.seek(self.offset)
            return log.read().decode(errors="replace")


# Bodies ------------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=False) | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5),
    max_leaves=30,
)
valid_body = json.dumps(IRIS_ROWS).encode()
bodies = st.one_of(
    st.binary(max_size=2000),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.builds(lambda cut: valid_body[:cut], st.integers(0, len(valid_body))),  # truncated JSON
    st.builds(  # one byte of a valid body replaced
        lambda i, b: valid_body[:i] + bytes([b]) + valid_body[i + 1 :],
        st.integers(0, len(valid_body) - 1),
        st.integers(0, 255),
    ),
    st.lists(st.lists(st.floats(), min_size=4, max_size=4), max_size=5).map(
        lambda rows: json.dumps({"features": rows}).encode()
    ),
)


@FUZZ
@given(
    body=bodies, content_type=st.sampled_from(["application/json", "text/plain", "", "application/x-junk"])
)
def test_fuzzed_bodies_are_relayed_or_refused_as_json(
    sidecar: SidecarProc, iris: IrisTrio, body: bytes, content_type: str
) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    response = check_answer(exchange(sidecar.port, request("POST", "/classify", headers, body)))
    assert response is not None and "x-modeldeploy-revision" in response.headers
    assert sidecar.alive(), sidecar.log_tail()


# Raw HTTP ------------------------------------------------------------------------------------

tokens = st.text(
    st.characters(min_codepoint=33, max_codepoint=126, exclude_characters=":"), min_size=1, max_size=12
)
odd_text = st.text(st.characters(min_codepoint=0, max_codepoint=0x2FF), max_size=40)
methods = (
    st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD", "TRACE", "PROPFIND"])
    | tokens
)
paths = st.one_of(
    st.sampled_from(["/classify", "/livez", "/healthz", "/readyz", "/", "*", "//x", "/../../etc/passwd"]),
    odd_text.map(lambda t: "/" + t),
    st.text(max_size=30).map(lambda t: "http://127.0.0.1:1/" + t),
).filter(lambda p: "faults" not in p)  # never touch the model's fault switches
header_names = tokens | odd_text
raw_requests = st.one_of(
    st.binary(min_size=1, max_size=600),
    st.builds(
        lambda method, path, version, headers, body: (
            f"{method} {path} {version}\r\n".encode("utf-8", "surrogatepass")
            + b"".join(f"{k}: {v}\r\n".encode("utf-8", "surrogatepass") for k, v in headers)
            + b"\r\n"
            + body
        ),
        methods,
        paths,
        st.sampled_from(["HTTP/1.1", "HTTP/1.0", "HTTP/2.0", "HTTP/9", "FOO"]),
        st.lists(st.tuples(header_names, odd_text), max_size=6),
        st.binary(max_size=200),
    ),
)


@FUZZ
@given(data=raw_requests)
def test_fuzzed_raw_http_gets_an_http_answer_or_a_closed_connection(
    sidecar: SidecarProc, iris: IrisTrio, data: bytes
) -> None:
    check_answer(exchange(sidecar.port, data, timeout=0.5))
    assert sidecar.alive(), sidecar.log_tail()


@pytest.mark.parametrize(
    "data",
    [
        request("GET", "/livez", {f"X-Many-{i}": "v" for i in range(300)}),
        request("GET", "/livez", {"X-Huge": "a" * 100_000}),
        request("GET", "/" + "a" * 20_000, {}),
        request("GET", "/livez", {"Bad Name": "v"}),
        request("GET", "/livez", {"X-Nul\x00": "v"}),
        request("GET", "/livez", {"X-Ctl": "a\x01b"}),
        b"GET /livez HTTP/1.1\r\nHost: x\r\nNoColonHere\r\n\r\n",
        request("POST", "/classify", {"Content-Length": "99999999999999999999"}),
        request("POST", "/classify", {"Content-Length": "-5"}),
        request("POST", "/classify", {"Content-Length": "4", "Transfer-Encoding": "chunked"}, b"0\r\n\r\n"),
        request("POST", "/classify", {"Transfer-Encoding": "chunked"}, b"zz\r\nabc\r\n0\r\n\r\n"),
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(256)),  # a TLS ClientHello
    ],
    ids=[
        "300-headers", "100k-header", "20k-path", "space-in-name", "nul-in-name", "ctl-in-value",
        "no-colon", "content-length-overflow", "negative-content-length", "te-and-cl",
        "chunk-size-garbage", "tls-on-http",
    ],
)  # fmt: skip
def test_broken_framing_is_refused_with_400_and_the_connection_closed(
    sidecar: SidecarProc, iris: IrisTrio, data: bytes
) -> None:
    watch = LogWatch(sidecar)
    response = parse_response(answer_then_close(sidecar.port, data))
    assert response is not None and response.status == 400, response
    assert sidecar.alive()
    assert "Traceback" not in watch.new(), "one log line per refused request, no traceback"


def test_many_large_headers_within_limits_reach_the_model(sidecar: SidecarProc, iris: IrisTrio) -> None:
    """Headers the parser allows (127 of 8 kB) are relayed; whatever the model says comes back."""
    headers = {f"X-Big-{i}": "b" * 8000 for i in range(100)} | {"Content-Type": "application/json"}
    response = check_answer(exchange(sidecar.port, request("POST", "/classify", headers, valid_body)))
    assert response is not None and "x-modeldeploy-revision" in response.headers
    assert sidecar.alive()


def test_absolute_form_target_never_reaches_another_host(sidecar: SidecarProc, iris: IrisTrio) -> None:
    """`GET http://elsewhere/...` is served by the local model: the sidecar is not an open proxy."""
    with socket.socket() as elsewhere:
        elsewhere.bind(("127.0.0.1", 0))
        elsewhere.listen()
        elsewhere.settimeout(0.5)
        port = elsewhere.getsockname()[1]
        response = check_answer(exchange(sidecar.port, request("GET", f"http://127.0.0.1:{port}/livez", {})))
        assert response is not None and response.status == 200
        assert response.headers["x-modeldeploy-revision"] == REVISION
        with pytest.raises(TimeoutError):
            elsewhere.accept()


# Body limits and slow clients ----------------------------------------------------------------


def chunked(body: bytes, size: int = 1024) -> bytes:
    parts = [
        b"%x\r\n%s\r\n" % (len(body[i : i + size]), body[i : i + size]) for i in range(0, len(body), size)
    ]
    return b"".join(parts) + b"0\r\n\r\n"


BIG = b"[" + b"1.0," * 250_000 + b"1.0]"  # 1 MB
BOMB = gzip.compress(b"0" * 50_000_000)  # 50 MB once inflated, 50 kB on the wire


@pytest.mark.parametrize(
    "data",
    [
        request("POST", "/classify", {"Content-Type": "application/json"}, BIG),
        request("POST", "/classify", {"Transfer-Encoding": "chunked"}, chunked(BIG)),
        request("POST", "/classify", {"Content-Encoding": "gzip"}, BOMB),
    ],
    ids=["content-length", "chunked", "gzip-bomb"],
)
def test_oversize_bodies_get_413_json(sidecar: SidecarProc, iris: IrisTrio, data: bytes) -> None:
    error = sidecar_error(parse_response(exchange(sidecar.port, data)), 413, "body_too_large")
    assert str(MAX_BODY) in error["message"]


def test_body_cut_off_by_the_client_leaves_no_traceback(sidecar: SidecarProc, iris: IrisTrio) -> None:
    watch = LogWatch(sidecar)
    head = b"POST /classify HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n"
    for _ in range(20):
        with socket.create_connection(("127.0.0.1", sidecar.port)) as sock:
            sock.sendall(head + b'{"features": [[1')
            time.sleep(0.02)  # let the handler start reading the body
    with HonestTraffic(sidecar.port, min_ok=3):
        time.sleep(0.5)
    assert sidecar.alive()
    assert "Traceback" not in watch.new(), watch.new()[-3000:]


def test_body_slower_than_the_deadline_gets_408_json(sidecar: SidecarProc, iris: IrisTrio) -> None:
    head = b"POST /classify HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n"
    started = time.monotonic()
    raw = exchange(sidecar.port, head + b'{"features": ', timeout=BODY_TIMEOUT * 5)
    elapsed = time.monotonic() - started
    error = sidecar_error(parse_response(raw), 408, "request_timeout")
    assert f"{BODY_TIMEOUT:g} s" in error["message"]
    assert BODY_TIMEOUT <= elapsed < BODY_TIMEOUT + 3


def test_garbage_chunk_after_the_headers_gets_400_json(sidecar: SidecarProc, iris: IrisTrio) -> None:
    head = b"POST /classify HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"
    raw = exchange(sidecar.port, head, chunks=[b"not-a-size\r\n"])
    # The handler may or may not have started when the garbage arrives: usually a clean 400. Under
    # load, aiohttp sometimes leaves the chunk error unseen by a handler already waiting for the body
    # (seen in CI): then the body deadline answers, a JSON 408 — still a client error, never a hang.
    response = parse_response(raw)
    assert response is not None and response.status in (400, 408), response
    if "x-modeldeploy-revision" in response.headers:
        kind = "bad_request_body" if response.status == 400 else "request_timeout"
        sidecar_error(response, response.status, kind)


def open_slow_connections(port: int, n: int) -> list[socket.socket]:
    socks = []
    for _ in range(n):
        sock = socket.create_connection(("127.0.0.1", port))
        sock.sendall(b"GET /livez HTTP/1.1\r\nHost: x\r\n")
        socks.append(sock)
    return socks


def closed_by_server(sock: socket.socket) -> bool:
    try:
        sock.sendall(b"X-Slow: 1\r\n")
        sock.setblocking(False)
        return sock.recv(1) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True
    finally:
        sock.setblocking(True)


def test_slowloris_connections_are_closed_and_others_served(sidecar: SidecarProc, iris: IrisTrio) -> None:
    socks = open_slow_connections(sidecar.port, 200)
    try:
        with HonestTraffic(sidecar.port, min_ok=20):
            deadline = time.monotonic() + IDLE_TIMEOUT + 10
            open_ones = list(socks)
            while open_ones and time.monotonic() < deadline:
                time.sleep(0.3)  # trickle one header line per connection and poll
                open_ones = [s for s in open_ones if not closed_by_server(s)]
        assert not open_ones, f"{len(open_ones)} of 200 slow connections still open after {IDLE_TIMEOUT}s"
    finally:
        for sock in socks:
            sock.close()


def test_memory_and_descriptors_stay_bounded_under_abuse(sidecar: SidecarProc, iris: IrisTrio) -> None:
    """300 oversize bodies (1 MB each offered), 50 gzip bombs (50 MB each inflated), 300 slow
    connections and 300 garbage requests while honest traffic runs. Bound: RSS grows by less than
    40 MB. The sidecar buffers at most MAX_BODY (4 kB) per request and never more than a few
    hundred requests are open at once, so legitimate growth is a few MB (allocator pools,
    connection objects); keeping even 1% of the offered 350 MB (or of 2.5 GB inflated) would break
    the bound."""
    pid = sidecar.pid
    exchange(sidecar.port, request("POST", "/classify", {"Content-Type": "application/json"}, valid_body))
    rss_before, fds_before = rss_bytes(pid), open_fds(pid)
    with HonestTraffic(sidecar.port, min_ok=20):
        slow = open_slow_connections(sidecar.port, 300)
        try:
            deadline = time.monotonic() + IDLE_TIMEOUT / 2
            while open_fds(pid) < fds_before + 100 and time.monotonic() < deadline:
                time.sleep(0.02)
            peak_fds = open_fds(pid)
            for i in range(300):
                exchange(
                    sidecar.port, request("POST", "/classify", {"Transfer-Encoding": "chunked"}, chunked(BIG))
                )
                exchange(sidecar.port, b"\x00GARBAGE" * (i % 50 + 1))
                if i % 6 == 0:
                    exchange(sidecar.port, request("POST", "/classify", {"Content-Encoding": "gzip"}, BOMB))
        finally:
            for sock in slow:
                sock.close()
    rss_after = rss_bytes(pid)
    assert rss_after - rss_before < 40 * 1024 * 1024, (rss_before, rss_after)
    assert peak_fds >= fds_before + 100, "the slow connections were open during the abuse"
    deadline = time.monotonic() + 10
    while open_fds(pid) > fds_before + 5 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert open_fds(pid) <= fds_before + 5, (fds_before, open_fds(pid))
    assert sidecar.alive()
