"""A process exposing sidecar-shaped metrics that grow at known, fixed rates (for analysis tests).

The series are the sidecar's public metric interface (docs/serving.md): names, labels and latency
buckets from `modeldeploy.contract.metrics`, the same the Rust sidecar exposes (the conformance
suite checks the binary against them). Every `tick` seconds it records the configured requests
(and shadow results) in one step, under the same lock that /metrics takes, so every scrape sees
whole ticks and ratios are exact.

    python -m tests.serving.analysis_exporter '<json config>'
    {"port": 9100, "model": "iris", "namespace": "ml", "revision": "aaaa", "tick": 1.0,
     "requests": [{"code": 200, "seconds": 0.05, "count": 7}, {"code": 500, "seconds": 0.4, "count": 3}],
     "shadow": [{"revision": "bbbb", "result": "match", "count": 9}],
     "features": [{"name": "x", "path": "/x", "buckets": [1, 2], "values": [0.5, 1.5, 1.5]}]}

`features` are drift features, each with its own buckets as in a routing table; every tick
observes each value listed once (as a request body `{"x": v}` would be).
"""

from __future__ import annotations

import bisect
import json
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from modeldeploy.contract.metrics import DURATION, FEATURE_VALUES, LATENCY_BUCKETS, LOCAL, REQUESTS, SHADOW

BASE_LABELS = ["model", "namespace", "revision"]


@dataclass
class FeatureSeries:
    name: str
    buckets: list[float]
    counts: list[int] = field(default_factory=list)  # per bucket, the last is +Inf; not cumulative
    total: float = 0.0

    def observe(self, value: float) -> None:
        if not self.counts:
            self.counts = [0] * (len(self.buckets) + 1)
        self.counts[bisect.bisect_left(self.buckets, value)] += 1  # le: the first bound >= value
        self.total += value


class FeatureHistograms(Collector):
    """`modeldeploy_input_feature_value{feature}`: one histogram per feature, each with its buckets."""

    def __init__(self, labels: list[str], features: list[FeatureSeries]) -> None:
        self.labels = labels
        self.features = features

    def collect(self) -> Iterator[Metric]:
        family = HistogramMetricFamily(
            FEATURE_VALUES, "Input feature values seen by this revision.", labels=[*BASE_LABELS, "feature"]
        )
        for feature in self.features:
            counts = feature.counts or [0] * (len(feature.buckets) + 1)
            cumulative, running = [], 0
            for bound, count in zip([*map(str, feature.buckets), "+Inf"], counts, strict=True):
                running += count
                cumulative.append((bound, float(running)))
            family.add_metric([*self.labels, feature.name], cumulative, feature.total)
        yield family


def main(argv: list[str]) -> None:
    config: dict[str, Any] = json.loads(argv[1])
    base = [config["model"], config["namespace"]]
    revision = config["revision"]
    registry = CollectorRegistry()
    requests = Counter(REQUESTS, "Requests answered.", [*BASE_LABELS, "route", "code"], registry=registry)
    duration = Histogram(
        DURATION, "Request latency.", [*BASE_LABELS, "route"], buckets=LATENCY_BUCKETS, registry=registry
    )
    shadow = Counter(SHADOW, "Shadow copies by result.", [*BASE_LABELS, "result"], registry=registry)
    features = [
        FeatureSeries(f["name"], [float(b) for b in f["buckets"]]) for f in config.get("features", [])
    ]
    if features:
        registry.register(FeatureHistograms([*base, revision], features))
    lock = threading.Lock()

    def tick() -> None:
        with lock:
            for spec in config.get("requests", []):
                route = spec.get("route", LOCAL)
                for _ in range(spec["count"]):
                    requests.labels(*base, revision, route, str(spec["code"])).inc()
                    duration.labels(*base, revision, route).observe(spec["seconds"])
            for spec in config.get("shadow", []):
                shadow.labels(*base, spec["revision"], spec["result"]).inc(spec["count"])
            for series, spec in zip(features, config.get("features", []), strict=True):
                for value in spec["values"]:
                    series.observe(float(value))

    def ticker() -> None:
        interval = float(config.get("tick", 1.0))
        next_at = time.monotonic()
        while True:
            tick()
            next_at += interval
            time.sleep(max(0.0, next_at - time.monotonic()))

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path != "/metrics":
                self.send_error(404)
                return
            with lock:
                body = generate_latest(registry)
            self.send_response(200)
            self.send_header("Content-Type", CONTENT_TYPE_LATEST)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    threading.Thread(target=ticker, daemon=True).start()
    ThreadingHTTPServer(("127.0.0.1", int(config["port"])), Handler).serve_forever()


if __name__ == "__main__":
    main(sys.argv)
