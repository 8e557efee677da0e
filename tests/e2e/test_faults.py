"""Fault tests (issues 9 and 13) on the real node (tests/support/real_env.py): the operator installed
by the chart from its image, iris and Rust sidecar Pods on the kubelet, load to the entry Service's
ClusterIP through kube-proxy, Prometheus discovering the sidecars. Each test injects one fault into
a live rollout under steady traffic and asserts the outcome an undisturbed run has (promoted exactly
once, or rolled back), plus what must never happen meanwhile (a promotion without analysis or pods,
a client error, a second actor).

- the operator Pod deleted in every phase of a promotion (its Deployment's replacement Pod resumes);
- the operator container SIGKILLed before and during a rollback (the kubelet restarts it);
- `helm upgrade` of the operator to a new image tag mid-rollout;
- two peered operator replicas (the chart with `replicas: 2`): exactly one reconciles;
- the API server restarted mid-rollout;
- Prometheus down (no promotion) and back (the rollout resumes and promotes);
- the canary's Deployment scaled to 0 by hand mid-step;
- the routing ConfigMap deleted and corrupted by hand.

Why two ways of killing the operator: both are what a cluster does. Deleting the Pod (a drain, an
eviction, `kubectl delete pod`) gives each kill a fresh Pod, so six kills in one rollout are six
replacements; SIGKILLing the container six times would meet the kubelet's crash-loop back-off (10 s,
20 s, 40 s, ... before each restart) and the rollout's phases would pass while no operator runs.
The SIGKILL (no cleanup at all, as the OOM killer does it) is kept for the rollback, twice, where the
first restart is immediate and the second waits out one 10 s back-off.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.cluster.kubelet import NODE_NAME
from tests.cluster.localcluster import LocalCluster
from tests.support.e2e_faults import (
    Status,
    Watch,
    delete_operator_pod,
    deployment_replicas,
    duplicate_history,
    event_reasons,
    kill_operator_container,
    metric_sum,
    operator_container,
    operator_pods,
    operator_reconciles,
    ready_pods,
    tag_operator_image,
    the_operator_pod,
    untag_operator_image,
    upgrade_operator,
    wait_operator_restarted,
    wait_operator_rolled_out,
)
from tests.support.e2e_scenarios import deploy_stable, new_revision_spec
from tests.support.real_env import RealNodeEnv

pytestmark = [pytest.mark.e2e, pytest.mark.cluster, pytest.mark.slow]

FAST_ANALYSIS: dict[str, Any] = {
    "interval": "2s",
    "failureLimit": 2,
    "minRequests": 10,
    "inconclusiveLimit": 60,
    "slo": {"latencyP99": "500ms", "errorRate": 0.05},
}
MODEL = "faults"
SECOND_TAG_SUFFIX = "-next"
"""The operator image's second tag (same content) that `helm upgrade` moves the operator to."""
STEPS: list[dict[str, Any]] = [
    {"shadow": {"percent": 50, "duration": "4s"}},
    {"canary": {"weight": 25, "duration": "4s"}},
    {"canary": {"weight": 50, "duration": "4s"}},
]


@pytest.fixture(scope="module")
def env(real_cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealNodeEnv]:
    e2e = RealNodeEnv(real_cluster, tmp_path_factory.mktemp("faults")).start()
    try:
        yield e2e
    finally:
        e2e.stop()
        untag_operator_image(e2e, SECOND_TAG_SUFFIX)


@pytest.fixture(scope="module")
def model(env: RealNodeEnv) -> str:
    """One ModelDeployment shared by the tests, in file order: each rolls a new revision out from
    whatever is stable (so only the first test waits for a stable revision's pods)."""
    deploy_stable(env, MODEL, analysis=FAST_ANALYSIS, steps=STEPS)
    return MODEL


def start_rollout(
    env: RealNodeEnv,
    variant: str,
    steps: list[dict[str, Any]],
    *,
    analysis: dict[str, Any] | None = None,
    replicas: int = 1,
    drain: str = "1s",
    model_env: dict[str, str] | None = None,
) -> str:
    """Change the shared model to a new revision (and this test's rollout); returns the stable one."""
    status = env.status(MODEL)
    assert status.get("phase") == "Succeeded" or status.get("phase") == "RolledBack", status
    stable: str = status["stableRevision"]
    spec = new_revision_spec(env, MODEL, variant=variant, env=model_env)
    rollout = {"steps": steps, "analysis": analysis or FAST_ANALYSIS}
    env.patch_spec(MODEL, {**spec, "replicas": replicas, "drainPeriod": drain, "rollout": rollout})
    return stable


