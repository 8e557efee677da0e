"""Analysis values over the rollout, recorded from the status the watch delivers.

`status.analysis.results` holds the latest run only; the charts of "each analysis metric's value
against its threshold" need every run. The dashboard records one sample per metric each time
`status.analysis.lastRun` moves, for as long as it runs (it cannot know runs from before it started:
the operator keeps no longer record; the Prometheus charts cover the earlier part of a rollout).
"""

from __future__ import annotations

from collections import deque
from typing import Any

MAX_SAMPLES = 2000
"""Per ModelDeployment; at one run every 30 s and five metrics this is more than five hours."""


class AnalysisRecorder:
    def __init__(self, max_samples: int = MAX_SAMPLES) -> None:
        self.max_samples = max_samples
        self._samples: dict[str, deque[dict[str, Any]]] = {}
        self._last_run: dict[str, str] = {}

    def observe(self, snap: dict[str, Any]) -> bool:
        """Record the latest run of `snap` (a snapshot.snapshot()) if it is new; True if it was."""
        key = snap["key"]
        analysis = snap["analysis"]
        last_run = analysis.get("lastRun")
        if not last_run or self._last_run.get(key) == last_run or not analysis["results"]:
            return False
        self._last_run[key] = last_run
        samples = self._samples.setdefault(key, deque(maxlen=self.max_samples))
        revision = snap["canary"]["revision"] or snap["abortedRevision"] or snap["stable"]["revision"]
        for result in analysis["results"]:
            samples.append(
                {
                    "at": last_run,
                    "revision": revision,
                    "metric": result["metric"],
                    "value": result.get("value"),
                    "threshold": result.get("threshold"),
                    "verdict": result["verdict"],
                    "message": result.get("message", ""),
                }
            )
        return True

    def samples(self, key: str) -> list[dict[str, Any]]:
        return list(self._samples.get(key, ()))

    def forget(self, key: str) -> None:
        self._samples.pop(key, None)
        self._last_run.pop(key, None)
