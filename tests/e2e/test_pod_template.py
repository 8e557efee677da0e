"""End to end on the real node: spec.template for a real model (issue 17), in examples/gpu.yaml's shape.

A model asking for an extended resource (`example.com/gpu`, advertised on the node by a patch of
the Node's status, the way a device plugin or an administrator advertises one), with a
nodeSelector and a toleration for the tainted "GPU" node, is first refused by the scheduler for
want of that resource, then scheduled and served once the node has it; a ConfigMap volume
mounted into the model container through spec.template is read by the model server (its answer
shows the file's content); the Pod runs under the template's ServiceAccount (its token says so)
and its sidecar reads the routing table with that token.

The node's label, taint and extended resource are removed afterwards (tests/support/node_setup.py).
"""

from __future__ import annotations

import base64
import json
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from tests.cluster.kubelet import NODE_NAME
from tests.support.e2e_scenarios import modeldeployment, prom_url
from tests.support.load import iris_request
from tests.support.node_setup import FakeGpuNode
from tests.support.real_env import RealNodeEnv

pytestmark = [pytest.mark.e2e, pytest.mark.cluster, pytest.mark.slow]

GPU = "example.com/gpu"
POOL_LABEL = "example.com/accelerator"
SERVICE_ACCOUNT = "iris-reader"
SETTINGS = "iris-settings"
VARIANT_FROM_FILE = "from-configmap"
ENTRYPOINT = "/home/bentoml/bento/env/docker/entrypoint.sh"
"""The iris image's ENTRYPOINT (the one `bentoml containerize` renders)."""


@pytest.fixture
def gpu_node(env: RealNodeEnv) -> Iterator[FakeGpuNode]:
    node = FakeGpuNode(env.cluster, NODE_NAME, resource=GPU, label=(POOL_LABEL, "fake-gpu"))
    try:
        node.label_and_taint()
        yield node
    finally:
        node.restore()


def gpu_modeldeployment(env: RealNodeEnv, name: str) -> dict[str, Any]:
    body = modeldeployment(name, prom_url(env), model_fields=env.model_fields)
    model = body["spec"]["model"]
    model["resources"] = {"requests": {GPU: "1"}, "limits": {GPU: "1"}}
    # The model server reads its variant from the mounted file, then starts as the image would.
    model["command"] = [
        "/bin/sh",
        "-c",
        f'IRIS_VARIANT="$(cat /etc/iris/variant)" && export IRIS_VARIANT && exec {ENTRYPOINT}',
    ]
    body["spec"]["template"] = {
        "metadata": {"labels": {"team": "vision"}},
        "spec": {
            "serviceAccountName": SERVICE_ACCOUNT,
            "nodeSelector": {POOL_LABEL: "fake-gpu"},
            "tolerations": [{"key": GPU, "operator": "Exists", "effect": "NoSchedule"}],
            "volumes": [{"name": "settings", "configMap": {"name": SETTINGS}}],
            "containers": [
                {
                    "name": "model",
                    "volumeMounts": [{"name": "settings", "mountPath": "/etc/iris", "readOnly": True}],
                }
            ],
        },
    }
    return body


def post(url: str, payload: Any) -> tuple[int, dict[str, str], Any]:
    request = urllib.request.Request(
        url, data=json.dumps(payload).encode(), method="POST", headers={"Content-Type": "application/json"}
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(request, timeout=10) as response:
        return response.status, dict(response.headers), json.loads(response.read())


def token_subject(token: str) -> str:
    payload = token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return str(claims["sub"])


def test_a_gpu_model_is_scheduled_on_the_extended_resource_reads_its_volume_and_runs_as_its_account(
    env: RealNodeEnv, gpu_node: FakeGpuNode
) -> None:
    name = "gpu"
    env.core.create_namespaced_service_account(
        env.namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name=SERVICE_ACCOUNT))
    )
    env.core.create_namespaced_config_map(
        env.namespace,
        client.V1ConfigMap(metadata=client.V1ObjectMeta(name=SETTINGS), data={"variant": VARIANT_FROM_FILE}),
    )
    env.apply(gpu_modeldeployment(env, name))

    def unschedulable() -> str | None:
        for pod in env.core.list_namespaced_pod(
            env.namespace, label_selector=f"modeldeploy.io/model={name}"
        ).items:
            for condition in pod.status.conditions or []:
                if condition.type == "PodScheduled" and condition.reason == "Unschedulable":
                    return str(condition.message)
        return None

    refused = env.wait(unschedulable, 60, "the scheduler to refuse the Pod while no node has the GPU")
    assert f"Insufficient {GPU}" in refused, refused

    gpu_node.advertise(2)
    status = env.wait(
        lambda: (s := env.status(name)).get("phase") == "Succeeded" and s,
        240,
        "the GPU model to become stable",
    )
    revision = status["stableRevision"]
    env.runner.wait_ready(revision, 1, timeout=60)
    pod = env.runner.pods(revision)[0]
    assert pod.spec.node_name == NODE_NAME
    model = next(c for c in pod.spec.containers if c.name == "model")
    assert model.resources.limits == {GPU: "1"}
    assert pod.spec.service_account_name == SERVICE_ACCOUNT
    assert pod.metadata.labels["team"] == "vision"
    allocatable = env.core.read_node(NODE_NAME).status.allocatable
    assert allocatable[GPU] == "2", allocatable

    # Served through the entry Service (kube-proxy), and the model read the mounted file.
    env.wait_routed(name)
    code, headers, answer = post(env.service_url(name), iris_request(0)[0])
    assert code == 200 and headers.get("x-modeldeploy-revision") == revision, (code, headers)
    assert answer and all(isinstance(label, str) for label in answer), answer
    code, _, faults = post(env.service_url(name, "/faults"), {})
    assert code == 200 and faults["variant"] == VARIANT_FROM_FILE, faults

    def exec_in_model(*command: str) -> str:
        done = env.cluster.kubectl(
            "exec", "-n", env.namespace, pod.metadata.name, "-c", "model", "--", *command, check=False
        )
        assert done.returncode == 0, f"kubectl exec {command}: {done.stderr}"
        return done.stdout

    assert exec_in_model("cat", "/etc/iris/variant") == VARIANT_FROM_FILE
    token = exec_in_model("cat", "/var/run/secrets/kubernetes.io/serviceaccount/token")
    assert token_subject(token) == f"system:serviceaccount:{env.namespace}:{SERVICE_ACCOUNT}"