def client_errors(samples: list[Any]) -> list[Any]:
    return [s for s in samples if s.status >= 500 or s.status == 0]


def promoted(new: str) -> Callable[[Status], bool]:
    return lambda s: s.get("phase") == "Succeeded" and s.get("stableRevision") == new


def assert_promoted_once(env: RealNodeEnv, name: str, status: Status, new: str) -> None:
    assert not duplicate_history(status), status["history"]
    assert [h["outcome"] for h in status["history"] if h["revision"] == new] == ["Promoted"]
    env.events_with(name, "Promoted", about=new)
    assert event_reasons(env, name, new)["Promoted"] == 1, env.events(name)
    routing = env.routing(name)
    assert routing["stable"]["revision"] == new and not routing.get("canary") and not routing.get("shadow")
    selector = env.core.read_namespaced_service(name, env.namespace).spec.selector
    assert selector["modeldeploy.io/revision"] == new


def test_routing_configmap_deleted_or_corrupted_is_restored_and_sidecars_keep_serving(
    env: RealNodeEnv, model: str
) -> None:
    name = model
    stable = env.status(name)["stableRevision"]
    load = env.start_load(name)
    env.wait(lambda: load.by_revision().get(stable, 0) > 10, 30, "traffic served by stable")
    (pod,) = ready_pods(env, stable)
    started = time.time()

    def routing_errors() -> float:
        return metric_sum(pod, "modeldeploy_routing_errors_total")

    errors = routing_errors()
    env.core.delete_namespaced_config_map(f"{name}-routing", env.namespace)
    t0 = time.monotonic()
    env.wait(lambda: _routing_or_none(env, name), 10, "the deleted routing ConfigMap to be restored")
    restored_after = time.monotonic() - t0
    assert env.routing(name)["stable"]["revision"] == stable
    env.wait(lambda: routing_errors() > errors, 10, "the sidecar to notice the deletion")

    errors = routing_errors()
    env.core.patch_namespaced_config_map(
        f"{name}-routing", env.namespace, {"data": {"routing.json": '{"stable": {"revision": '}}
    )
    t0 = time.monotonic()
    env.wait(lambda: _routing_or_none(env, name), 10, "the corrupted routing table to be restored")
    repaired_after = time.monotonic() - t0
    # The sidecar saw the corrupt table (watch events are not coalesced), rejected it and kept the
    # last good one: its generation never fell back to -1 (no table).
    env.wait(lambda: routing_errors() > errors, 10, "the sidecar to reject the corrupt table")
    assert metric_sum(pod, "modeldeploy_routing_generation") >= 1
    time.sleep(2)  # traffic keeps flowing through the restored table
    load.stop()

    # Restored on the ConfigMap's watch event, not by the 30-second resync.
    assert restored_after < 8 and repaired_after < 8, (restored_after, repaired_after)
    log = env.runner.save_log(pod.metadata.name, "sidecar").read_text(errors="replace")
    assert "deleted; keeping the table in force" in log, log[-2000:]
    assert "rejected, keeping the one in force" in log, log[-2000:]
    samples = load.since(started)
    assert len(samples) > 20 and not client_errors(samples), client_errors(samples)[:5]
    assert {s.revision for s in samples} == {stable}


def _routing_or_none(env: RealNodeEnv, name: str) -> dict[str, Any] | None:
    try:
        return env.routing(name)
    except Exception:  # 404 while deleted, ValueError while corrupt
        return None


