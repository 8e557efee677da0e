"""inputPSI/<feature>: minRequests, significance, threshold, messages; the false-fail rate."""

from __future__ import annotations

import math
import random

import pytest

from modeldeploy.operator.analysis.checks import drift
from modeldeploy.operator.analysis.judgement import Judge
from modeldeploy.operator.analysis.results import Verdict
from modeldeploy.operator.api.guardrails import DriftSpec

JUDGE = Judge(min_requests=50, confidence=0.95, window="30s")
Q = "the query"
BOUNDS = (4.5, 5.0, 5.5, 6.0, 6.5, 7.0, math.inf)


def cumulative(counts: list[float], bounds: tuple[float, ...] = BOUNDS) -> dict[float, float]:
    out, running = {}, 0.0
    for bound, count in zip(bounds, counts, strict=True):
        running += count
        out[bound] = running
    return out


STABLE = cumulative([50, 150, 300, 250, 150, 70, 30])
SHIFTED = cumulative([0, 10, 30, 90, 200, 300, 370])


def test_shifted_inputs_fail_with_feature_value_and_threshold() -> None:
    result = drift.judge_input_psi("sepal-length", SHIFTED, STABLE, 0.2, JUDGE, Q)
    assert result.verdict is Verdict.FAIL
    assert result.metric == "inputPSI/sepal-length"
    assert result.value is not None and result.value > 1.0
    assert result.threshold == 0.2 and result.query == Q
    assert result.message.startswith(
        f"inputPSI/sepal-length: PSI {result.value:.3g} (1000 values vs stable's 1000) > 0.2; "
        "the input distributions differ, significant at 95% (p="
    )


def test_the_same_distribution_passes() -> None:
    doubled = {bound: 2 * count for bound, count in STABLE.items()}
    result = drift.judge_input_psi("sepal-length", doubled, STABLE, 0.2, JUDGE, Q)
    assert result.verdict is Verdict.PASS
    assert result.value == pytest.approx(0.0, abs=1e-12)
    assert result.message == "inputPSI/sepal-length: PSI 0 (2000 values vs stable's 1000) <= 0.2"


@pytest.mark.parametrize(
    ("canary", "stable", "said"),
    [
        ({}, STABLE, "the new revision observed only 0 values of f in 30s (minRequests 50)"),
        (SHIFTED, {}, "the new revision observed only 0 values"),  # no shared +Inf: nothing counted
        (cumulative([0, 0, 0, 0, 0, 40, 0]), STABLE, "the new revision observed only 40 values"),
        (SHIFTED, cumulative([10, 10, 10, 10, 0, 0, 0]), "stable observed only 40 values of f"),
    ],
)
def test_too_few_observations_are_inconclusive_never_fail_or_pass(
    canary: dict[float, float], stable: dict[float, float], said: str
) -> None:
    result = drift.judge_input_psi("f", canary, stable, 0.2, JUDGE, Q)
    assert result.verdict is Verdict.INCONCLUSIVE
    assert said in result.message
    assert result.threshold == 0.2 and result.query == Q


def test_a_large_psi_without_evidence_waits() -> None:
    # 50 values each over three buckets: a PSI over 0.2 that sampling noise explains
    small = Judge(min_requests=10, confidence=0.95, window="30s")
    bounds = (1.0, 2.0, math.inf)
    result = drift.judge_input_psi(
        "f", cumulative([3, 5, 2], bounds), cumulative([5, 3, 2], bounds), 0.1, small, Q
    )
    assert result.value is not None and result.value > 0.1
    assert result.verdict is Verdict.INCONCLUSIVE
    assert "not significant at 95%" in result.message and "waiting for more observations" in result.message


def test_buckets_of_the_other_side_that_are_missing_are_merged() -> None:
    canary = cumulative([50, 150, 300, 250, 150, 70, 30])
    stable = {5.0: 200.0, 6.0: 750.0, math.inf: 1000.0}  # coarser bounds
    result = drift.judge_input_psi("f", canary, stable, 0.2, JUDGE, Q)
    assert result.verdict is Verdict.PASS and result.value == pytest.approx(0.0, abs=1e-12)


def test_identical_distributions_rarely_fail_at_low_traffic() -> None:
    """Two samples of minRequests values from one distribution: PSI alone exceeds 0.2 in most
    windows (small-sample bias); with the homogeneity test a window fails about alpha of the time."""
    rng = random.Random(8)
    shares = [0.05, 0.15, 0.3, 0.25, 0.15, 0.07, 0.03]
    runs, over, failed = 400, 0, 0
    for _ in range(runs):
        a, b = [0.0] * 7, [0.0] * 7
        for i in rng.choices(range(7), shares, k=50):
            a[i] += 1
        for i in rng.choices(range(7), shares, k=50):
            b[i] += 1
        result = drift.judge_input_psi("f", cumulative(a), cumulative(b), 0.2, JUDGE, Q)
        over += result.value is not None and result.value > 0.2
        failed += result.verdict is Verdict.FAIL
    assert over / runs > 0.3
    assert failed / runs < 0.1


def test_the_gate_rejects_nonsense() -> None:
    assert drift.DriftGate(("a", "b"), 0.2).features == ("a", "b")
    with pytest.raises(ValueError, match="maxInputPSI"):
        drift.DriftGate(("a",), -1.0)
    with pytest.raises(ValueError, match="maxInputPSI"):
        drift.DriftGate(("a",), math.nan)
    with pytest.raises(ValueError, match="unique"):
        drift.DriftGate(("a", "a"), 0.2)


def test_the_gate_follows_the_spec() -> None:
    features = [{"name": "sepal-length", "path": "/features/*/0", "buckets": [5, 6]}]
    with_gate = DriftSpec.model_validate({"features": features, "maxInputPSI": 0.25})
    assert drift.gate_from_spec(with_gate) == drift.DriftGate(("sepal-length",), 0.25)
    assert drift.gate_from_spec(DriftSpec.model_validate({"features": features})) is None  # histograms only
    assert drift.gate_from_spec(None) is None
