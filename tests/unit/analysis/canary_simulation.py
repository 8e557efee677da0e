"""Replays synthetic canaries through today's rule and through the sequential tests.

Pure Python except for the random draws (numpy's seeded Generator: exact binomial and multinomial
sampling of thousands of requests per look). Every run is deterministic given its seed.

One simulated rollout: the model serves `rps` requests per second; the canary gets 10%, 25%, then 50%
of them for 60 s each (180 s in all); the analysis looks every 5 s (the scrape interval of the
benchmark). Stable fails 1% of requests and answers in a log-normal time (median 40 ms, sigma 0.6),
counted into the sidecar's histogram buckets. A scenario changes the canary: error rate (2x, 5x,
30% absolute) or latency (every request 1.5x slower).

- **today's rule** (`analysis.interval: 5s`, the default 30 s minimum window, `minRequests: 50`,
  `failureLimit: 2`, confidence 0.95, `maxErrorRateDeltaToStable: 0`, `maxLatencyRatioToStable: 1.2`):
  each look judges the last 30 s with the operator's own judges (`verdict.judge_error_rate_delta`,
  `verdict.judge_latency_ratio` on `histogram_quantile`'s p99); two failed looks in a row roll back.
- **sequential** (confidence 0.95, split over its two checks: alpha/2 each): each look computes the
  error-vs-stable e-value and the latency-distribution e-value from the counts accumulated since the
  rollout began; the first look where either reaches 2/alpha rolls back.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from modeldeploy.contract.metrics import LATENCY_BUCKETS
from modeldeploy.operator.analysis import judgement, sequential
from modeldeploy.operator.analysis.checks import error_rate, latency
from modeldeploy.operator.analysis.results import Verdict

STEPS = ((0.10, 60), (0.25, 60), (0.50, 60))
"""(canary share, seconds) of the simulated rollout."""
LOOK_SECONDS = 5
WINDOW_LOOKS = 6  # today's 30 s minimum window, in looks
FAILURE_LIMIT = 2
CONFIDENCE = 0.95
STABLE_ERROR_RATE = 0.01
MEDIAN_SECONDS, SIGMA = 0.040, 0.6
LATENCY_RATIO_MAX = 1.2
SEQUENTIAL_CHECKS = 2  # error rate vs stable, latency distribution: alpha split between them


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    canary_error_rate: float
    latency_factor: float = 1.0
    slow_tail: float = 0.0
    """Share of the canary's requests that take TAIL_MEDIAN_SECONDS instead (the hidden-tail case)."""


IDENTICAL = Scenario("identical canary", STABLE_ERROR_RATE)
REGRESSIONS = (
    Scenario("errors 2x (1% -> 2%)", 2 * STABLE_ERROR_RATE),
    Scenario("errors 5x (1% -> 5%)", 5 * STABLE_ERROR_RATE),
    Scenario("errors 30%", 0.30),
    Scenario("latency 1.5x", STABLE_ERROR_RATE, 1.5),
    Scenario("slowest 0.5% take ~1.5 s", STABLE_ERROR_RATE, slow_tail=0.005),
)
TAIL_MEDIAN_SECONDS = 1.5


def bucket_shares(factor: float, slow_tail: float = 0.0) -> list[float]:
    """Share of requests in each histogram bucket (finite bounds, then +Inf) for latencies * factor,
    a share `slow_tail` of them log-normal around TAIL_MEDIAN_SECONDS instead."""
    body = _lognormal_shares(MEDIAN_SECONDS * factor)
    if not slow_tail:
        return body
    tail = _lognormal_shares(TAIL_MEDIAN_SECONDS)
    return [(1 - slow_tail) * b + slow_tail * t for b, t in zip(body, tail, strict=True)]


def _lognormal_shares(median: float) -> list[float]:
    cdf = [0.5 * (1 + math.erf(math.log(b / median) / (SIGMA * math.sqrt(2)))) for b in LATENCY_BUCKETS]
    edges = [0.0, *cdf, 1.0]
    return [max(0.0, hi - lo) for lo, hi in itertools.pairwise(edges)]


def cumulative(per_bucket: Sequence[float]) -> dict[float, float]:
    """Per-bucket counts -> Prometheus' cumulative `le` counts (+Inf included)."""
    out: dict[float, float] = {}
    running = 0.0
    for bound, count in zip((*LATENCY_BUCKETS, math.inf), per_bucket, strict=True):
        running += count
        out[bound] = running
    return out


def histogram_quantile(q: float, buckets: dict[float, float]) -> float | None:
    """Prometheus' histogram_quantile on cumulative counts (linear within the bucket)."""
    total = buckets.get(math.inf, 0.0)
    if total <= 0:
        return None
    rank = q * total
    bounds = sorted(buckets)
    previous_bound, previous_count = 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= rank:
            if math.isinf(bound):
                return previous_bound
            if count == previous_count:
                return bound
            return previous_bound + (bound - previous_bound) * (rank - previous_count) / (
                count - previous_count
            )
        previous_bound, previous_count = bound, count
    return previous_bound


@dataclass(slots=True)
class Look:
    """The counts of one 5 s look: per revision requests, errors, requests per latency bucket."""

    canary_requests: int
    canary_errors: int
    canary_buckets: np.ndarray
    stable_requests: int
    stable_errors: int
    stable_buckets: np.ndarray


