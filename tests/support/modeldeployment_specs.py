"""ModelDeployment manifests for tests: a valid one, and invalid variants with the message a user sees.

The same table drives the unit tests (pydantic must reject each spec) and the API tests (the real
API server must reject each with the CEL/OpenAPI message), so the two layers cannot drift apart.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tests.support.modeldeployments import modeldeployment

Manifest = dict[str, Any]


def valid_manifest(name: str = "iris") -> Manifest:
    """A small valid ModelDeployment (shadow, two canary steps, a pause) with a few analysis settings."""
    analysis = {
        "slo": {"latencyP99": "250ms"},
        "metrics": [{"name": "score-mean", "query": "avg(score)", "max": 0.5}],
    }
    return modeldeployment(
        name, "registry.example.com/iris:2.0", env={"A": "1"}, analysis=analysis, drain_period=None
    )


@dataclass(frozen=True)
class InvalidSpec:
    """A change that makes `valid_manifest()` invalid, and what the user is told."""

    id: str
    change: Callable[[dict[str, Any]], None]
    """Mutates `spec` in place."""
    server_message: str
    """Text the API server's rejection must contain (as printed by kubectl)."""
    local_message: str | None
    """Text pydantic's ValidationError must contain; None where only the API server checks it."""

    def manifest(self, name: str) -> Manifest:
        manifest = valid_manifest(name)
        self.change(manifest["spec"])
        return manifest


def _steps(spec: dict[str, Any], *steps: dict[str, Any]) -> None:
    spec["rollout"]["steps"] = list(steps)


def _analysis(spec: dict[str, Any]) -> dict[str, Any]:
    analysis: dict[str, Any] = spec["rollout"]["analysis"]
    return analysis


def _canary(weight: float, duration: str = "1m") -> dict[str, Any]:
    return {"canary": {"weight": weight, "duration": duration}}


def _shadow(percent: float, duration: str = "1m") -> dict[str, Any]:
    return {"shadow": {"percent": percent, "duration": duration}}


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """A change setting spec.<path> (dotted) to value."""

    def change(spec: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = spec
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = copy.deepcopy(value)

    return change


def _all(*changes: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, Any]], None]:
    """Several changes applied in order."""

    def change(spec: dict[str, Any]) -> None:
        for one in changes:
            one(spec)

    return change


def _drop(path: str) -> Callable[[dict[str, Any]], None]:
    def change(spec: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = spec
        for key in parents:
            node = node[key]
        del node[last]

    return change


def _then(*changes: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, Any]], None]:
    def change(spec: dict[str, Any]) -> None:
        for one in changes:
            one(spec)

    return change


DURATION_HINT = "must be a duration such as 250ms, 30s, 2m or 1h30m"