def test_canary_scaled_to_zero_by_hand_is_restored_and_never_promoted(env: RealNodeEnv, model: str) -> None:
    """The canary's Deployment scaled to 0 mid-step while its replacement cannot start.

    Why the node is cordoned: the operator re-applies the step's size at once, and a replacement
    Pod that is Ready within the old Pod's graceful shutdown (preStop sleep + sidecar drain) takes
    over without one failed request (seen on the real node: the step then ends normally, which is
    right). Cordoning makes the loss last, so what must happen while pods are missing is certain:
    the step holds, its duration passes without a promotion, and the traffic the canary can no
    longer answer fails its analysis.
    """
    name = model
    load = env.start_load(name)
    stable = start_rollout(env, "vanish", [{"canary": {"weight": 50, "duration": "20s"}}])
    watch = Watch(env, name)
    running = watch.until(lambda s: bool(s.get("stepStartedAt")), 90, "the canary step running")
    new = running["canaryRevision"]
    env.wait(lambda: load.by_revision().get(new, 0) > 5, 30, "traffic reaching the canary")

    env.cluster.kubectl("cordon", NODE_NAME)
    try:
        env.cluster.kubectl("scale", "-n", env.namespace, f"deployment/{name}-{new}", "--replicas=0")
        # The operator re-applies the Deployment at the step's size (poked by the Deployment's change).
        env.wait(lambda: deployment_replicas(env, name, new) == 1, 10, "the canary Deployment scaled back")
        held = watch.until(
            lambda s: bool(s.get("stepStartedAt") and s.get("waitingForPodsSince")),
            30,
            "the running step holding while its pods are missing (PodsLost)",
        )
        final = watch.until(
            lambda s: s.get("phase") in ("Succeeded", "RolledBack", "Failed"), 120, "an outcome"
        )
    finally:
        env.cluster.kubectl("uncordon", NODE_NAME)
    load.stop()
    print("\n".join(watch.changes))

    assert held["canaryRevision"] == new and held["stableRevision"] == stable
    assert watch.stable_revisions() == {stable}, "never promoted"
    assert final["phase"] == "RolledBack" and final["abortedRevision"] == new
    # While its pods were gone the sidecars' guard stopped sending it traffic and analysis failed.
    failed = [r["metric"] for r in final["analysis"]["results"] if r["verdict"] == "Fail"]
    assert failed, final["analysis"]
    assert not duplicate_history(final)
    assert env.routing(name)["stable"]["revision"] == stable and not env.routing(name).get("canary")


def test_prometheus_down_blocks_promotion_and_the_rollout_promotes_once_it_is_back(
    env: RealNodeEnv, model: str
) -> None:
    name = model
    load = env.start_load(name)
    stable = start_rollout(env, "blackout", STEPS[1:])
    watch = Watch(env, name)
    running = watch.until(lambda s: bool(s.get("stepStartedAt")), 90, "the first canary step")
    new = running["canaryRevision"]
    assert env.prometheus is not None
    env.prometheus.stop()
    try:
        watch.until(
            lambda s: s.get("analysis", {}).get("consecutiveInconclusive", 0) >= 2, 60, "inconclusive runs"
        )
        time.sleep(9)  # longer than every remaining step: still no promotion without analysis
        held = watch.status()
    finally:
        env.start_prometheus()  # same port, same data
    assert held["currentStep"] == running["currentStep"] and held["stableRevision"] == stable, held
    messages = " ".join(r["message"] for r in held["analysis"]["results"]).lower()
    assert "unreachable" in messages, messages

    final = watch.until(promoted(new), 120, "the promotion once Prometheus is back")
    load.stop()
    print("\n".join(watch.changes))
    assert watch.stable_revisions() == {stable, new}
    assert_promoted_once(env, name, final, new)
    assert not client_errors(load.samples), client_errors(load.samples)[:5]


def test_api_server_restarted_mid_rollout_the_operator_recovers_and_promotes(
    env: RealNodeEnv, model: str
) -> None:
    name = model
    load = env.start_load(name)
    stable = start_rollout(env, "apiserver", STEPS)
    watch = Watch(env, name)
    running = watch.until(lambda s: s.get("currentStep") == 1 and bool(s.get("stepStartedAt")), 90, "canary")
    new = running["canaryRevision"]
    operator = the_operator_pod(env)
    restarts = operator_container(operator).restart_count

    t0 = time.monotonic()
    env.cluster.restart_apiserver()
    restarted_at = time.time()
    print(f"API server back after {time.monotonic() - t0:.1f}s")
    final = watch.until(promoted(new), 120, "the promotion after the API server restart")
    load.stop()
    print("\n".join(watch.changes))

    after = the_operator_pod(env)
    assert after.metadata.name == operator.metadata.name, "the same operator Pod recovered"
    assert operator_container(after).restart_count == restarts, "its container was never restarted"
    # The sidecars' routing watches recovered too: the new revision took traffic after the restart.
    assert load.by_revision(restarted_at).get(new, 0) > 0
    assert watch.stable_revisions() == {stable, new}
    assert_promoted_once(env, name, final, new)
    # The data plane does not depend on the API server: no client saw an error.
    assert not client_errors(load.samples), client_errors(load.samples)[:5]


