"""The ModelDeployment CRD on the real API server: install, examples, defaults, explain, validation.

Every invalid spec in tests/support/modeldeployment_specs.py must be rejected by the API server
itself (OpenAPI and CEL rules of crds/modeldeployment.yaml) with the message a user would read.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from modeldeploy.operator.api import (
    AnalysisStatus,
    Condition,
    HistoryEntry,
    LastAction,
    MetricResult,
    ModelDeployment,
    ModelDeploymentSpec,
    ModelDeploymentStatus,
    TrafficStatus,
    revision_hash,
)
from tests.cluster.localcluster import ROOT, LocalCluster
from tests.support.modeldeployment_specs import INVALID_SPECS, InvalidSpec, valid_manifest
from tests.support.operator_process import CRD, install_crd

pytestmark = pytest.mark.cluster

NAMESPACE = "api-crd"
EXAMPLES = ROOT / "examples"


@pytest.fixture(scope="module")
def crd(cluster: LocalCluster) -> Iterator[LocalCluster]:
    # The server refuses a CRD whose CEL rules are too costly; show its reason when it does.
    out = cluster.kubectl("apply", "--server-side", "--dry-run=server", "-f", str(CRD), check=False)
    assert out.returncode == 0, out.stderr
    install_crd(cluster)
    cluster.kubectl("create", "namespace", NAMESPACE)
    try:
        yield cluster
    finally:
        cluster.kubectl("delete", "namespace", NAMESPACE, "--wait=false", check=False)


def apply(cluster: LocalCluster, manifest: dict[str, Any]) -> Any:
    return cluster.kubectl("apply", "-n", NAMESPACE, "-f", "-", input=yaml.safe_dump(manifest), check=False)


def get(cluster: LocalCluster, name: str) -> dict[str, Any]:
    out = cluster.kubectl("get", "modeldeployment", name, "-n", NAMESPACE, "-o", "json")
    obj: dict[str, Any] = json.loads(out.stdout)
    return obj


def test_crd_names_short_name_and_categories(crd: LocalCluster) -> None:
    out = crd.kubectl("get", "crd", "modeldeployments.modeldeploy.io", "-o", "json")
    spec = json.loads(out.stdout)["spec"]
    assert spec["names"]["shortNames"] == ["mdep"]
    assert spec["names"]["categories"] == ["all", "ml"]
    assert spec["versions"][0]["subresources"] == {
        "status": {},
        "scale": {
            "specReplicasPath": ".spec.replicas",
            "statusReplicasPath": ".status.replicas",
            "labelSelectorPath": ".status.selector",
        },
    }
    resources = crd.kubectl("api-resources", "--api-group=modeldeploy.io", "-o", "wide").stdout
    assert "mdep" in resources and "ModelDeployment" in resources and "all,ml" in resources


@pytest.mark.parametrize("example", ["minimal.yaml", "full.yaml", "guardrails.yaml"])
def test_examples_apply(crd: LocalCluster, example: str) -> None:
    path = EXAMPLES / example
    out = crd.kubectl("apply", "-n", NAMESPACE, "-f", str(path), check=False)
    assert out.returncode == 0, out.stderr
    manifest = next(d for d in yaml.safe_load_all(path.read_text()) if d["kind"] == "ModelDeployment")
    stored = ModelDeployment.model_validate(get(crd, manifest["metadata"]["name"]))
    local = ModelDeployment.model_validate(manifest)
    assert stored.spec == local.spec
    assert revision_hash(stored.spec) == revision_hash(local.spec)


def test_full_example_survives_the_server_unchanged(crd: LocalCluster) -> None:
    """Every field of the full example is known to the schema: nothing is pruned or rewritten."""
    path = EXAMPLES / "full.yaml"
    crd.kubectl("apply", "-n", NAMESPACE, "-f", str(path))
    sent = yaml.safe_load(path.read_text())["spec"]
    stored = get(crd, sent and "fraud-scorer")["spec"]
    sent["model"]["resources"]["limits"]["cpu"] = 2  # int-or-string: the server keeps the number
    assert stored == sent


def test_defaults_are_filled_in_by_the_server(crd: LocalCluster) -> None:
    manifest = yaml.safe_load((EXAMPLES / "minimal.yaml").read_text())
    manifest["metadata"]["name"] = "defaults"
    assert apply(crd, manifest).returncode == 0
    spec = get(crd, "defaults")["spec"]
    assert spec["replicas"] == 1
    assert spec["model"]["port"] == 3000
    assert spec["progressDeadline"] == "10m"
    assert spec["drainPeriod"] == "30s"
    assert spec["traffic"] == {"shadowComparison": {"mode": "numeric", "tolerance": 1e-6}}
    analysis = spec["rollout"]["analysis"]
    assert analysis == {
        "method": "fixed",
        "interval": "30s",
        "failureLimit": 2,
        "inconclusiveLimit": 10,
        "onInconclusive": "Pause",
        "minRequests": 50,
        "confidence": 0.95,
        "slo": {"errorRate": 0.01},
    }
    # The server's defaults are exactly pydantic's: the same spec, whichever side filled them in.
    local = ModelDeploymentSpec.model_validate(manifest["spec"])
    expected = local.model_dump(mode="json", by_alias=True, exclude_none=True)
    expected["model"].pop("env")  # an empty list is left out on the server
    expected["rollout"]["analysis"].pop("metrics")
    assert spec == expected


def test_explain_shows_descriptions(crd: LocalCluster) -> None:
    deadline = time.monotonic() + 60
    while True:  # the OpenAPI document is republished a moment after the CRD is established
        out = crd.kubectl("explain", "modeldeployment.spec.rollout", check=False)
        if out.returncode == 0 or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert out.returncode == 0, out.stderr
    text = " ".join(out.stdout.split())
    assert "DESCRIPTION: Steps and analysis of a new revision." in text
    assert "steps <[]Object> -required-" in text
    assert "Steps in order; after the last one the new revision is promoted to stable." in text
    slo = crd.kubectl("explain", "mdep.spec.rollout.analysis.slo.latencyP99").stdout
    assert "Maximum 99th-percentile request latency of the canary" in " ".join(slo.split())
    status = crd.kubectl("explain", "modeldeployment.status.abortedRevision").stdout
    assert "not retried until the spec changes" in " ".join(status.split())


@pytest.mark.parametrize("case", INVALID_SPECS, ids=[case.id for case in INVALID_SPECS])
def test_invalid_spec_is_rejected_with_a_clear_message(crd: LocalCluster, case: InvalidSpec) -> None:
    name = f"bad-{case.id}"
    out = apply(crd, case.manifest(name))
    assert out.returncode != 0, f"the API server accepted {case.id}"
    assert case.server_message in out.stderr, out.stderr
    missing = crd.kubectl("get", "modeldeployment", name, "-n", NAMESPACE, check=False)
    assert missing.returncode != 0 and "NotFound" in missing.stderr


def test_at_least_fifteen_distinct_invalid_specs() -> None:
    assert len({case.id for case in INVALID_SPECS}) >= 15
    assert len({case.server_message for case in INVALID_SPECS}) >= 15


def _full_status() -> ModelDeploymentStatus:
    at = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    return ModelDeploymentStatus(
        phase="Progressing",
        message="canary at 10%",
        observed_generation=1,
        stable_revision="7c9f0e1d2a",
        stable_image="registry.example.com/iris:1.0",
        canary_revision="1a2b3c4d5e",
        current_step=1,
        step_started_at=at,
        traffic=TrafficStatus(canary_weight=10, shadow_percent=0),
        analysis=AnalysisStatus(
            last_run=at,
            consecutive_failures=1,
            consecutive_inconclusive=0,
            results=[
                MetricResult(
                    metric="latencyP99",
                    verdict="Fail",
                    value=0.41,
                    threshold=0.25,
                    query="histogram_quantile(0.99, ...)",
                    message="p99 0.41s > 0.25s",
                )
            ],
        ),
        rollback_reason="p99 latency 0.41s above 0.25s twice in a row",
        aborted_revision="0f0f0f0f0f",
        last_action=LastAction(name="retry", id="1", at=at),
        conditions=[
            Condition(
                type="Ready",
                status="True",
                observed_generation=1,
                last_transition_time=at,
                reason="StableAvailable",
                message="stable revision serves traffic",
            )
        ],
        history=[
            HistoryEntry(
                revision="0f0f0f0f0f",
                image="registry.example.com/iris:0.9",
                outcome="RolledBack",
                at=at,
                reason="errorRate 0.2 > 0.01",
            )
        ],
    )


def test_status_subresource_accepts_the_operator_status_and_prints_columns(crd: LocalCluster) -> None:
    assert apply(crd, valid_manifest("with-status")).returncode == 0
    status = _full_status()
    patch = {"status": status.model_dump(mode="json", by_alias=True, exclude_none=True)}
    crd.kubectl(
        "patch",
        "mdep",
        "with-status",
        "-n",
        NAMESPACE,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps(patch),
    )
    stored = ModelDeployment.model_validate(get(crd, "with-status"))
    assert stored.status == status

    table = crd.kubectl("get", "mdep", "with-status", "-n", NAMESPACE).stdout.split("\n")
    assert table[0].split() == ["NAME", "PHASE", "STABLE", "CANARY", "WEIGHT", "AGE"]
    assert table[1].split()[:5] == ["with-status", "Progressing", "7c9f0e1d2a", "1a2b3c4d5e", "10"]
    wide = crd.kubectl("get", "mdep", "with-status", "-n", NAMESPACE, "-o", "wide").stdout
    assert "registry.example.com/iris:2.0" in wide
    listed = crd.kubectl("get", "ml", "-n", NAMESPACE).stdout  # the `ml` category
    assert "PHASE" in listed and "with-status" in listed


def test_status_is_validated_too(crd: LocalCluster) -> None:
    assert apply(crd, valid_manifest("bad-status")).returncode == 0
    out = crd.kubectl(
        "patch",
        "mdep",
        "bad-status",
        "-n",
        NAMESPACE,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": {"phase": "Exploded"}}),
        check=False,
    )
    assert out.returncode != 0
    assert 'status.phase: Unsupported value: "Exploded"' in out.stderr


def test_status_is_not_writable_through_the_main_resource(crd: LocalCluster) -> None:
    manifest = valid_manifest("spec-only")
    manifest["status"] = {"phase": "Succeeded"}
    assert apply(crd, manifest).returncode == 0
    assert "status" not in get(crd, "spec-only") or get(crd, "spec-only")["status"].get("phase") is None


def test_spec_written_back_by_pydantic_is_accepted(crd: LocalCluster, tmp_path: Path) -> None:
    """What the Python types serialise (exclude_none) is a valid object for the server."""
    local = ModelDeployment.model_validate(yaml.safe_load((EXAMPLES / "full.yaml").read_text()))
    body = local.model_dump(mode="json", by_alias=True, exclude_none=True, exclude={"status"})
    body["metadata"] = {"name": "round-trip"}
    path = tmp_path / "round-trip.yaml"
    path.write_text(yaml.safe_dump(body))
    out = crd.kubectl("apply", "-n", NAMESPACE, "-f", str(path), check=False)
    assert out.returncode == 0, out.stderr
    assert ModelDeployment.model_validate(get(crd, "round-trip")).spec == local.spec