INVALID_SPECS: tuple[InvalidSpec, ...] = (
    InvalidSpec("missing-image", _drop("model.image"), "spec.model.image: Required value", "model.image"),
    InvalidSpec(
        "no-steps",
        _set("rollout.steps", []),
        "rollout.steps must contain at least one step",
        "rollout.steps must contain at least one step",
    ),
    InvalidSpec(
        "step-with-two-kinds",
        lambda spec: _steps(spec, {**_canary(10), "pause": {}}),
        'spec.rollout.steps[0]: Invalid value: "object": must set exactly one of shadow, canary or pause',
        "each step must set exactly one of shadow, canary or pause",
    ),
    InvalidSpec(
        "empty-step",
        lambda spec: _steps(spec, _canary(10), {}),
        'spec.rollout.steps[1]: Invalid value: "object": must set exactly one of shadow, canary or pause',
        "each step must set exactly one of shadow, canary or pause",
    ),
    InvalidSpec(
        "canary-weight-over-100",
        lambda spec: _steps(spec, _canary(150)),
        "spec.rollout.steps[0].canary.weight in body should be less than or equal to 100",
        "less than or equal to 100",
    ),
    InvalidSpec(
        "canary-weights-decrease",
        lambda spec: _steps(spec, _canary(50), {"pause": {}}, _canary(20)),
        "canary weights must not decrease from one step to the next",
        "canary weights must not decrease from one step to the next",
    ),
    InvalidSpec(
        "shadow-percent-negative",
        lambda spec: _steps(spec, _shadow(-5), _canary(10)),
        "spec.rollout.steps[0].shadow.percent in body should be greater than or equal to 0",
        "greater than or equal to 0",
    ),
    InvalidSpec(
        "shadow-percent-over-100",
        lambda spec: _steps(spec, _shadow(101)),
        "spec.rollout.steps[0].shadow.percent in body should be less than or equal to 100",
        "less than or equal to 100",
    ),
    InvalidSpec(
        "shadow-after-canary",
        lambda spec: _steps(spec, _canary(10), _shadow(100)),
        "shadow steps must come before canary steps",
        "shadow steps must come before canary steps",
    ),
    InvalidSpec(
        "duration-in-words",
        lambda spec: _steps(spec, _canary(10, "5 minutes")),
        DURATION_HINT,
        "use a duration such as 250ms, 30s, 2m or 1h30m",
    ),
    InvalidSpec(
        "duration-in-days",
        _set("progressDeadline", "1d"),
        DURATION_HINT,
        "days are not a unit: use e.g. 24h",
    ),
    InvalidSpec(
        "zero-step-duration",
        lambda spec: _steps(spec, _canary(10, "0s")),
        'spec.rollout.steps[0].canary.duration: Invalid value: "string": must be greater than zero',
        "duration must be greater than zero",
    ),
    InvalidSpec(
        "zero-latency-slo",
        _set("rollout.analysis.slo.latencyP99", "0ms"),
        'spec.rollout.analysis.slo.latencyP99: Invalid value: "string": must be greater than zero',
        "duration must be greater than zero",
    ),
    InvalidSpec(
        "error-rate-over-1",
        _set("rollout.analysis.slo.errorRate", 1.5),
        "spec.rollout.analysis.slo.errorRate in body should be less than or equal to 1",
        "less than or equal to 1",
    ),
    InvalidSpec(
        "latency-ratio-not-positive",
        _set("rollout.analysis.slo.maxLatencyRatioToStable", 0),
        "spec.rollout.analysis.slo.maxLatencyRatioToStable in body should be greater than 0",
        "greater than 0",
    ),
    InvalidSpec(
        "metric-without-threshold",
        _set("rollout.analysis.metrics", [{"name": "p50", "query": "avg(x)"}]),
        "a custom metric needs a min or a max threshold",
        "a custom metric needs a min or a max threshold",
    ),
    InvalidSpec(
        "metric-min-above-max",
        _set("rollout.analysis.metrics", [{"name": "p50", "query": "avg(x)", "min": 2, "max": 1}]),
        "min must not be greater than max",
        "min must not be greater than max",
    ),
    InvalidSpec(
        "duplicate-metric-names",
        _set(
            "rollout.analysis.metrics",
            [{"name": "p50", "query": "avg(x)", "max": 1}, {"name": "p50", "query": "avg(y)", "max": 1}],
        ),
        'spec.rollout.analysis.metrics[1]: Duplicate value: {"name":"p50"}',
        "metric names must be unique: p50",
    ),
    InvalidSpec(
        "metric-name-with-spaces",
        _set("rollout.analysis.metrics", [{"name": "Score Mean", "query": "avg(x)", "max": 1}]),
        'spec.rollout.analysis.metrics[0].name: Invalid value: "string": must be lowercase letters, digits,'
        " '-' or '_', start with a letter and end with a letter or digit",
        "must be lowercase letters, digits, '-' or '_', start with a letter and end with a letter or digit",
    ),
    InvalidSpec(
        "unknown-query-placeholder",
        _set("rollout.analysis.metrics", [{"name": "p50", "query": 'avg(x{pod="{{pod}}"})', "max": 1}]),
        'spec.rollout.analysis.metrics[0].query: Invalid value: "string": query may only use the placeholders'
        " {{model}}, {{namespace}}, {{revision}}, {{stableRevision}} and {{interval}}",
        "not {{pod}}",
    ),
    InvalidSpec(
        "unknown-on-inconclusive",
        _set("rollout.analysis.onInconclusive", "Promote"),
        'spec.rollout.analysis.onInconclusive: Unsupported value: "Promote": '
        'supported values: "Pause", "Fail"',
        "Input should be 'Pause' or 'Fail'",
    ),
    InvalidSpec(
        "failure-limit-zero",
        _set("rollout.analysis.failureLimit", 0),
        "spec.rollout.analysis.failureLimit in body should be greater than or equal to 1",
        "greater than or equal to 1",
    ),
    InvalidSpec(
        "confidence-one",
        _set("rollout.analysis.confidence", 1),
        "confidence must be at least 0.5 and below 1, e.g. 0.95",
        "confidence must be at least 0.5 and below 1, e.g. 0.95",
    ),
    InvalidSpec(
        "analysis-method-unknown",
        _set("rollout.analysis.method", "bayesian"),
        'supported values: "fixed", "sequential"',
        "Input should be 'fixed' or 'sequential'",
    ),
    InvalidSpec(
        "tolerance-without-sequential",
        _set("rollout.analysis.tolerance", 0.005),
        "tolerance needs method: sequential; set method: sequential or remove tolerance",
        "tolerance needs method: sequential; set method: sequential or remove tolerance",
    ),
    InvalidSpec(
        "tolerance-without-comparison",
        _all(_set("rollout.analysis.method", "sequential"), _set("rollout.analysis.tolerance", 0.005)),
        "tolerance needs slo.maxErrorRateDeltaToStable or slo.maxSlowShareDeltaToStable",
        "tolerance needs slo.maxErrorRateDeltaToStable or slo.maxSlowShareDeltaToStable",
    ),
    InvalidSpec(
        "slow-share-without-sequential",
        _set("rollout.analysis.slo.maxSlowShareDeltaToStable", 0.05),
        "slo.maxSlowShareDeltaToStable needs method: sequential",
        "slo.maxSlowShareDeltaToStable needs method: sequential",
    ),
    InvalidSpec(
        "prometheus-url-without-scheme",
        _set("prometheus", {"url": "prometheus.monitoring:9090"}),
        "prometheus.url must start with http:// or https://",
        "prometheus.url must start with http:// or https://",
    ),
    InvalidSpec(
        "env-value-and-value-from",
        _set(
            "model.env",
            [{"name": "TOKEN", "value": "x", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}],
        ),
        "env var may set value or valueFrom, not both",
        "may set value or valueFrom, not both",
    ),
    InvalidSpec(
        "env-value-from-two-sources",
        _set(
            "model.env",
            [
                {
                    "name": "TOKEN",
                    "valueFrom": {
                        "secretKeyRef": {"name": "s", "key": "k"},
                        "configMapKeyRef": {"name": "c", "key": "k"},
                    },
                }
            ],
        ),
        "valueFrom must set exactly one of secretKeyRef, configMapKeyRef, fieldRef or resourceFieldRef",
        "valueFrom must set exactly one of secretKeyRef, configMapKeyRef, fieldRef or resourceFieldRef",
    ),
    InvalidSpec(
        "duplicate-env-names",
        _set("model.env", [{"name": "A", "value": "1"}, {"name": "A", "value": "2"}]),
        'spec.model.env[1]: Duplicate value: {"name":"A"}',
        "env var A is defined twice",
    ),
    InvalidSpec(
        "bad-resource-quantity",
        _set("model.resources", {"limits": {"memory": "lots"}}),
        'spec.model.resources.limits[memory]: Invalid value: "": must be a quantity such as 500m, 2,'
        " 1.5, 512Mi or 1Gi",
        "invalid resource quantity 'lots': use e.g. 500m, 2, 1.5, 512Mi or 1Gi",
    ),
    InvalidSpec(
        "port-out-of-range",
        _set("model.port", 70000),
        "spec.model.port in body should be less than or equal to 65535",
        "less than or equal to 65535",
    ),
    InvalidSpec(
        "zero-replicas",
        _set("replicas", 0),
        "spec.replicas in body should be greater than or equal to 1",
        "greater than or equal to 1",
    ),
    InvalidSpec(
        "sticky-header-with-space",
        _set("traffic", {"stickyHeader": "x model key"}),
        'spec.traffic.stickyHeader: Invalid value: "string": must be an HTTP header name such as '
        "x-modeldeploy-key (no spaces)",
        "must be an HTTP header name such as x-modeldeploy-key (no spaces), got 'x model key'",
    ),
    InvalidSpec(
        "probe-path-without-slash",
        _set("model.readinessProbe", {"httpGet": {"path": "readyz"}}),
        'spec.model.readinessProbe.httpGet.path: Invalid value: "string": must start with /',
        "must start with /, got 'readyz'",
    ),
    InvalidSpec(
        "env-name-starting-with-digit",
        _set("model.env", [{"name": "1ST", "value": "x"}]),
        "spec.model.env[0].name: Invalid value: \"string\": must consist of letters, digits, '_', '-' or"
        " '.' and not start with a digit",
        "must consist of letters, digits, '_', '-' or '.' and not start with a digit",
    ),
    InvalidSpec(
        "golden-requests-without-source",
        _set("guardrails.goldenRequests", {"tolerance": 0.1}),
        'spec.guardrails.goldenRequests: Invalid value: "object": goldenRequests must set exactly one of '
        "requests or configMapRef",
        "goldenRequests must set exactly one of requests or configMapRef",
    ),
    InvalidSpec(
        "golden-request-names-repeated",
        _set(
            "guardrails.goldenRequests.requests",
            [{"name": "a", "path": "/classify"}, {"name": "a", "path": "/classify"}],
        ),
        "golden request names must be unique",
        "golden request names must be unique, repeated: a",
    ),
    InvalidSpec(
        "golden-request-path-without-slash",
        _set("guardrails.goldenRequests.requests", [{"name": "a", "path": "classify"}]),
        'spec.guardrails.goldenRequests.requests[0].path: Invalid value: "string": must start with /',
        "must start with /, got 'classify'",
    ),
    InvalidSpec(
        "contract-schema-and-configmap",
        _set(
            "guardrails.contract",
            {"schema": {"type": "object"}, "configMapRef": {"name": "c", "key": "schema.json"}},
        ),
        "contract must set exactly one of schema or configMapRef",
        "contract must set exactly one of schema or configMapRef",
    ),
    InvalidSpec(
        "prediction-log-file-without-path",
        _set("guardrails.predictionLog", {"sampleRate": 0.1, "sink": "file"}),
        "predictionLog.path is required when sink is file",
        "predictionLog.path is required when sink is file",
    ),
    InvalidSpec(
        "prediction-log-rate-over-one",
        _set("guardrails.predictionLog", {"sampleRate": 1.5}),
        "spec.guardrails.predictionLog.sampleRate: Invalid value: 1.5: "
        "spec.guardrails.predictionLog.sampleRate in body should be less than or equal to 1",
        "less than or equal to 1",
    ),
    InvalidSpec(
        "drift-buckets-not-increasing",
        _set("guardrails.drift", {"features": [{"name": "x", "path": "/x", "buckets": [1, 3, 2]}]}),
        'spec.guardrails.drift.features[0].buckets: Invalid value: "array": '
        "buckets must be strictly increasing",
        "buckets must be strictly increasing",
    ),
    InvalidSpec(
        "drift-feature-names-repeated",
        _set(
            "guardrails.drift",
            {
                "features": [
                    {"name": "x", "path": "/x", "buckets": [1]},
                    {"name": "x", "path": "/y", "buckets": [1]},
                ]
            },
        ),
        "drift feature names must be unique",
        "drift feature names must be unique",
    ),
    InvalidSpec(
        "misspelt-field",
        _then(_drop("replicas"), _set("replica", 3)),
        'unknown field "spec.replica"',
        None,
    ),
    # --- spec.template: Kubernetes' own schema (api/kubeschema.py) gives Kubernetes' own messages ---
    InvalidSpec(
        "template-misspelt-pod-field",
        _set("template.spec.nodeSelectr", {"gpu": "a100"}),
        'unknown field "spec.template.spec.nodeSelectr"',
        None,
    ),
    InvalidSpec(
        "template-left-out-field",
        _set("template.spec.nodeName", "node-1"),
        'unknown field "spec.template.spec.nodeName"',
        None,
    ),
    InvalidSpec(
        "template-metadata-name",
        _set("template.metadata.name", "x"),
        'unknown field "spec.template.metadata.name"',
        None,
    ),
    InvalidSpec(
        "template-dns-policy",
        _set("template.spec.dnsPolicy", "Bogus"),
        'spec.template.spec.dnsPolicy: Unsupported value: "Bogus": supported values: '
        '"ClusterFirst", "ClusterFirstWithHostNet", "Default", "None"',
        None,
    ),
    InvalidSpec(
        "template-toleration-operator",
        _set("template.spec.tolerations", [{"key": "gpu", "operator": "Maybe"}]),
        'spec.template.spec.tolerations[0].operator: Unsupported value: "Maybe": supported values: '
        '"Equal", "Exists"',
        None,
    ),
    InvalidSpec(
        "template-grace-period-type",
        _set("template.spec.terminationGracePeriodSeconds", "soon"),
        "spec.template.spec.terminationGracePeriodSeconds in body must be of type integer",
        None,
    ),
    InvalidSpec(
        "template-node-selector-value-type",
        _set("template.spec.nodeSelector", {"gpu": 1}),
        "spec.template.spec.nodeSelector.gpu in body must be of type string",
        None,
    ),
    InvalidSpec(
        "template-volume-without-name",
        _set("template.spec.volumes", [{"emptyDir": {}}]),
        "spec.template.spec.volumes[0].name: Required value",
        None,
    ),
    InvalidSpec(
        "template-duplicate-container",
        _set(
            "template.spec.containers",
            [{"name": "exporter", "image": "a"}, {"name": "exporter", "image": "b"}],
        ),
        'spec.template.spec.containers[1]: Duplicate value: {"name":"exporter"}',
        None,
    ),
    InvalidSpec(
        "template-spread-without-max-skew",
        _set(
            "template.spec.topologySpreadConstraints",
            [{"topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule"}],
        ),
        "spec.template.spec.topologySpreadConstraints[0].maxSkew: Required value",
        None,
    ),
    InvalidSpec(
        "template-node-affinity-without-terms",
        _set(
            "template.spec.affinity", {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {}}}
        ),
        "spec.template.spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution"
        ".nodeSelectorTerms: Required value",
        None,
    ),
    InvalidSpec(
        "template-port-protocol",
        _set(
            "template.spec.containers",
            [{"name": "model", "ports": [{"containerPort": 9000, "protocol": "HTTP"}]}],
        ),
        'spec.template.spec.containers[0].ports[0].protocol: Unsupported value: "HTTP": supported values: '
        '"SCTP", "TCP", "UDP"',
        None,
    ),
    InvalidSpec(
        "template-run-as-user-type",
        _set("template.spec.securityContext", {"runAsUser": "root"}),
        "spec.template.spec.securityContext.runAsUser in body must be of type integer",
        None,
    ),
    InvalidSpec(
        "template-quantity",
        _set(
            "template.spec.containers",
            [{"name": "exporter", "image": "e", "resources": {"limits": {"cpu": "lots"}}}],
        ),
        "spec.template.spec.containers[0].resources.limits.cpu in body should match",
        None,
    ),
    # --- spec.template: the composition rules (CEL, with pydantic twins) ---
    InvalidSpec(
        "template-sidecar-container",
        _set("template.spec.containers", [{"name": "sidecar", "image": "mine"}]),
        "container name sidecar is reserved for the modeldeploy sidecar",
        "container name sidecar is reserved for the modeldeploy sidecar",
    ),
    InvalidSpec(
        "template-reserved-volume",
        _set("template.spec.volumes", [{"name": "sidecar-tmp", "emptyDir": {}}]),
        "volume names model-tmp and sidecar-tmp are reserved",
        "volume names model-tmp and sidecar-tmp are reserved",
    ),
    InvalidSpec(
        "template-model-image",
        _set("template.spec.containers", [{"name": "model", "image": "other:1"}]),
        "the model container's image, imagePullPolicy, command, args, env, resources, readinessProbe and "
        "livenessProbe are set in spec.model",
        "are set in spec.model",
    ),
)
