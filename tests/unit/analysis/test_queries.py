"""PromQL builders: selectors, windows, escaping, templates."""

from __future__ import annotations

from datetime import timedelta

import pytest

from modeldeploy.operator.analysis import queries as q
from modeldeploy.operator.analysis.checks import drift, error_rate, guard, latency, shadow

SEL = q.RevisionSelector(model="iris", namespace="ml", revision="1a2b3c4d5e")
SERVED = 'namespace="ml",model="iris",revision="1a2b3c4d5e",route="local"'


def test_request_and_error_counts_select_the_revision_where_it_served() -> None:
    assert q.requests_query(SEL, "30s") == f"sum(increase(modeldeploy_requests_total{{{SERVED}}}[30s]))"
    assert error_rate.errors_query(SEL, "30s") == (
        f'sum(increase(modeldeploy_requests_total{{{SERVED},code=~"5.."}}[30s]))'
    )
    assert (
        error_rate.error_ratio_query(SEL, "1m")
        == f"{error_rate.errors_query(SEL, '1m')} / {q.requests_query(SEL, '1m')}"
    )


def test_latency_queries() -> None:
    assert latency.latency_quantile_query(SEL, "30s") == (
        "histogram_quantile(0.99, sum by (le) "
        f"(rate(modeldeploy_request_duration_seconds_bucket{{{SERVED}}}[30s])))"
    )
    assert latency.latency_buckets_query(SEL, "45s") == (
        f"sum by (le) (increase(modeldeploy_request_duration_seconds_bucket{{{SERVED}}}[45s]))"
    )
    with pytest.raises(ValueError, match="quantile"):
        latency.latency_quantile_query(SEL, "30s", quantile=99)


def test_shadow_queries_use_every_route_of_the_shadow_revision() -> None:
    mine = 'namespace="ml",model="iris",revision="1a2b3c4d5e"'
    assert shadow.shadow_results_query(SEL, "30s") == (
        f"sum by (result) (increase(modeldeploy_shadow_requests_total{{{mine}}}[30s]))"
    )
    agreement = shadow.shadow_agreement_query(SEL, "30s")
    assert f'{{{mine},result="match"}}' in agreement
    assert f'{{{mine},result=~"match|mismatch|error"}}' in agreement  # dropped copies are not compared


def test_label_values_are_escaped() -> None:
    odd = q.RevisionSelector(model='a"b', namespace="n\\s", revision="r\nx")
    assert odd.matchers() == '{namespace="n\\\\s",model="a\\"b",revision="r\\nx"}'


@pytest.mark.parametrize(
    ("interval", "min_window", "expected"),
    [
        (timedelta(seconds=15), timedelta(seconds=30), "30s"),
        (timedelta(minutes=2), timedelta(seconds=30), "120s"),
        (timedelta(milliseconds=1500), timedelta(0), "2s"),
        (timedelta(milliseconds=10), timedelta(0), "1s"),
    ],
)
def test_window_is_the_interval_but_never_below_the_minimum(
    interval: timedelta, min_window: timedelta, expected: str
) -> None:
    assert q.promql_duration(q.query_window(interval, min_window)) == expected


def test_window_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        q.query_window(timedelta(0), timedelta(seconds=30))


VARIABLES = {
    "model": "iris",
    "namespace": "ml",
    "revision": "abc",
    "stableRevision": "def",
    "interval": "30s",
}


def test_templates_accept_spaces_inside_the_braces() -> None:
    template = (
        'sum(rate(x{ns="{{namespace}}",rev="{{ revision }}",old="{{  stableRevision}}"}[{{interval }}]))'
    )
    assert q.render_template(template, VARIABLES) == 'sum(rate(x{ns="ml",rev="abc",old="def"}[30s]))'


def test_unknown_placeholder_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown placeholder \{\{revison\}\}.*\{\{revision\}\}"):
        q.render_template('x{r="{{revison}}"}', VARIABLES)


