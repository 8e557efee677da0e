"""Process basics for the serving and end-to-end tests: ports, a tiny HTTP client, process handles.

`spawn` starts a command in its own process group with its output in a log file; `Proc.stop()`
sends SIGTERM to the group and SIGKILL after a grace period; `Processes` stops a whole set in
reverse order when its block ends. The handles for BentoML, the sidecar and Prometheus build on
these in tests/serving/processes.py.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from tests.cluster.processes import free_port as free_port  # re-exported: one home for harness ports
from tests.support.sidecar_binary import sidecar_binary as sidecar_binary  # re-exported

ROOT = Path(__file__).resolve().parents[2]
IRIS_DIR = ROOT / "serving" / "examples" / "iris"
PYTHON = sys.executable
PROMETHEUS = "/usr/bin/prometheus"
P = TypeVar("P", bound="Proc")


class ProcessError(RuntimeError):
    """A test process could not be started or did not become ready."""


def http(
    method: str, url: str, body: Any = None, headers: Mapping[str, str] | None = None, timeout: float = 10.0
) -> tuple[int, dict[str, str], bytes]:
    """A small blocking HTTP client for setup and assertions: (status, lower-cased headers, body)."""
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    request = urllib.request.Request(url, data=data, method=method, headers=dict(headers or {}))
    if body is not None and not isinstance(body, bytes):
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, {k.lower(): v for k, v in response.headers.items()}, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, {k.lower(): v for k, v in exc.headers.items()}, exc.read()


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def signal(self, sig: signal.Signals) -> None:
        if self.alive():
            os.kill(self.popen.pid, sig)

    def stop(self, grace: float = 10.0) -> int | None:
        """SIGTERM the process group, SIGKILL after `grace` seconds. Returns the exit code."""
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(5)
        # Children the leader left behind (BentoML workers) go with the group.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        return self.popen.returncode

    def wait_http(self, url: str, timeout: float, *, expect: int = 200) -> None:
        """Poll `url` until it answers `expect`; ProcessError if the process dies or time runs out."""
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            if not self.alive():
                code = self.popen.returncode
                raise ProcessError(f"{self.name} exited ({code}) before {url} was ready:\n{self.log_tail()}")
            try:
                status, _, body = http("GET", url, timeout=2)
                if status == expect:
                    return
                last = f"{status} {body[:200]!r}"
            except (OSError, urllib.error.URLError) as exc:
                last = str(exc)
            time.sleep(0.1)
        raise ProcessError(
            f"{self.name}: {url} not ready after {timeout}s (last: {last}):\n{self.log_tail()}"
        )


def spawn(
    name: str, argv: Sequence[str], log_path: Path, env: Mapping[str, str], cwd: Path | None = None
) -> Proc:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:
        popen = subprocess.Popen(
            list(argv),
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **env},
            cwd=cwd,
            start_new_session=True,  # own process group: stop() takes the children too
        )
    return Proc(name, popen, log_path)


class Processes:
    """Stops every added process (last started first) when the block ends, even on errors."""

    def __init__(self) -> None:
        self._procs: list[Proc] = []

    def add(self, proc: P) -> P:
        self._procs.append(proc)
        return proc

    def stop_all(self) -> None:
        while self._procs:
            self._procs.pop().stop()

    def __enter__(self) -> Processes:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()
