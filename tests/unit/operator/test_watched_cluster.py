"""Reads answered from watch events, writes passed through (operator/kube/watched.py).

`FakeCluster` plays the API server (it records every request); the tests hand `observe` the
objects a watch would deliver.
"""

from __future__ import annotations

import copy
from typing import Any

from modeldeploy.contract.labels import MANAGED_BY, MANAGED_BY_LABEL, MODEL_LABEL, model_selector
from modeldeploy.operator.kube import CONFIGMAP, DEPLOYMENT, MODELDEPLOYMENT
from modeldeploy.operator.kube.watched import WatchedCluster
from tests.support.fake_cluster import FakeCluster, run_now

NS = "ml"
MANAGED = {MANAGED_BY_LABEL: MANAGED_BY, MODEL_LABEL: "iris"}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def deployment(name: str, ready: int = 0) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": NS, "labels": dict(MANAGED)},
        "spec": {"replicas": 1},
        "status": {"readyReplicas": ready},
    }


def modeldeployment() -> dict[str, Any]:
    return {
        "apiVersion": "modeldeploy.io/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": "iris", "namespace": NS},
        "spec": {"model": {"image": "iris:1"}},
    }


def configmap(name: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "namespace": NS}
    if labels:
        metadata["labels"] = labels
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": {"k": "v"}}


def setup() -> tuple[FakeCluster, WatchedCluster, Clock]:
    api, clock = FakeCluster(namespace=NS), Clock()
    return api, WatchedCluster(api, refresh_seconds=300.0, clock=clock), clock


def reads(api: FakeCluster) -> list[tuple[str, str, str]]:
    return [r for r in api.requests if r[0] in ("get", "list")]


def test_second_read_of_a_watched_object_is_answered_from_the_cache() -> None:
    api, cluster, _ = setup()
    api.put(modeldeployment())
    first = run_now(cluster.get(MODELDEPLOYMENT, NS, "iris"))
    second = run_now(cluster.get(MODELDEPLOYMENT, NS, "iris"))
    assert first == second
    assert reads(api) == [("get", "ModelDeployment", "iris")]


def test_watch_event_updates_what_the_next_read_answers() -> None:
    api, cluster, _ = setup()
    api.put(deployment("iris-a"))
    run_now(cluster.list(DEPLOYMENT, NS, model_selector("iris")))
    changed = deployment("iris-a", ready=1)
    changed["metadata"]["resourceVersion"] = "99"
    cluster.observe(changed)
    listed = run_now(cluster.list(DEPLOYMENT, NS, model_selector("iris")))
    assert [d["status"]["readyReplicas"] for d in listed] == [1]
    assert all("kind" not in d and "apiVersion" not in d for d in listed), "items as a list answers them"
    assert len(reads(api)) == 1


def test_a_late_older_watch_event_does_not_undo_the_operators_own_write() -> None:
    api, cluster, _ = setup()
    api.put(modeldeployment())
    before = run_now(cluster.get(MODELDEPLOYMENT, NS, "iris"))
    assert before is not None
    run_now(cluster.patch_status(MODELDEPLOYMENT, NS, "iris", {"phase": "Progressing"}))
    cluster.observe(before)  # the watch delivers the version before our status patch, late
    after = run_now(cluster.get(MODELDEPLOYMENT, NS, "iris"))
    assert after is not None and after["status"] == {"phase": "Progressing"}
    assert len(reads(api)) == 1


def test_deleted_event_drops_the_object_and_the_next_get_asks_the_server() -> None:
    api, cluster, _ = setup()
    api.put(modeldeployment())
    found = run_now(cluster.get(MODELDEPLOYMENT, NS, "iris"))
    assert found is not None
    del api.objects[("ModelDeployment", "iris")]
    cluster.observe(found, deleted=True)
    assert run_now(cluster.get(MODELDEPLOYMENT, NS, "iris")) is None
    assert len(reads(api)) == 2


def test_deployment_deleted_by_event_leaves_the_cached_list() -> None:
    api, cluster, _ = setup()
    api.put(deployment("iris-a"))
    api.put(deployment("iris-b"))
    listed = run_now(cluster.list(DEPLOYMENT, NS, model_selector("iris")))
    gone = next(d for d in listed if d["metadata"]["name"] == "iris-b")
    cluster.observe({"apiVersion": "apps/v1", "kind": "Deployment", **gone}, deleted=True)
    names = [d["metadata"]["name"] for d in run_now(cluster.list(DEPLOYMENT, NS, model_selector("iris")))]
    assert names == ["iris-a"]


def test_own_delete_drops_the_object_at_once() -> None:
    api, cluster, _ = setup()
    api.put(deployment("iris-a"))
    run_now(cluster.list(DEPLOYMENT, NS, model_selector("iris")))
    assert run_now(cluster.delete(DEPLOYMENT, NS, "iris-a"))
    assert run_now(cluster.list(DEPLOYMENT, NS, model_selector("iris"))) == []


def test_reads_are_repeated_after_the_refresh_period() -> None:
    api, cluster, clock = setup()
    api.put(modeldeployment())
    run_now(cluster.get(MODELDEPLOYMENT, NS, "iris"))
    clock.now += 299.0
    run_now(cluster.get(MODELDEPLOYMENT, NS, "iris"))
    assert len(reads(api)) == 1
    clock.now += 2.0
    run_now(cluster.get(MODELDEPLOYMENT, NS, "iris"))
    assert len(reads(api)) == 2