KILL_POINTS_PROMOTION: list[tuple[str, Callable[[Status], bool]]] = [
    ("pods starting", lambda s: s.get("currentStep") == 0 and not s.get("stepStartedAt")),
    ("shadow step", lambda s: s.get("currentStep") == 0 and bool(s.get("stepStartedAt"))),
    ("canary 25%", lambda s: s.get("currentStep") == 1 and bool(s.get("stepStartedAt"))),
    ("canary 50%", lambda s: s.get("currentStep") == 2 and bool(s.get("stepStartedAt"))),
    ("promotion", lambda s: s.get("currentStep") == 3),
]


def _in_rollout(phase: Callable[[Status], bool]) -> Callable[[Status], bool]:
    return lambda s: bool(s.get("canaryRevision")) and phase(s)


def test_operator_pod_deleted_in_every_phase_of_a_promotion_promotes_exactly_once(
    env: RealNodeEnv, model: str
) -> None:
    """One rollout hosts all the kills: each phase is caught and the operator Pod deleted; the
    chart's Deployment starts a replacement Pod, which resumes the rollout from its status. Two
    replicas, so promotion waits for a second pod of the new revision (a phase to kill in)."""
    name = model
    load = env.start_load(name)
    stable = start_rollout(env, "kills", STEPS, replicas=2, drain="8s")
    watch = Watch(env, name)
    killed: list[str] = []
    deleted: list[str] = []
    new = ""
    for phase, predicate in KILL_POINTS_PROMOTION:
        status = watch.until(_in_rollout(predicate), 90, phase)
        new = status["canaryRevision"]
        deleted.append(delete_operator_pod(env))
        killed.append(phase)
    draining = watch.until(
        lambda s: promoted(new)(s) and any(d["revision"] == stable for d in s.get("draining") or []),
        90,
        "the old stable draining after the promotion",
    )
    deleted.append(delete_operator_pod(env))
    killed.append("drain")
    final = watch.until(lambda s: promoted(new)(s) and not s.get("draining"), 60, "the drain to finish")
    load.stop()
    print("\n".join(watch.changes))

    assert killed == [p for p, _ in KILL_POINTS_PROMOTION] + ["drain"]
    # Every kill hit another Pod: each time a replacement had taken over.
    assert len(set(deleted)) == len(deleted), deleted
    assert the_operator_pod(env).metadata.name not in deleted
    assert draining["stableRevision"] == new
    assert watch.stable_revisions() == {stable, new}
    # No step skipped: every step of the rollout was seen running after the kills.
    assert {s.get("currentStep") for s in watch.seen if s.get("stepStartedAt")} >= {0, 1, 2}
    assert_promoted_once(env, name, final, new)
    assert deployment_replicas(env, name, stable) in (0, None), "the old stable scaled down or removed"
    assert not client_errors(load.samples), client_errors(load.samples)[:5]


def test_operator_killed_before_and_during_a_rollback_rolls_back_exactly_once(
    env: RealNodeEnv, model: str
) -> None:
    """The operator container SIGKILLed (no cleanup) after a failed analysis run and again while
    the bad revision drains; the kubelet restarts it in the same Pod each time."""
    name = model
    load = env.start_load(name)
    stable = start_rollout(
        env,
        "kills-bad",
        [{"canary": {"weight": 50, "duration": "60s"}}],
        analysis={**FAST_ANALYSIS, "failureLimit": 3},
        drain="8s",
        model_env={"IRIS_FAIL_RATE": "0.4"},
    )
    watch = Watch(env, name)
    failing = watch.until(
        lambda s: (
            s.get("phase") == "Progressing" and s.get("analysis", {}).get("consecutiveFailures", 0) >= 1
        ),
        90,
        "a failed analysis run",
    )
    bad = failing["canaryRevision"]
    pod, restarts = kill_operator_container(env)
    rolled_back = watch.until(
        lambda s: (
            s.get("phase") == "RolledBack" and any(d["revision"] == bad for d in s.get("draining") or [])
        ),
        90,
        "the rollback, with the bad revision draining",
    )
    again, restarts_again = kill_operator_container(env)
    # the second restart waits out the kubelet's crash-loop back-off (10 s)
    wait_operator_restarted(env, again, restarts_again, timeout=90)
    # The operator scales the drained revision down before it writes the status that ends the
    # drain: once the status says the drain is over, the Deployment must be at 0 already.
    final = watch.until(lambda s: not s.get("draining"), 60, "the drain of the bad revision to end")
    drained_replicas = deployment_replicas(env, name, bad)
    load.stop()
    print("\n".join(watch.changes))

    assert again == pod and restarts_again > restarts, "the kubelet restarted the killed container in its Pod"
    assert rolled_back["abortedRevision"] == bad and final["abortedRevision"] == bad
    assert final["phase"] == "RolledBack" and not final.get("draining")
    assert drained_replicas == 0, "the bad revision scaled to 0 after the drain"
    assert watch.stable_revisions() == {stable}
    assert not duplicate_history(final), final["history"]
    assert [h["outcome"] for h in final["history"] if h["revision"] == bad] == ["RolledBack"]
    env.events_with(name, "RolledBack", about=bad)
    assert event_reasons(env, name, bad)["RolledBack"] == 1, env.events(name)
    assert env.routing(name)["stable"]["revision"] == stable and not env.routing(name).get("canary")