def simulate_looks(rng: np.random.Generator, scenario: Scenario, rps: float) -> list[Look]:
    stable_shares = bucket_shares(1.0)
    canary_shares = bucket_shares(scenario.latency_factor, scenario.slow_tail)
    looks: list[Look] = []
    for share, seconds in STEPS:
        for _ in range(seconds // LOOK_SECONDS):
            total = int(rng.poisson(rps * LOOK_SECONDS))
            canary = int(rng.binomial(total, share))
            stable = total - canary
            looks.append(
                Look(
                    canary,
                    int(rng.binomial(canary, scenario.canary_error_rate)),
                    rng.multinomial(canary, canary_shares),
                    stable,
                    int(rng.binomial(stable, STABLE_ERROR_RATE)),
                    rng.multinomial(stable, stable_shares),
                )
            )
    return looks


Rule = Callable[[list[Look]], int | None]
"""Index of the look at which a rule rolls back (None: the rollout completes)."""


def todays_rule(looks: list[Look]) -> int | None:
    judge = judgement.Judge(min_requests=50, confidence=CONFIDENCE, window="30s")
    failures = 0
    for i in range(len(looks)):
        window = looks[max(0, i - WINDOW_LOOKS + 1) : i + 1]
        canary = judgement.Counts(
            sum(w.canary_errors for w in window), sum(w.canary_requests for w in window)
        )
        stable = judgement.Counts(
            sum(w.stable_errors for w in window), sum(w.stable_requests for w in window)
        )
        error_verdict = error_rate.judge_error_rate_delta(canary, stable, 0.0, judge, "")
        canary_hist = cumulative(np.sum([w.canary_buckets for w in window], axis=0).tolist())
        stable_hist = cumulative(np.sum([w.stable_buckets for w in window], axis=0).tolist())
        latency_verdict = latency.judge_latency_ratio(
            histogram_quantile(0.99, canary_hist),
            histogram_quantile(0.99, stable_hist),
            canary.total,
            stable.total,
            LATENCY_RATIO_MAX,
            judge,
            "",
        )
        failed = Verdict.FAIL in (error_verdict.verdict, latency_verdict.verdict)
        failures = failures + 1 if failed else 0
        if failures >= FAILURE_LIMIT:
            return i
    return None


def sequential_rule(looks: list[Look]) -> int | None:
    confidence = 1 - (1 - CONFIDENCE) / SEQUENTIAL_CHECKS
    level = sequential.threshold(confidence)
    canary_requests = canary_errors = stable_requests = stable_errors = 0
    canary_buckets = np.zeros(len(LATENCY_BUCKETS) + 1, dtype=np.int64)
    stable_buckets = np.zeros(len(LATENCY_BUCKETS) + 1, dtype=np.int64)
    for i, look in enumerate(looks):
        canary_requests += look.canary_requests
        canary_errors += look.canary_errors
        stable_requests += look.stable_requests
        stable_errors += look.stable_errors
        canary_buckets += look.canary_buckets
        stable_buckets += look.stable_buckets
        errors = sequential.difference_test(
            sequential.Counts(canary_errors, canary_requests),
            sequential.Counts(stable_errors, stable_requests),
            0.0,
            confidence,
            sequence=False,
        )
        if errors.log_e >= level:
            return i
        latency = sequential.latency_shift_test(
            cumulative(canary_buckets.tolist()), cumulative(stable_buckets.tolist())
        )
        if latency.log_e >= level:
            return i
    return None


RULES: dict[str, Rule] = {"today": todays_rule, "sequential": sequential_rule}


@dataclass(frozen=True, slots=True)
class Tally:
    """How often a rule rolled back over `runs` rollouts, and when (seconds since the rollout began)."""

    runs: int
    rollbacks: int
    seconds: tuple[float, ...]

    @property
    def rate(self) -> float:
        return self.rollbacks / self.runs

    @property
    def median_seconds(self) -> float | None:
        if not self.seconds or len(self.seconds) * 2 < self.runs:
            return None  # fewer than half the runs detected: no median detection time
        ordered = sorted(self.seconds) + [math.inf] * (self.runs - len(self.seconds))
        return ordered[(self.runs - 1) // 2]


def replay(
    scenario: Scenario, rps: float, runs: int, seed: int, rules: Sequence[str] = tuple(RULES)
) -> dict[str, Tally]:
    """The rules (default: both) on the same `runs` simulated rollouts (seeded)."""
    rng = np.random.default_rng(seed)
    hits: dict[str, list[float]] = {name: [] for name in rules}
    for _ in range(runs):
        looks = simulate_looks(rng, scenario, rps)
        for name in rules:
            at = RULES[name](looks)
            if at is not None:
                hits[name].append((at + 1) * LOOK_SECONDS)
    return {name: Tally(runs, len(found), tuple(found)) for name, found in hits.items()}


def _seconds(tally: Tally) -> str:
    median = tally.median_seconds
    if median is None:
        return f"not caught in 180 s ({tally.rate:.0%} of runs)"
    return f"{median:g} s"


def table(
    rates: Sequence[float] = (10, 100, 1000),
    runs: int = 1000,
    detection_runs: int = 200,
    scenarios: Sequence[Scenario] = (IDENTICAL, *REGRESSIONS),
) -> str:
    """The markdown table of docs/analysis.md."""
    lines = [
        "| scenario | requests/s | today: rolled back | today: median time | sequential: rolled back "
        "| sequential: median time |",
        "|---|---|---|---|---|---|",
    ]
    everything = (IDENTICAL, *REGRESSIONS)
    for scenario in scenarios:
        index = everything.index(scenario)  # the seed depends on the scenario, not on which are shown
        for rps in rates:
            n = runs if scenario is IDENTICAL else detection_runs
            result = replay(scenario, rps, n, seed=1000 * index + int(rps))
            today, seq = result["today"], result["sequential"]
            lines.append(
                f"| {scenario.name} | {rps:g} | {today.rate:.1%} | {_seconds(today)} | {seq.rate:.1%} "
                f"| {_seconds(seq)} |"
            )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(table())
