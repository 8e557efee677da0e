"""End to end on the real node: what only a kubelet shows (issue 13, part 4).

- Promotion and rollback lose no client request while the old revision's Pods terminate: the
  entry Service's endpoints and the sidecars' routing move away from Pods that kube-proxy and the
  stable sidecars may still send to for a moment; the Pods' preStop and the sidecar's drain cover it.
- A model container that crashes is restarted by the kubelet (restartCount observed); the rollout
  holds (no traffic to the new revision, stable keeps serving) and, as the container keeps
  crashing, the revision fails after `progressDeadline` with a reason saying so.

Same environment as test_rollouts.py (tests/support/real_env.py): the operator from the chart,
model Pods of the iris and sidecar images, load through the entry Service's ClusterIP.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.support.e2e_scenarios import deploy_stable, new_revision_spec
from tests.support.load import Sample
from tests.support.real_env import RealNodeEnv

pytestmark = [pytest.mark.e2e, pytest.mark.cluster, pytest.mark.slow]

CRASH_EXIT_CODE = 3


def failed(samples: list[Sample]) -> list[Sample]:
    """Requests a client saw fail: a 5xx or no answer at all (connection refused, reset, timeout)."""
    return [s for s in samples if s.status >= 500 or s.status == 0]


def wait_until_terminated(env: RealNodeEnv, revision: str, timeout: float) -> None:
    """Until every Pod of `revision` has been seen Terminating and is gone (the load keeps running)."""
    seen_terminating: set[str] = set()

    def gone() -> bool:
        pods = env.runner.pods(revision, terminating=True)
        seen_terminating.update(p.metadata.name for p in pods if p.metadata.deletion_timestamp is not None)
        return not pods and bool(seen_terminating)

    env.wait(gone, timeout, f"the Pods of revision {revision} to terminate")


def test_promotion_and_rollback_fail_no_request_while_old_pods_terminate(env: RealNodeEnv) -> None:
    name = "handover"
    stable = deploy_stable(env, name)
    stable_pods = {p.metadata.name for p in env.runner.pods(stable)}
    load = env.start_load(name)
    env.wait(lambda: load.by_revision().get(stable, 0) > 10, 30, "traffic served by stable")
    started = time.time()

    env.patch_spec(name, new_revision_spec(env, name, variant="b"))
    promoted = env.wait(
        lambda: (
            (s := env.status(name)).get("phase") == "Succeeded" and s.get("stableRevision") != stable and s
        ),
        180,
        "the new revision to be promoted",
    )["stableRevision"]
    wait_until_terminated(env, stable, 90)
    handed_over = time.time()
    env.wait(
        lambda: load.by_revision(handed_over).get(promoted, 0) > 10, 30, "traffic served by the new stable"
    )

    # A canary 3x over a p99 limit of 100 ms, straight at 50% (no shadow step, so it serves
    # clients): rolled back on latency with no 5xx of its own, so every failed request would be
    # one a handover lost.
    slow_spec = new_revision_spec(env, name, variant="c", env={"IRIS_LATENCY_MS": "300"})
    slow_spec["rollout"] = {
        "steps": [{"canary": {"weight": 50, "duration": "60s"}}],
        "analysis": {"slo": {"latencyP99": "100ms", "errorRate": 0.05}},
    }
    env.patch_spec(name, slow_spec)
    status = env.wait(
        lambda: (s := env.status(name)).get("phase") == "RolledBack" and s, 180, "the slow one's rollback"
    )
    slow = status["abortedRevision"]
    assert status["stableRevision"] == promoted
    wait_until_terminated(env, slow, 90)
    time.sleep(3)  # requests sent just after the last Pod went are answered too
    load.stop()

    samples = load.since(started)
    served = {s.revision for s in samples if s.status == 200}
    assert {stable, promoted} <= served, served
    assert slow in served, "the slow revision served canary traffic before its rollback"
    lost = failed(samples)
    assert not lost, (
        f"{len(lost)} of {len(samples)} requests failed in the handovers (old Pods {sorted(stable_pods)}): "
        f"{[(round(s.at - started, 1), s.status, s.revision) for s in lost[:20]]}"
    )
    history = [(h["revision"], h["outcome"]) for h in env.status(name)["history"]]
    assert (promoted, "Promoted") in history and (slow, "RolledBack") in history, history


def model_container_status(env: RealNodeEnv, revision: str) -> Any:
    for pod in env.runner.pods(revision, terminating=True):
        for container in pod.status.container_statuses or []:
            if container.name == "model":
                return container
    return None


def test_a_crashing_model_is_restarted_and_the_rollout_fails_after_its_progress_deadline(
    env: RealNodeEnv,
) -> None:
    name = "crashing"
    stable = deploy_stable(env, name, extra_spec={"progressDeadline": "90s"})
    load = env.start_load(name)
    env.wait(lambda: load.by_revision().get(stable, 0) > 10, 30, "traffic served by stable")

    crash = new_revision_spec(env, name, variant="b")
    crash["model"]["command"] = ["/bin/sh", "-c", f"echo model crashing >&2; sleep 2; exit {CRASH_EXIT_CODE}"]
    env.patch_spec(name, crash)
    started = time.monotonic()
    bad = env.wait(lambda: env.status(name).get("canaryRevision"), 30, "the rollout to start")

    restarted = env.wait(
        lambda: (c := model_container_status(env, bad)) is not None and c.restart_count > 0 and c,
        60,
        "the kubelet to restart the crashing model container",
    )
    assert restarted.last_state.terminated is not None
    assert restarted.last_state.terminated.exit_code == CRASH_EXIT_CODE
    held = env.status(name)
    assert held["phase"] == "Progressing" and held["stableRevision"] == stable
    assert not (env.routing(name).get("canary") or {}).get("weight"), "no traffic to a revision never ready"

    status = env.wait(
        lambda: (s := env.status(name)).get("phase") in ("Failed", "RolledBack") and s,
        150,
        "the crashing revision to fail after its progressDeadline",
    )
    elapsed = time.monotonic() - started
    load.stop()
    assert status["phase"] == "Failed"
    assert elapsed >= 90, f"failed after {elapsed:.0f}s, before its progressDeadline of 90s"
    assert status["abortedRevision"] == bad and status["stableRevision"] == stable
    assert "progressDeadline 90s" in status["message"], status["message"]
    outcome = status["history"][-1]
    assert (outcome["revision"], outcome["outcome"]) == (bad, "Failed")
    assert outcome["reason"].startswith("ProgressDeadlineExceeded"), outcome
    final = model_container_status(env, bad)
    assert final is None or final.restart_count >= restarted.restart_count
    assert not failed(load.samples), "stable served every request while the new revision crashed"
