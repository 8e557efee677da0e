"""Raw-socket HTTP for abuse tests: send any bytes, read what comes back, keep honest traffic going.

`exchange` writes bytes exactly as given (malformed framing included) and reads until the server
closes; `parse_response` splits a raw answer into status, headers and body. `HonestTraffic`
sends valid predictions from a background thread while a test misbehaves, and counts every
failure. `rss_bytes` and `open_fds` read /proc of a process.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import threading
import time
from dataclasses import dataclass, field
from types import TracebackType

from tests.serving.traffic import IRIS_ROWS


@dataclass(frozen=True)
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> object:
        return json.loads(self.body)


def _complete(received: bytes) -> bool:
    """A whole response with a Content-Length is in `received`."""
    head, sep, rest = received.partition(b"\r\n\r\n")
    if not sep:
        return False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length" and value.strip().isdigit():
            return len(rest) >= int(value.strip())
    return False


def exchange(port: int, data: bytes, *, timeout: float = 5.0, chunks: list[bytes] | None = None) -> bytes:
    """Send `data` (then each of `chunks`) and read until the server closes, a whole response has
    arrived, or nothing came for `timeout` seconds (a request the server still waits on)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        try:
            sock.sendall(data)
            for chunk in chunks or []:
                sock.sendall(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed early (e.g. 413): read what it said
        received = b""
        while not _complete(received):
            try:
                chunk = sock.recv(65536)
            except (ConnectionResetError, TimeoutError):
                break
            if not chunk:
                break
            received += chunk
        return received


def answer_then_close(port: int, data: bytes, timeout: float = 5.0) -> bytes:
    """Send `data` and read until the server closes; TimeoutError if it keeps the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
        return received


def parse_response(raw: bytes) -> RawResponse | None:
    """The first response in `raw` (None when nothing came back)."""
    if not raw:
        return None
    head, _, rest = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    version, status, *_ = lines[0].split(" ", 2)
    assert version.startswith("HTTP/"), f"not an HTTP response: {raw[:200]!r}"
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", len(rest)))
    return RawResponse(int(status), headers, rest[:length])


def rss_bytes(pid: int) -> int:
    for line in open(f"/proc/{pid}/status").read().splitlines():  # noqa: SIM115 - tiny read
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


@dataclass
class HonestTraffic:
    """Valid predictions on keep-alive connections from `workers` threads until the block ends.

    On exit every request must have been answered 200 and at least `min_ok` must have been sent,
    so a test fails when the abuse it runs disturbs honest clients.
    """

    port: int
    workers: int = 2
    min_ok: int = 10
    ok: int = 0
    failures: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _run(self) -> None:
        body = json.dumps(IRIS_ROWS).encode()
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        while not self._stop.is_set():
            try:
                conn.request("POST", "/classify", body, {"Content-Type": "application/json"})
                response = conn.getresponse()
                payload = response.read()
                if response.status == 200:
                    with self._lock:
                        self.ok += 1
                else:
                    self.failures.append(f"{response.status} {payload[:200]!r}")
            except (OSError, http.client.HTTPException) as exc:
                self.failures.append(repr(exc))
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
            time.sleep(0.01)
        conn.close()

    def __enter__(self) -> HonestTraffic:
        for i in range(self.workers):
            thread = threading.Thread(target=self._run, name=f"honest-{i}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(15)
        if kind is None:
            assert not self.failures, f"honest requests failed during the abuse: {self.failures[:5]}"
            assert self.ok >= self.min_ok, f"only {self.ok} honest requests answered during the abuse"
