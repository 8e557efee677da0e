"""The real reconcile (reconcile/reconciler.py) against a fake cluster behind its port: what it
reads, the order it writes in, what it skips, and how it meets bad specs and a failing API server.
(The planner's decisions are the other test modules here, through the same harness.)"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from prometheus_client import REGISTRY

from modeldeploy.contract.labels import model_selector, revision_name
from modeldeploy.operator.kube import KubeError
from tests.support.fake_cluster import ScriptedAnalyst, run_now
from tests.unit.planner.harness import LOG, NAME, NAMESPACE, SETTINGS, Driver, deployed, make_spec, rev

V1 = "registry.example.com/iris:1"
V2 = "registry.example.com/iris:2"
READS = ("get", "list")


def writes(d: Driver) -> list[tuple[str, str, str]]:
    return [r for r in d.cluster.requests if r[0] not in READS]


def reconcile(d: Driver, body: dict[str, Any] | None = None) -> float:
    """One call of the operator's loop body (`Reconciler.reconcile`) at `d.now` on the driver's
    ModelDeployment (or `body`); the delay it returns."""
    d.clock.at = d.now
    d.cluster.put(body or d.model())
    return run_now(d.reconciler.reconcile(NAMESPACE, NAME, LOG))


def reconciles(result: str) -> float:
    value = REGISTRY.get_sample_value(
        "modeldeploy_operator_reconciles_total", {"namespace": NAMESPACE, "model": NAME, "result": result}
    )
    return value or 0.0


def test_reads_then_children_then_status_then_events_with_traffic_before_deployments() -> None:
    d = Driver(spec=make_spec(V1))
    d.tick()
    reads = [(verb, kind) for verb, kind, _ in d.cluster.requests[:4]]
    assert reads == [
        ("get", "ModelDeployment"),
        ("list", "Deployment"),
        ("get", "ConfigMap"),
        ("list", "PodDisruptionBudget"),
    ]
    done = writes(d)
    kinds = [(verb, kind) for verb, kind, _ in done]
    status_at = kinds.index(("patch_status", "ModelDeployment"))
    assert kinds.index(("apply", "ConfigMap")) < kinds.index(("apply", "Deployment"))
    assert all(verb != "create" for verb, _ in kinds[:status_at]), "Events after status"
    assert all(kind == "Event" for _, kind in kinds[status_at + 1 :]) and len(kinds) > status_at + 1
    assert [e["reason"] for e in d.cluster.events] == [e.reason for e in d.plans[0].events]


def test_events_carry_the_clocks_time() -> None:
    d = Driver(spec=make_spec(V1))
    d.tick()
    assert d.cluster.events and {e["lastTimestamp"] for e in d.cluster.events} == {"2026-11-22T10:00:00Z"}
    assert all(e["involvedObject"]["name"] == NAME for e in d.cluster.events)


def test_an_idle_reconcile_reads_and_writes_nothing() -> None:
    d = deployed(Driver(spec=make_spec(V1)))
    d.now += timedelta(seconds=30)
    d.tick()
    d.cluster.requests.clear()
    d.now += timedelta(seconds=30)
    d.tick()
    assert writes(d) == []
    assert [(verb, kind) for verb, kind, _ in d.cluster.requests] == [
        ("get", "ModelDeployment"),
        ("list", "Deployment"),
        ("get", "ConfigMap"),
    ]


def test_a_child_changed_or_deleted_by_hand_is_restored() -> None:
    d = deployed(Driver(spec=make_spec(V1)))
    d.tick()
    deployment = revision_name(NAME, rev(V1))
    d.cluster.objects[("Deployment", deployment)]["spec"]["template"]["spec"]["containers"][0]["image"] = "x"
    d.cluster.put(d.cluster.objects[("Deployment", deployment)])  # a new resourceVersion, as kubectl edit
    del d.cluster.objects[("ConfigMap", f"{NAME}-routing")]
    d.cluster.requests.clear()
    d.now += timedelta(seconds=5)
    d.tick()
    applied = {(kind, name) for verb, kind, name in writes(d) if verb == "apply"}
    assert applied == {("Deployment", deployment), ("ConfigMap", f"{NAME}-routing")}
    assert d.cluster.routing is not None and d.cluster.image_of(rev(V1)) == V1


def test_a_child_not_read_back_is_restored_after_the_refresh_period_of_the_clock() -> None:
    d = deployed(Driver(spec=make_spec(V1)))
    del d.cluster.objects[("Service", NAME)]
    d.advance(295, every=30)
    assert ("Service", NAME) not in d.cluster.objects, "not read back: trusted for refresh_seconds"
    d.advance(10, every=5)
    assert ("Service", NAME) in d.cluster.objects


def test_a_budget_left_over_when_replicas_drop_to_one_is_deleted() -> None:
    d = deployed(Driver(spec=make_spec(V1)))
    budget = ("PodDisruptionBudget", revision_name(NAME, rev(V1)))
    assert budget in d.cluster.objects
    d.change_spec(make_spec(V1, replicas=1))
    d.tick()
    assert ("delete", *budget) in d.cluster.requests and budget not in d.cluster.objects


def test_a_restarted_operator_lists_budgets_once_and_deletes_one_left_over() -> None:
    d = deployed(Driver(spec=make_spec(V1)))
    budget = ("PodDisruptionBudget", revision_name(NAME, rev(V1)))
    restarted = Driver.restore(d.snapshot())  # remembers nothing it applied
    restarted.change_spec(make_spec(V1, replicas=1))
    restarted.tick()
    assert ("list", "PodDisruptionBudget", model_selector(NAME)) in restarted.cluster.requests
    assert budget not in restarted.cluster.objects
    restarted.cluster.requests.clear()
    restarted.now += timedelta(seconds=30)
    restarted.tick()
    assert not any(kind == "PodDisruptionBudget" for _, kind, _ in restarted.cluster.requests)


def test_a_bad_spec_becomes_failed_status_and_one_warning_event() -> None:
    d = Driver()
    body = d.model()
    body["spec"] = {"model": {"image": ""}, "replicas": -1}
    assert reconcile(d, body) == SETTINGS.resync_seconds
    status = d.cluster.objects[("ModelDeployment", NAME)]["status"]
    assert status["phase"] == "Failed" and status["message"].startswith("invalid spec: spec.")
    assert "spec.replicas" in status["message"]
    assert [(e["type"], e["reason"]) for e in d.cluster.events] == [("Warning", "InvalidSpec")]
    assert not any(kind == "Deployment" for kind, _ in d.cluster.objects)
    reconcile(d, d.cluster.objects[("ModelDeployment", NAME)])
    assert len(d.cluster.events) == 1, "the same problem is reported once"


def test_a_child_the_api_server_refuses_is_reported_like_a_bad_spec() -> None:
    d = Driver()
    d.cluster.fail_with[("apply", "Deployment")] = KubeError("PATCH ...: 422 Deployment is invalid", 422)
    assert reconcile(d) == SETTINGS.resync_seconds
    status = d.cluster.objects[("ModelDeployment", NAME)]["status"]
    assert status["phase"] == "Failed"
    assert (
        f"the API server refused Deployment {revision_name(NAME, rev(make_spec().model.image))}"
        in (status["message"])
    )
    assert [e["reason"] for e in d.cluster.events] == ["InvalidSpec"]


def test_an_unreachable_api_server_is_retried_soon_and_counted() -> None:
    d = Driver()
    d.cluster.fail_with[("list", "Deployment")] = KubeError("GET ...: connection refused")
    before = reconciles("retry")
    assert reconcile(d) == 2.0
    assert reconciles("retry") == before + 1
    assert writes(d) == []


def test_an_unexpected_error_does_not_escape_the_loop() -> None:
    d = rolled_to_analysis()

    def broken(request: Any, now: Any) -> Any:
        raise RuntimeError("analysis blew up")

    d.reconciler.analyst = ScriptedAnalyst(broken)
    d.now += timedelta(seconds=30)
    before = reconciles("error")
    assert reconcile(d) == 5.0
    assert reconciles("error") == before + 1


def rolled_to_analysis() -> Driver:
    d = deployed(Driver(spec=make_spec(V1)))
    d.change_spec(make_spec(V2))
    d.run_until(lambda x: x.analysis_runs > 0)
    return d


def test_analysis_is_asked_only_when_due_and_for_the_canary() -> None:
    d = rolled_to_analysis()
    analyst = d.reconciler.analyst
    assert isinstance(analyst, ScriptedAnalyst)
    assert {r.revision for r in analyst.requests} == {rev(V2)}
    runs = len(analyst.requests)
    d.tick()  # the same instant: not due again
    assert len(analyst.requests) == runs == d.analysis_runs


def test_the_delay_is_the_planners_requeue_capped_at_the_resync_period() -> None:
    d = rolled_to_analysis()
    delay = reconcile(d)
    assert 0 < delay <= 30.0  # the analysis interval
    idle = deployed(Driver(spec=make_spec(V1)))
    assert reconcile(idle) == SETTINGS.resync_seconds


def test_a_deleted_modeldeployment_is_forgotten_and_its_children_applied_afresh_if_it_returns() -> None:
    d = deployed(Driver(spec=make_spec(V1)))
    body = d.cluster.objects.pop(("ModelDeployment", NAME))
    assert run_now(d.reconciler.reconcile_once(NAMESPACE, NAME, LOG)) is None
    d.cluster.put(body)
    d.cluster.requests.clear()
    d.tick()
    applied = [(kind, name) for verb, kind, name in writes(d) if verb == "apply"]
    assert len(applied) == len(d.plans[-1].manifests), "nothing is remembered of the deleted one"


def test_unreadable_status_is_planned_from_scratch() -> None:
    d = deployed(Driver(spec=make_spec(V1)))
    d.status_json = {"phase": "Sideways", "history": "not a list"}
    d.tick()
    assert d.status.phase == "Succeeded" and d.status.stable_revision == rev(V1)