UPGRADE_STEPS: list[dict[str, Any]] = [
    {"canary": {"weight": 25, "duration": "40s"}},
    {"canary": {"weight": 50, "duration": "4s"}},
]
"""The first step outlasts the upgrade (the old operator Pod stopped, the new one started and Ready,
~20-30 s on a loaded 2-core machine), so the new operator surely takes the rollout over mid-way."""


def test_helm_upgrade_of_the_operator_to_a_new_image_tag_mid_rollout_promotes_exactly_once(
    env: RealNodeEnv, model: str
) -> None:
    name = model
    load = env.start_load(name)
    stable = start_rollout(env, "upgrade", UPGRADE_STEPS)
    watch = Watch(env, name)
    running = watch.until(lambda s: bool(s.get("stepStartedAt")), 90, "the first canary step")
    new = running["canaryRevision"]
    old_pod = the_operator_pod(env).metadata.name
    image = tag_operator_image(env, SECOND_TAG_SUFFIX)
    upgrade_operator(env, {"image": {"tag": image.rpartition(":")[2]}}, "new-tag", wait=False)
    took_over = watch.until(lambda _: upgraded(env, image), 180, f"the operator Pod of image {image}")
    final = watch.until(promoted(new), 120, "the promotion by the upgraded operator")
    load.stop()
    print("\n".join(watch.changes))

    pod = the_operator_pod(env)
    assert pod.metadata.name != old_pod and pod.spec.containers[0].image == image
    assert took_over.get("stableRevision") == stable and took_over.get("phase") == "Progressing", took_over
    assert operator_reconciles(pod) > 0, "the upgraded operator finished the rollout"
    assert {s.get("currentStep") for s in watch.seen if s.get("stepStartedAt")} >= {0, 1}
    assert watch.stable_revisions() == {stable, new}
    assert_promoted_once(env, name, final, new)
    assert not client_errors(load.samples), client_errors(load.samples)[:5]


def upgraded(env: RealNodeEnv, image: str) -> bool:
    """The release's one operator Pod runs `image` and is Ready (the old one is gone)."""
    assert env.operator is not None
    pods = env.operator.pods()
    return len(pods) == 1 and pods[0].spec.containers[0].image == image and env.operator.alive()


def test_two_peered_operator_replicas_exactly_one_acts_during_a_rollout(env: RealNodeEnv, model: str) -> None:
    """The chart with `replicas: 2` and `leaderElection.enabled` (a KopfPeering in the watched
    namespace); the release goes back to one standalone replica afterwards."""
    name = model
    load = env.start_load(name)
    peered = {"replicas": 2, "leaderElection": {"enabled": True}}
    upgrade_operator(env, peered, "peered", wait=True)
    try:
        wait_operator_rolled_out(env, env.images["operator"].ref, replicas=2)
        stable = start_rollout(env, "peered", STEPS[1:])
        watch = Watch(env, name)
        new = watch.until(lambda s: bool(s.get("canaryRevision")), 60, "the rollout to start")[
            "canaryRevision"
        ]
        final = watch.until(promoted(new), 120, "the promotion by the peered replicas")
        reconciles = {p.metadata.name: operator_reconciles(p) for p in operator_pods(env)}
        assert env.operator is not None
        logs = env.operator.logs()
    finally:
        upgrade_operator(env, {}, "standalone", wait=True)
    load.stop()
    print("\n".join(watch.changes))

    assert len(reconciles) == 2 and sorted(r > 0 for r in reconciles.values()) == [False, True], (
        reconciles,
        env.operator.log,
    )
    assert "conflicting operators with the same priority" not in logs
    assert watch.stable_revisions() == {stable, new}
    assert_promoted_once(env, name, final, new)
