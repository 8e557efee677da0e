"""Which rendered children the operator re-applies and which it skips (operator/kube/applied.py)."""

from __future__ import annotations

from typing import Any

from modeldeploy.operator.kube.applied import AppliedChildren

OWNER = ("ml", "iris")


def manifest(kind: str, name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": kind, "metadata": {"name": name, "namespace": "ml"}, "spec": spec}


def answered(version: str) -> dict[str, Any]:
    return {"metadata": {"resourceVersion": version}}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_unknown_child_is_applied_then_skipped_while_unchanged() -> None:
    applied = AppliedChildren(clock=Clock())
    cm = manifest("ConfigMap", "iris-routing", table=1)
    assert applied.needs_apply(OWNER, cm, {})
    applied.remember(OWNER, cm, answered("7"))
    assert not applied.needs_apply(OWNER, cm, {("ConfigMap", "iris-routing"): "7"})


def test_changed_manifest_is_applied() -> None:
    applied = AppliedChildren(clock=Clock())
    applied.remember(OWNER, manifest("ConfigMap", "iris-routing", table=1), answered("7"))
    assert applied.needs_apply(
        OWNER, manifest("ConfigMap", "iris-routing", table=2), {("ConfigMap", "iris-routing"): "7"}
    )


def test_observed_child_changed_or_deleted_by_someone_else_is_applied() -> None:
    applied = AppliedChildren(clock=Clock())
    cm = manifest("ConfigMap", "iris-routing", table=1)
    applied.remember(OWNER, cm, answered("7"))
    assert applied.needs_apply(OWNER, cm, {("ConfigMap", "iris-routing"): "9"})  # edited by hand
    assert applied.needs_apply(OWNER, cm, {("ConfigMap", "iris-routing"): None})  # deleted


def test_unobserved_child_is_refreshed_after_the_refresh_period() -> None:
    clock = Clock()
    applied = AppliedChildren(refresh_seconds=300, clock=clock)
    svc = manifest("Service", "iris", port=8080)
    applied.remember(OWNER, svc, answered("3"))
    clock.now += 299
    assert not applied.needs_apply(OWNER, svc, {})
    clock.now += 2
    assert applied.needs_apply(OWNER, svc, {})


def test_forgotten_children_are_applied_again() -> None:
    applied = AppliedChildren(clock=Clock())
    svc = manifest("Service", "iris-aaaa", port=8080)
    dep = manifest("Deployment", "iris-aaaa", replicas=2)
    applied.remember(OWNER, svc, answered("3"))
    applied.remember(OWNER, dep, answered("4"))
    applied.forget(OWNER, ("Service", "iris-aaaa"))
    assert applied.needs_apply(OWNER, svc, {})
    assert not applied.needs_apply(OWNER, dep, {("Deployment", "iris-aaaa"): "4"})
    applied.forget(OWNER)
    assert applied.needs_apply(OWNER, dep, {("Deployment", "iris-aaaa"): "4"})


def test_owners_are_kept_apart() -> None:
    applied = AppliedChildren(clock=Clock())
    cm = manifest("ConfigMap", "iris-routing", table=1)
    applied.remember(OWNER, cm, answered("7"))
    assert applied.needs_apply(("other", "iris"), cm, {("ConfigMap", "iris-routing"): "7"})
