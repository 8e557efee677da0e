"""Random ModelDeployment specs on the real API server, reconciled by the real operator process.

Specs are examples/full.yaml (every field set) mutated field by field: a field deleted, replaced by
a value of the wrong type, an out-of-range number, a bad duration or an odd string, or an unknown
field added. Each one is either rejected by the API server (422 naming the field) or accepted;
every accepted one gets a status (a phase) from the operator for its generation, and the operator
logs no exception. An accepted spec the operator cannot carry out (its pydantic types are stricter
than the schema, or the API server refuses a child rendered from it: the CRD cannot repeat all of
Kubernetes' Pod validation) ends in phase Failed with "invalid spec: <why>". A ResourceQuota keeps
a random `replicas` from starting hundreds of pods.
"""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kubernetes import client
from kubernetes.client import ApiClient

from modeldeploy.operator.api import GROUP, PLURAL, VERSION
from tests.cluster.localcluster import ROOT, LocalCluster
from tests.support.json_paths import paths, slot
from tests.support.mdep import wait_for
from tests.support.operator_process import install_crd, running_operator
from tests.support.readiness import model_pods_ready

pytestmark = pytest.mark.cluster

BASE_SPEC: dict[str, Any] = yaml.safe_load((ROOT / "examples" / "full.yaml").read_text())["spec"]
EXAMPLES = 40


PATHS = paths(BASE_SPEC)
wrong_types = st.sampled_from(["a-string", 7, True, None, [], {}, 1.5, [1], {"x": 1}])
out_of_range = st.sampled_from([0, -1, 101, 1001, 3601, 65536, 2**31, 2**53, -0.5, 1e9, 1.0000001])
bad_durations = st.sampled_from(
    ["5", "-1s", "0s", "1h30x", "1.5.5m", "99999999h", "ms", "1d", "P1D", "1h 2m", " 1m", "1e3s", "0.1ms"]
)
odd_strings = st.sampled_from(["", " ", "A" * 300, "UPPER", "ünï", "x:y", "../..", "\n", "{{revision}}", "-"])
values = wrong_types | out_of_range | bad_durations | odd_strings


def plausible(current: Any) -> st.SearchStrategy[Any]:
    """A value of the same type as `current`: the mutations a careless edit makes."""
    if isinstance(current, bool):
        return st.booleans()
    if isinstance(current, int):
        return st.integers(0, 120)
    if isinstance(current, float):
        return st.floats(0, 200, allow_nan=False)
    if isinstance(current, str):
        return st.sampled_from(["1s", "45s", "3m", "2h", "250ms", "x", "abc-def", "0.5", "http://p:9090"])
    return st.just(current)


@st.composite
def mutated_specs(draw: st.DrawFn) -> dict[str, Any]:
    spec = copy.deepcopy(BASE_SPEC)
    for _ in range(draw(st.integers(1, 2))):
        found = slot(spec, draw(st.sampled_from(PATHS)))
        if found is None:
            continue  # an earlier change removed the field's parent
        parent, key = found
        action = draw(st.sampled_from(["delete", "replace", "plausible", "plausible", "add"]))
        if action == "delete" and isinstance(parent, dict):
            del parent[key]
        elif action == "add" and isinstance(parent, dict):
            parent["unknownField"] = draw(values)
        elif action == "plausible":
            parent[key] = draw(plausible(parent[key]))
        else:
            parent[key] = draw(values)
    return spec


@pytest.fixture(scope="module")
def namespace(cluster: LocalCluster, k8s: ApiClient) -> Iterator[str]:
    install_crd(cluster)
    ns = f"fuzz-{uuid.uuid4().hex[:8]}"
    core = client.CoreV1Api(k8s)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns)))
    core.create_namespaced_resource_quota(
        ns, client.V1ResourceQuota(metadata=client.V1ObjectMeta(name="pods"), spec={"hard": {"pods": "20"}})
    )
    with model_pods_ready(k8s, ns):
        yield ns
    core.delete_namespace(ns)


def test_random_specs_are_rejected_by_the_api_server_or_reconciled(
    cluster: LocalCluster, k8s: ApiClient, namespace: str, tmp_path: Path
) -> None:
    custom = client.CustomObjectsApi(k8s)
    accepted: list[str] = []
    rejected: list[str] = []

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(spec=mutated_specs())
    def create(spec: dict[str, Any]) -> None:
        name = f"r{len(accepted) + len(rejected)}"
        body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "ModelDeployment", "metadata": {"name": name}}
        try:
            custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body | {"spec": spec})
        except client.ApiException as exc:
            details = json.loads(exc.body)
            assert exc.status == 422, (exc.status, details, spec)
            assert details["reason"] == "Invalid" and "spec" in details["message"], details
            rejected.append(details["message"])
        else:
            accepted.append(name)

    with running_operator(cluster, namespace, tmp_path, ("--analysis-override", "pass")) as op:
        create()
        assert len(rejected) >= 5 and len(accepted) >= 5, (len(rejected), len(accepted))

        def statuses() -> dict[str, dict[str, Any]] | None:
            items = custom.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)["items"]
            done = {
                i["metadata"]["name"]: i["status"]
                for i in items
                if (i.get("status") or {}).get("observedGeneration") == i["metadata"]["generation"]
            }
            return done if set(accepted) <= set(done) else None

        done = wait_for(statuses, 60, f"a status for each of {len(accepted)} accepted specs", op)
        cluster.kubectl(
            "delete", "modeldeployments", "--all", "-n", namespace, "--wait=true", "--timeout=90s"
        )
        logs = op.logs()
        assert op.alive(), logs[-4000:]
    assert "Traceback" not in logs and "failed; retrying" not in logs, logs[-6000:]
    for name, status in done.items():
        assert status.get("phase"), (name, status)
        if status["phase"] == "Failed":
            # The schema let it through, the operator (pydantic or the API server refusing a child)
            # did not: the user reads why in status, as for any bad spec.
            assert status["message"].startswith("invalid spec: "), (name, status)
