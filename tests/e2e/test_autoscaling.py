"""A HorizontalPodAutoscaler scales a ModelDeployment on the real node (issue 17).

The metrics are real: metrics-server (built from its Go module, tests/support/metrics_server.py)
reads the kubelet's cAdvisor CPU figures of the model Pods; the HPA controller in the local
controller-manager reads them through the aggregation layer and writes `spec.replicas` through the
ModelDeployment's scale subresource; the operator sizes the revisions from it. The test scales
1 -> N under load and back to 1 without load, while a canary step runs: the canary's replicas
follow the weight (ceil(replicas x weight / 100)), the step is neither restarted nor skipped.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from modeldeploy.contract.labels import MODEL_LABEL, REVISION_LABEL
from tests.cluster.localcluster import LocalCluster
from tests.support.e2e_objects import GROUP, VERSION
from tests.support.e2e_scenarios import deploy_stable, modeldeployment
from tests.support.metrics_server import MetricsServer, start_metrics_server
from tests.support.real_env import RealNodeEnv

pytestmark = [pytest.mark.e2e, pytest.mark.cluster, pytest.mark.slow]

NAME = "scaled"
MAX_REPLICAS = 3
CANARY_WEIGHT = 50
TARGET_CPU_UTILIZATION = 40
# The model's CPU request: what utilization is measured against. An iris Pod at ~25 requests/s
# uses several times this; idle it uses a fraction.
MODEL_CPU_REQUEST = "100m"


@pytest.fixture(scope="module")
def metrics(real_cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[MetricsServer]:
    server = start_metrics_server(real_cluster, tmp_path_factory.mktemp("metrics-server"))
    try:
        yield server
    finally:
        server.stop()


def hpa(name: str) -> dict[str, Any]:
    """An autoscaling/v2 HPA on the ModelDeployment's CPU; quick in both directions (a test does not
    wait out the default 5-minute scale-down stabilization)."""
    quick = {"stabilizationWindowSeconds": 0, "policies": [{"type": "Pods", "value": 2, "periodSeconds": 15}]}
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": name},
        "spec": {
            "scaleTargetRef": {"apiVersion": f"{GROUP}/{VERSION}", "kind": "ModelDeployment", "name": name},
            "minReplicas": 1,
            "maxReplicas": MAX_REPLICAS,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": TARGET_CPU_UTILIZATION},
                    },
                }
            ],
            "behavior": {"scaleUp": quick, "scaleDown": quick},
        },
    }


def deployment_replicas(env: RealNodeEnv, revision: str) -> int:
    apps = client.AppsV1Api(env.api)
    items = apps.list_namespaced_deployment(
        env.namespace, label_selector=f"{MODEL_LABEL}={NAME},{REVISION_LABEL}={revision}"
    ).items
    assert len(items) == 1, f"one Deployment per revision, found {[d.metadata.name for d in items]}"
    return int(items[0].spec.replicas)


def spec_replicas(env: RealNodeEnv) -> int:
    return int(env.get(NAME)["spec"]["replicas"])


def hpa_utilization(env: RealNodeEnv) -> int | None:
    """The CPU utilization (% of requests, averaged over the model's Pods) the HPA last measured."""
    hpa_status = (
        client.AutoscalingV2Api(env.api).read_namespaced_horizontal_pod_autoscaler(NAME, env.namespace).status
    )
    for metric in hpa_status.current_metrics or []:
        if metric.type == "Resource" and metric.resource.name == "cpu":
            value = metric.resource.current.average_utilization
            return None if value is None else int(value)
    return None


def hpa_state(env: RealNodeEnv) -> str:
    out = env.cluster.kubectl("get", "hpa", NAME, "-n", env.namespace, "-o", "wide", check=False)
    return out.stdout + out.stderr


def test_hpa_scales_a_modeldeployment_up_under_load_and_down_again_during_a_canary_step(
    env: RealNodeEnv, metrics: MetricsServer
) -> None:
    fields = {**env.model_fields, "resources": {"requests": {"cpu": MODEL_CPU_REQUEST}}}
    steps = [{"canary": {"weight": CANARY_WEIGHT, "duration": "30m"}}]
    # Generous limits: this test is about sizing; a loaded 2-core machine must not roll it back.
    analysis = {"interval": "5s", "failureLimit": 5, "minRequests": 20, "slo": {"errorRate": 0.5}}
    assert env.prometheus is not None
    stable = deploy_stable(env, NAME, model_fields=fields, steps=steps, analysis=analysis)
    env.apply(hpa(NAME))

    # the canary step starts at one replica: canary = ceil(1 x 50%) = 1
    new = modeldeployment(
        NAME, env.prometheus.url, model_fields=fields, variant="b", steps=steps, analysis=analysis
    )
    env.patch_spec(NAME, {"model": new["spec"]["model"]})
    status = env.wait(
        lambda: (s := env.status(NAME)).get("currentStep") == 0 and s.get("canaryRevision") and s,
        120,
        "the canary step to start",
    )
    canary = status["canaryRevision"]
    env.runner.wait_ready(canary, 1, timeout=180)
    assert spec_replicas(env) == 1
    # Without load the HPA measures the Pods below its target (a just-started model server burns CPU
    # while it loads: wait that out), so the scale-up below is the load's doing.
    env.wait(
        lambda: (u := hpa_utilization(env)) is not None and u < TARGET_CPU_UTILIZATION,
        240,
        f"the HPA to measure {NAME}'s Pods idle (below {TARGET_CPU_UTILIZATION}% CPU)\n{hpa_state(env)}",
    )
    assert spec_replicas(env) == 1

    load = env.start_load(NAME, rate=25)
    scaled_to = env.wait(
        lambda: (n := spec_replicas(env)) > 1 and n,
        300,
        f"the HPA to scale {NAME} up under load\n{hpa_state(env)}",
    )
    expected_canary = math.ceil(scaled_to * CANARY_WEIGHT / 100)
    env.wait(
        lambda: (
            deployment_replicas(env, canary) == expected_canary
            and deployment_replicas(env, stable) == scaled_to
        ),
        60,
        f"stable at {scaled_to} and the canary at {expected_canary} replicas",
    )
    during = env.status(NAME)
    assert during.get("phase") == "Progressing" and during.get("currentStep") == 0, during
    assert during.get("canaryRevision") == canary, "scaling must not start a new revision"
    assert int(during.get("replicas") or 0) >= 1

    load.stop()
    env.wait(
        lambda: spec_replicas(env) == 1,
        300,
        f"the HPA to scale {NAME} back to 1 without load\n{hpa_state(env)}",
    )
    env.wait(
        lambda: deployment_replicas(env, canary) == 1 and deployment_replicas(env, stable) == 1,
        60,
        "stable and canary back at 1 replica",
    )
    after = env.status(NAME)
    assert after.get("phase") == "Progressing" and after.get("currentStep") == 0, after
    assert after.get("canaryRevision") == canary and after.get("stableRevision") == stable
    assert metrics.node_cpu_millis() is not None
