"""Run `kubectl modeldeploy dashboard` as a process, talk to it over HTTP, and open it in Chromium.

    with running_dashboard(cluster, log_dir, "--enable-actions") as dash:
        status, body = dash.request("GET", "/api/modeldeployments")
        with chromium_page() as page:
            page.goto(dash.url)

The browser is Debian's `chromium` driven by Playwright through `executable_path` (Playwright's own
browser downloads are never used: CI has no route to them).
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
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from playwright.sync_api import Page, sync_playwright

from tests.cluster.localcluster import LocalCluster, free_port

CHROMIUM = Path(os.environ.get("MODELDEPLOY_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",  # CI runs as root
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
"""Playwright adds --headless and a fresh --user-data-dir (a temporary profile) itself."""


class DashboardProcess:
    def __init__(self, cluster: LocalCluster, log: Path, extra_args: tuple[str, ...] = ()) -> None:
        self.cluster = cluster
        self.log = log
        self.port = free_port()
        self.extra_args = extra_args
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def start(self, timeout: float = 30.0) -> DashboardProcess:
        args = ["dashboard", "--kubeconfig", str(self.cluster.kubeconfig), "--port", str(self.port)]
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "modeldeploy.operator.cli.main", *args, *self.extra_args],
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"the dashboard exited ({self.proc.returncode}):\n{self.logs()}")
            with contextlib.suppress(OSError):
                if self.request("GET", "/api/modeldeployments")[0] == 200:
                    return self
            time.sleep(0.2)
        raise AssertionError(f"the dashboard did not answer within {timeout}s:\n{self.logs()}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()

    def logs(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def request(
        self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        """(status, parsed JSON body) of one request to the dashboard; raises on a non-JSON answer."""
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}", data=body, method=method, headers=headers or {}
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            content_type = exc.headers.get("Content-Type", "")
            assert content_type.startswith("application/json"), f"{method} {path}: {exc.code} {content_type}"
            return exc.code, json.loads(exc.read())

    def item(self, key: str, timeout: float = 30.0) -> dict[str, Any]:
        """The snapshot of ModelDeployment `key` ("namespace/name") once the dashboard's watch has it."""
        deadline = time.monotonic() + timeout
        while True:
            status, state = self.request("GET", "/api/modeldeployments")
            assert status == 200, state
            found = [item for item in state["items"] if item["key"] == key]
            if found:
                return dict(found[0])
            if time.monotonic() > deadline:
                raise AssertionError(f"{key} not among {[i['key'] for i in state['items']]} after {timeout}s")
            time.sleep(0.2)


@contextlib.contextmanager
def running_dashboard(cluster: LocalCluster, log_dir: Path, *extra_args: str) -> Iterator[DashboardProcess]:
    log = log_dir / f"dashboard-{int(time.time() * 1000)}.log"
    dashboard = DashboardProcess(cluster, log, extra_args).start()
    try:
        yield dashboard
    finally:
        dashboard.stop()


@contextlib.contextmanager
def chromium_page(width: int = 1000, height: int = 900) -> Iterator[Page]:
    """A page in headless Debian Chromium (fresh profile), closed afterwards."""
    assert CHROMIUM.exists(), f"{CHROMIUM} missing: make install-system installs Debian's chromium"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            yield page
        finally:
            browser.close()
