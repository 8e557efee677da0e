"""The sidecar's Prometheus metrics (names and labels fixed in DESIGN.md).

Labels: `model`, `namespace`, and `revision` = the revision the series is about:
- requests and latency: the revision that produced the response, with `route` = `local` (this pod's
  model) or `canary` (forwarded by a stable sidecar to the canary Service). The canary's own
  sidecar counts the same request again with `route="local"`, so per-revision SLO queries select
  `route="local"` to count every request once, where it was served.
- shadow results: the shadow revision; guard trips: the canary revision that was cut off.
- in-flight requests, routing generation: this sidecar's own revision.
- data path (contract checks, prediction log, drift histograms in drift.py): this sidecar's own
  revision, the one that served the request locally (or, for the prediction log, received it).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from modeldeploy.serving.compare import ShadowResult

LATENCY_BUCKETS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)  # fmt: skip
"""Seconds: 1 ms (a cached or trivial model) to 30 s (large models, the default upstream timeout)."""

LOCAL = "local"
CANARY = "canary"
SHADOW = "shadow"  # route of shadow copies (counted in modeldeploy_shadow_requests_total only)

CONTRACT_FIELDS_MAX = 50
"""Distinct `field` label values of the contract violations counter; later new ones are OTHER_FIELD."""
OTHER_FIELD = "other"


class SidecarMetrics:
    """All sidecar metrics in one registry, with label children cached for the hot path."""

    def __init__(self, model: str, namespace: str, revision: str) -> None:
        self.registry = CollectorRegistry()
        self._base = (model, namespace)
        self.own_revision = revision
        base = ["model", "namespace", "revision"]
        self.requests = Counter(
            "modeldeploy_requests_total",
            "Requests answered, by the revision that answered, route and HTTP status code.",
            [*base, "route", "code"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "modeldeploy_request_duration_seconds",
            "Time from request received to response ready, by answering revision and route.",
            [*base, "route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.inflight = Gauge(
            "modeldeploy_inflight_requests",
            "Requests being handled by this sidecar.",
            base,
            registry=self.registry,
        ).labels(model, namespace, revision)
        self.shadow = Counter(
            "modeldeploy_shadow_requests_total",
            "Shadow copies by result: match|mismatch with the primary response, error, dropped.",
            [*base, "result"],
            registry=self.registry,
        )
        self.guard_trips = Counter(
            "modeldeploy_guard_trips_total",
            "Times the fast guard stopped traffic to a failing canary revision.",
            base,
            registry=self.registry,
        )
        self.guard_tripped = Gauge(
            "modeldeploy_guard_tripped",
            "1 while the fast guard keeps traffic away from this canary revision.",
            base,
            registry=self.registry,
        )
        self.routing_generation = Gauge(
            "modeldeploy_routing_generation",
            "Generation of the routing table in force in this sidecar (-1: none yet).",
            base,
            registry=self.registry,
        ).labels(model, namespace, revision)
        self.routing_generation.set(-1)
        self.routing_errors = Counter(
            "modeldeploy_routing_errors_total",
            "Routing tables rejected (invalid JSON or schema) or watch failures.",
            base,
            registry=self.registry,
        ).labels(model, namespace, revision)
        self.contract_checks = Counter(
            "modeldeploy_contract_checks_total",
            "Request bodies checked against the data contract, by result: pass or violation.",
            [*base, "result"],
            registry=self.registry,
        )
        self.contract_violations = Counter(
            "modeldeploy_contract_violations_total",
            "Data contract violations by field: the JSON pointer of the failing value, array indices "
            f"as *, '/' for the body itself ({CONTRACT_FIELDS_MAX} values at most, then '{OTHER_FIELD}').",
            [*base, "field"],
            registry=self.registry,
        )
        self.prediction_log_lines = Counter(
            "modeldeploy_prediction_log_lines_total",
            "Prediction log lines written.",
            base,
            registry=self.registry,
        ).labels(model, namespace, revision)
        self.prediction_log_dropped = Counter(
            "modeldeploy_prediction_log_dropped_total",
            "Sampled prediction log lines dropped (writer queue full, or the write failed).",
            base,
            registry=self.registry,
        ).labels(model, namespace, revision)
        self.prediction_log_pending = Gauge(
            "modeldeploy_prediction_log_pending",
            "Sampled prediction log lines queued or being written.",
            base,
            registry=self.registry,
        ).labels(model, namespace, revision)
        self._contract_results: dict[str, Counter] = {}
        self._violation_children: dict[str, Counter] = {}
        self._request_children: dict[tuple[str, str, int], Counter] = {}
        self._duration_children: dict[tuple[str, str], Histogram] = {}

    def observe_request(self, revision: str, route: str, code: int, seconds: float) -> None:
        key = (revision, route, code)
        counter = self._request_children.get(key)
        if counter is None:
            counter = self.requests.labels(*self._base, revision, route, str(code))
            self._request_children[key] = counter
        counter.inc()
        dkey = (revision, route)
        histogram = self._duration_children.get(dkey)
        if histogram is None:
            histogram = self._duration_children[dkey] = self.duration.labels(*self._base, revision, route)
        histogram.observe(seconds)

    def announce_contract(self) -> None:
        """Create the contract check series at 0 once a table brings a contract."""
        if not self._contract_results:
            for result in ("pass", "violation"):
                self._contract_results[result] = self.contract_checks.labels(
                    *self._base, self.own_revision, result
                )

    def observe_contract(self, violation_field: str | None) -> None:
        """One contract check of a body served here: None when it passed, else the failing field."""
        self.announce_contract()
        if violation_field is None:
            self._contract_results["pass"].inc()
            return
        self._contract_results["violation"].inc()
        counter = self._violation_children.get(violation_field)
        if counter is None:
            if len(self._violation_children) >= CONTRACT_FIELDS_MAX:
                violation_field = OTHER_FIELD
                counter = self._violation_children.get(violation_field)
            if counter is None:
                counter = self.contract_violations.labels(*self._base, self.own_revision, violation_field)
                self._violation_children[violation_field] = counter
        counter.inc()

    def announce_canary(self, canary_revision: str) -> None:
        """Create the guard series at 0 for a new canary, so rate() and absence checks work."""
        self.guard_trips.labels(*self._base, canary_revision)
        self.guard_tripped.labels(*self._base, canary_revision).set(0)

    def announce_shadow(self, shadow_revision: str) -> None:
        """Create the shadow series at 0 for a new shadow revision."""
        for verdict in ShadowResult:
            self.shadow.labels(*self._base, shadow_revision, verdict.value)

    def observe_shadow(self, shadow_revision: str, verdict: ShadowResult) -> None:
        self.shadow.labels(*self._base, shadow_revision, verdict.value).inc()

    def observe_guard_trip(self, canary_revision: str) -> None:
        self.guard_trips.labels(*self._base, canary_revision).inc()
        self.guard_tripped.labels(*self._base, canary_revision).set(1)

    def clear_guard(self, canary_revision: str) -> None:
        self.guard_tripped.labels(*self._base, canary_revision).set(0)