def test_feature_buckets_put_both_revisions_side_by_side() -> None:
    stable = q.RevisionSelector(model="iris", namespace="ml", revision="9f8e7d6c5b")
    assert drift.feature_buckets_query(SEL, stable, "sepal_length", "30s") == (
        "sum by (revision, le) (increase(modeldeploy_input_feature_value_bucket{"
        'namespace="ml",model="iris",revision=~"1a2b3c4d5e|9f8e7d6c5b",feature="sepal_length"}[30s]))'
    )
    # no route label: the sidecar that served the request counts the values
    assert "route" not in drift.feature_buckets_query(SEL, stable, "x", "30s")
    assert 'revision=~"1a2b3c4d5e"' in drift.feature_buckets_query(SEL, SEL, "x", "30s")
    assert 'feature="a\\"b"' in drift.feature_buckets_query(SEL, stable, 'a"b', "30s")
    other = q.RevisionSelector(model="wine", namespace="ml", revision="9f8e7d6c5b")
    with pytest.raises(ValueError, match="same ModelDeployment"):
        drift.feature_buckets_query(SEL, other, "x", "30s")


def test_one_query_per_metric_covers_both_revisions() -> None:
    stable = q.RevisionSelector(model="iris", namespace="ml", revision="9f8e7d6c5b")
    plan = q.Plan("30s", SEL, stable, all_models=False)
    both = 'namespace="ml",model="iris",revision=~"1a2b3c4d5e|9f8e7d6c5b",route="local"'
    assert q.requests_sent(plan) == (
        f"sum by (revision) (increase(modeldeploy_requests_total{{{both}}}[30s]))"
    )
    assert error_rate.errors_sent(plan) == (
        f'sum by (revision) (increase(modeldeploy_requests_total{{{both},code=~"5.."}}[30s]))'
    )
    assert latency.latency_buckets_sent(q.Plan("1m", SEL, stable, all_models=False)) == (
        f"sum by (revision, le) (increase(modeldeploy_request_duration_seconds_bucket{{{both}}}[1m]))"
    )
    assert latency.latency_quantiles_sent(plan) == (
        "histogram_quantile(0.99, sum by (revision, le) "
        f"(rate(modeldeploy_request_duration_seconds_bucket{{{both}}}[30s])))"
    )
    other = q.RevisionSelector(model="wine", namespace="ml", revision="9f8e7d6c5b")
    with pytest.raises(ValueError, match="same ModelDeployment"):
        q.requests_sent(q.Plan("30s", SEL, other, all_models=False))


def test_the_sent_queries_cover_every_model_by_default() -> None:
    """The same string for every ModelDeployment with the same window: Prometheus evaluates it once."""
    plan = q.Plan("30s", SEL, q.RevisionSelector(model="iris", namespace="ml", revision="9f8e7d6c5b"))
    wine = q.Plan("30s", q.RevisionSelector("wine", "prod", "a1"), q.RevisionSelector("wine", "prod", "b2"))
    key = "namespace, model, revision"
    sent = {
        q.requests_sent: f'sum by ({key}) (increase(modeldeploy_requests_total{{route="local"}}[30s]))',
        error_rate.errors_sent: (
            f'sum by ({key}) (increase(modeldeploy_requests_total{{route="local",code=~"5.."}}[30s]))'
        ),
        latency.latency_buckets_sent: (
            f"sum by ({key}, le) "
            '(increase(modeldeploy_request_duration_seconds_bucket{route="local"}[30s]))'
        ),
        latency.latency_quantiles_sent: (
            f"histogram_quantile(0.99, sum by ({key}, le) "
            '(rate(modeldeploy_request_duration_seconds_bucket{route="local"}[30s])))'
        ),
        guard.guard_tripped_sent: f"max by ({key}) (max_over_time(modeldeploy_guard_tripped[30s]))",
        shadow.shadow_results_sent: (
            f"sum by ({key}, result) (increase(modeldeploy_shadow_requests_total[30s]))"
        ),
        drift.feature_buckets_sent: (
            f"sum by ({key}, feature, le) (increase(modeldeploy_input_feature_value_bucket[30s]))"
        ),
    }
    for build, expected in sent.items():
        assert build(plan) == build(wine) == expected
