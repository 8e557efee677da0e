"""Steady client traffic for the e2e tests, `make demo` and `make bench`: threads posting the iris
example's request to a ModelDeployment's entry Service (its ClusterIP, through kube-proxy on the
real node), recording each answer's status and `x-modeldeploy-revision`."""

from __future__ import annotations

import itertools
import json
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

IRIS_BODY = {"features": [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]}


@dataclass
class Sample:
    at: float
    status: int
    revision: str
    error: str = ""
    """Why a request failed: the sidecar's `x-modeldeploy-error` header and the start of the body
    for an HTTP error, the exception for a connection failure (empty on success)."""


RequestFn = Callable[[int], tuple[Any, dict[str, str]]]
"""Request number -> (JSON body, extra headers), for load whose clients differ (sticky keys, inputs)."""


def iris_request(_: int) -> tuple[Any, dict[str, str]]:
    return IRIS_BODY, {}


@dataclass
class LoadGenerator:
    """Steady traffic into the entry Service (threads, bounded by stop()), through `proxy` (the
    ServiceProxy on KWOK) or, when `proxy` is empty, straight to `url` (a ClusterIP on the real node).

    Every request sends IRIS_BODY unless `request` gives each request's body and extra headers.
    """

    url: str
    proxy: str
    rate: float = 20.0
    threads: int = 2
    request: RequestFn = iris_request
    samples: list[Sample] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _workers: list[threading.Thread] = field(default_factory=list)

    def start(self) -> LoadGenerator:
        self._stop.clear()
        for i in range(self.threads):
            worker = threading.Thread(target=self._run, args=(i,), name=f"load-{i}", daemon=True)
            worker.start()
            self._workers.append(worker)
        return self

    def stop(self) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.join(15)
        self._workers.clear()

    def _run(self, worker: int) -> None:
        # no proxy: straight to the URL (a ClusterIP on the real node)
        opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({"http": self.proxy} if self.proxy else {})
        )
        period = self.threads / self.rate
        numbers = itertools.count(worker, self.threads)  # request numbers are unique across workers
        while not self._stop.is_set():
            started = time.monotonic()
            payload, headers = self.request(next(numbers))
            request = urllib.request.Request(
                self.url,
                data=json.dumps(payload).encode(),
                method="POST",
                headers={"Content-Type": "application/json", **headers},
            )
            try:
                with opener.open(request, timeout=10) as response:
                    self.samples.append(
                        Sample(
                            time.time(), response.status, response.headers.get("x-modeldeploy-revision", "")
                        )
                    )
            except urllib.error.HTTPError as exc:
                body = exc.read(300).decode(errors="replace")
                why = f"{exc.headers.get('x-modeldeploy-error', '')}: {body}"
                self.samples.append(
                    Sample(time.time(), exc.code, exc.headers.get("x-modeldeploy-revision", ""), why)
                )
            except OSError as exc:
                self.samples.append(Sample(time.time(), 0, "", repr(exc)))
            self._stop.wait(max(0.0, period - (time.monotonic() - started)))

    def since(self, t: float) -> list[Sample]:
        return [s for s in list(self.samples) if s.at >= t]

    def by_revision(self, t: float = 0.0) -> Counter[str]:
        return Counter(s.revision for s in self.since(t))
