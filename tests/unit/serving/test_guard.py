"""Properties of the fast guard's window logic (modeldeploy.serving.guard), against a plain model."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from modeldeploy.contract.routing import GuardSettings
from modeldeploy.serving.guard import CanaryGuard


@st.composite
def guard_settings(draw: st.DrawFn) -> GuardSettings:
    window = draw(st.integers(min_value=1, max_value=30))
    return GuardSettings(
        window=window,
        max_error_ratio=draw(st.floats(min_value=0, max_value=1)),
        min_requests=draw(st.integers(min_value=1, max_value=window)),
    )


def reference_trip_index(outcomes: list[bool], s: GuardSettings) -> int | None:
    """Index of the outcome that trips the guard, straight from the definition."""
    for i in range(len(outcomes)):
        recent = outcomes[max(0, i + 1 - s.window) : i + 1]
        if len(recent) >= s.min_requests and sum(recent) / len(recent) > s.max_error_ratio:
            return i
    return None


@given(s=guard_settings(), outcomes=st.lists(st.booleans(), max_size=120))
def test_guard_trips_exactly_where_the_definition_says(s: GuardSettings, outcomes: list[bool]) -> None:
    guard = CanaryGuard(s)
    trips = [i for i, failed in enumerate(outcomes) if guard.record(failed)]
    expected = reference_trip_index(outcomes, s)
    assert trips == ([] if expected is None else [expected])
    assert guard.tripped == (expected is not None)


@given(s=guard_settings(), outcomes=st.lists(st.booleans(), max_size=120))
def test_window_holds_the_latest_outcomes_until_the_trip(s: GuardSettings, outcomes: list[bool]) -> None:
    guard = CanaryGuard(s)
    seen: list[bool] = []
    for failed in outcomes:
        if guard.tripped:
            break
        guard.record(failed)
        seen.append(failed)
        recent = seen[-s.window :]
        assert guard.observed == len(recent)
        assert guard.failures == sum(recent)


@given(s=guard_settings(), n=st.integers(min_value=0, max_value=100))
def test_successes_never_trip(s: GuardSettings, n: int) -> None:
    guard = CanaryGuard(s)
    assert not any(guard.record(False) for _ in range(n))


@given(s=guard_settings(), outcomes=st.lists(st.booleans(), max_size=60))
def test_fewer_than_min_requests_never_trip(s: GuardSettings, outcomes: list[bool]) -> None:
    guard = CanaryGuard(s)
    for failed in outcomes[: s.min_requests - 1]:
        assert not guard.record(failed)


@given(s=guard_settings(), after=st.lists(st.booleans(), max_size=40))
def test_tripped_guard_stays_tripped(s: GuardSettings, after: list[bool]) -> None:
    guard = CanaryGuard(s)
    if s.max_error_ratio >= 1:
        assert not any(guard.record(True) for _ in range(s.window * 2))
        return
    while not guard.tripped:
        guard.record(True)
    assert not any(guard.record(failed) for failed in after)
    assert guard.tripped


@given(
    first=guard_settings(),
    second=guard_settings(),
    before=st.lists(st.booleans(), max_size=40),
    after=st.lists(st.booleans(), max_size=40),
)
def test_reconfigure_keeps_the_latest_outcomes(
    first: GuardSettings, second: GuardSettings, before: list[bool], after: list[bool]
) -> None:
    guard = CanaryGuard(first)
    recorded = []
    for failed in before:
        if guard.tripped:
            break
        guard.record(failed)
        recorded.append(failed)
    was_tripped = guard.tripped
    guard.reconfigure(second)
    assert guard.tripped == was_tripped
    window = recorded[-min(first.window, second.window) :]
    assert guard.observed == len(window)
    assert guard.failures == sum(window)