def test_refreshed_list_drops_a_deployment_whose_deletion_no_event_told() -> None:
    api, cluster, clock = setup()
    api.put(deployment("iris-a"))
    run_now(cluster.list(DEPLOYMENT, NS, model_selector("iris")))
    del api.objects[("Deployment", "iris-a")]
    clock.now += 301.0
    assert run_now(cluster.list(DEPLOYMENT, NS, model_selector("iris"))) == []
    assert run_now(cluster.list(DEPLOYMENT, NS, model_selector("iris"))) == []
    assert len(reads(api)) == 2


def test_configmap_the_user_owns_is_always_read() -> None:
    api, cluster, _ = setup()
    api.put(configmap("golden"))
    for _ in range(3):
        assert run_now(cluster.get(CONFIGMAP, NS, "golden")) is not None
    assert len(reads(api)) == 3


def test_missing_configmap_is_asked_again_and_found_once_created() -> None:
    api, cluster, _ = setup()
    assert run_now(cluster.get(CONFIGMAP, NS, "iris-routing")) is None
    api.put(configmap("iris-routing", dict(MANAGED)))
    assert run_now(cluster.get(CONFIGMAP, NS, "iris-routing")) is not None
    assert run_now(cluster.get(CONFIGMAP, NS, "iris-routing")) is not None
    assert len(reads(api)) == 2


def test_list_with_a_selector_the_watches_do_not_cover_goes_to_the_server() -> None:
    api, cluster, _ = setup()
    api.put(deployment("iris-a"))
    for selector in (f"{MODEL_LABEL}=iris", f"{MODEL_LABEL}!=x,{MANAGED_BY_LABEL}={MANAGED_BY}"):
        run_now(cluster.list(DEPLOYMENT, NS, selector))
        run_now(cluster.list(DEPLOYMENT, NS, selector))
    assert len(reads(api)) == 4


def test_answers_are_copies() -> None:
    api, cluster, _ = setup()
    api.put(modeldeployment())
    run_now(cluster.get(MODELDEPLOYMENT, NS, "iris"))
    answer = run_now(cluster.get(MODELDEPLOYMENT, NS, "iris"))
    assert answer is not None
    kept = copy.deepcopy(answer)
    answer["spec"]["model"]["image"] = "changed"
    assert run_now(cluster.get(MODELDEPLOYMENT, NS, "iris")) == kept


def test_forget_drops_the_read_marks_of_a_deleted_model() -> None:
    api, cluster, _ = setup()
    api.put(modeldeployment())
    api.put(deployment("iris-a"))
    run_now(cluster.get(MODELDEPLOYMENT, NS, "iris"))
    run_now(cluster.list(DEPLOYMENT, NS, model_selector("iris")))
    cluster.forget(NS, "iris")
    run_now(cluster.get(MODELDEPLOYMENT, NS, "iris"))
    run_now(cluster.list(DEPLOYMENT, NS, model_selector("iris")))
    assert len(reads(api)) == 4


def test_event_of_an_unknown_kind_or_odd_shape_is_ignored() -> None:
    _, cluster, _ = setup()
    cluster.observe({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": NS}})
    cluster.observe({"kind": "Deployment"})
    cluster.observe({})
    cluster.observe({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"}})
    assert run_now(cluster.list(DEPLOYMENT, NS, model_selector("iris"))) == []


def test_cached_answers_leave_out_managed_fields() -> None:
    api, cluster, _ = setup()
    owned = modeldeployment()
    owned["metadata"]["managedFields"] = [{"manager": "modeldeploy-operator", "operation": "Apply"}]
    api.put(owned)
    first = run_now(cluster.get(MODELDEPLOYMENT, NS, "iris"))
    assert first is not None and "managedFields" in first["metadata"], "a read passes the server's answer"
    cached = run_now(cluster.get(MODELDEPLOYMENT, NS, "iris"))
    assert cached is not None and "managedFields" not in cached["metadata"]
    assert cached["spec"] == owned["spec"] and cached["metadata"]["name"] == "iris"
    assert len(reads(api)) == 1


def labelled_deployment(name: str, model: str) -> dict[str, Any]:
    made = deployment(name)
    made["metadata"]["labels"][MODEL_LABEL] = model
    return made


def test_a_models_list_holds_its_own_deployments_among_many_models() -> None:
    api, cluster, _ = setup()
    for model in ("iris", "wine", "digits"):
        for revision in ("a", "b"):
            api.put(labelled_deployment(f"{model}-{revision}", model))
    for model in ("iris", "wine", "digits"):
        run_now(cluster.list(DEPLOYMENT, NS, model_selector(model)))
    cluster.observe(labelled_deployment("wine-c", "wine"))
    names = [d["metadata"]["name"] for d in run_now(cluster.list(DEPLOYMENT, NS, model_selector("wine")))]
    assert names == ["wine-a", "wine-b", "wine-c"]
    assert len(reads(api)) == 3


def test_a_deployment_whose_model_label_changes_moves_to_that_models_list() -> None:
    api, cluster, _ = setup()
    api.put(labelled_deployment("shared", "iris"))
    api.put(labelled_deployment("wine-a", "wine"))
    run_now(cluster.list(DEPLOYMENT, NS, model_selector("iris")))
    run_now(cluster.list(DEPLOYMENT, NS, model_selector("wine")))
    relabelled = labelled_deployment("shared", "wine")
    relabelled["metadata"]["resourceVersion"] = "99"
    cluster.observe(relabelled)
    assert run_now(cluster.list(DEPLOYMENT, NS, model_selector("iris"))) == []
    names = [d["metadata"]["name"] for d in run_now(cluster.list(DEPLOYMENT, NS, model_selector("wine")))]
    assert names == ["shared", "wine-a"]
    assert len(reads(api)) == 2
