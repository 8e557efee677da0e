"""A process exposing sidecar-shaped metrics that grow at known, fixed rates (for analysis tests).

It uses the sidecar's own `SidecarMetrics`, so metric names and labels are exactly the sidecar's.
Every `tick` seconds it records the configured requests (and shadow results) in one step, under the
same lock that /metrics takes, so every scrape sees whole ticks and ratios are exact.

    python -m tests.serving.analysis_exporter '<json config>'
    {"port": 9100, "model": "iris", "namespace": "ml", "revision": "aaaa", "tick": 1.0,
     "requests": [{"code": 200, "seconds": 0.05, "count": 7}, {"code": 500, "seconds": 0.4, "count": 3}],
     "shadow": [{"revision": "bbbb", "result": "match", "count": 9}],
     "features": [{"name": "x", "path": "/x", "buckets": [1, 2], "values": [0.5, 1.5, 1.5]}]}

`features` are drift features (the sidecar's own `FeatureHistograms`); every tick observes one
request body `{"x": v}` per value listed.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from modeldeploy.contract.routing import DriftSettings
from modeldeploy.serving.compare import Verdict
from modeldeploy.serving.drift import FeatureHistograms
from modeldeploy.serving.metrics import LOCAL, SidecarMetrics


def main(argv: list[str]) -> None:
    config: dict[str, Any] = json.loads(argv[1])
    metrics = SidecarMetrics(config["model"], config["namespace"], config["revision"])
    lock = threading.Lock()
    revision = config["revision"]
    features = config.get("features", [])
    histograms = FeatureHistograms(config["model"], config["namespace"], revision)
    if features:
        histograms.configure(
            DriftSettings.model_validate(
                {"features": [{k: f[k] for k in ("name", "path", "buckets")} for f in features]}
            )
        )
        metrics.registry.register(histograms)

    def tick() -> None:
        with lock:
            for spec in config.get("requests", []):
                for _ in range(spec["count"]):
                    metrics.observe_request(revision, spec.get("route", LOCAL), spec["code"], spec["seconds"])
            for spec in config.get("shadow", []):
                for _ in range(spec["count"]):
                    metrics.observe_shadow(spec["revision"], Verdict(spec["result"]))
            for feature in features:
                key = feature["path"].lstrip("/")
                for value in feature["values"]:
                    histograms.observe({key: value})

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
                body = generate_latest(metrics.registry)
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
