"""Fuzzed routing tables: the contract's parser answers a RoutingTable or a pydantic
ValidationError, nothing else, and what it accepts survives its own wire form. (The sidecar's side,
keeping the last good table on bad content, is tested in `sidecar/src/routing_source.rs` and
`sidecar/tests/fuzz_inputs.rs`.)

Inputs: a complete valid table (every section, data path included) mutated field by field
(deleted, replaced by any JSON value, odd numbers and strings), random bytes, truncated and
deeply nested JSON.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from modeldeploy.contract.routing import RoutingTable
from tests.support.json_paths import paths, slot

GOOD: dict[str, Any] = {
    "model": "iris",
    "namespace": "ml",
    "stable": {"revision": "aaaa", "url": "http://iris-aaaa.ml.svc:8080"},
    "canary": {"revision": "bbbb", "url": "http://iris-bbbb.ml.svc:8080", "weight": 10},
    "shadow": {"revision": "cccc", "url": "http://iris-cccc.ml.svc:8080", "percent": 50},
    "stickyHeader": "x-modeldeploy-key",
    "comparison": {"mode": "numeric", "tolerance": 0.001},
    "guard": {"window": 20, "maxErrorRatio": 0.5, "minRequests": 5},
    "generation": 3,
    "dataPath": {
        "contract": {"schema": {"type": "object"}, "policy": "reject"},
        "predictionLog": {"sampleRate": 0.1, "sink": "file", "path": "/tmp/p.jsonl", "redact": ["ssn"]},
        "drift": {"features": [{"name": "f0", "path": "/features/*/0", "buckets": [1, 2, 3]}]},
    },
}


PATHS = paths(GOOD)

odd_numbers = st.sampled_from([0, -1, -0.0, 1e308, -1e308, 2**63, -(2**63), 100.0000001, 1e-320, 0.5, 101])
odd_strings = st.sampled_from(
    ["", " ", "\x00", "ftp://x", "http://", "a" * 10_000, "é", "x:y", "\r\n", "NaN"]
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=10,
)
replacements = odd_numbers | odd_strings | json_values


@st.composite
def mutated_tables(draw: st.DrawFn) -> bytes:
    doc = copy.deepcopy(GOOD)
    for _ in range(draw(st.integers(1, 4))):
        found = slot(doc, draw(st.sampled_from(PATHS)))
        if found is None:
            continue  # an earlier change removed the field's parent
        parent, key = found
        if isinstance(parent, dict) and draw(st.booleans()):
            del parent[key]
        else:
            parent[key] = draw(replacements)
    return json.dumps(doc).encode()


good_text = json.dumps(GOOD).encode()
HUGE_GENERATION = (
    json.dumps({**GOOD, "generation": 0}).replace('"generation": 0', '"generation": 1e999').encode()
)
contents = st.one_of(
    mutated_tables(),
    st.binary(max_size=300),
    st.integers(0, len(good_text)).map(lambda cut: good_text[:cut]),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.integers(1, 5000).map(lambda depth: b"[" * depth + b"]" * depth),
    st.just(HUGE_GENERATION),
)


def parse(content: bytes) -> RoutingTable | None:
    """RoutingTable.from_json, with ValidationError as None; any other exception fails the test."""
    try:
        return RoutingTable.from_json(content)
    except ValidationError as exc:
        assert exc.errors(), "a ValidationError names what is wrong"
        return None


def test_the_unmutated_table_is_valid() -> None:
    table = parse(good_text)
    assert table is not None and table.canary is not None and table.data_path.drift is not None


@settings(max_examples=400, deadline=None)
@given(content=contents)
def test_parser_answers_a_table_or_a_validation_error(content: bytes) -> None:
    table = parse(content)
    if table is not None:
        # What the parser accepts, the operator can write back unchanged (to_json is the wire form).
        assert RoutingTable.from_json(table.to_json()) == table


def test_a_url_without_a_host_is_refused() -> None:
    """Found by the round trip above: "http://" used to pass and be written back as "http:"."""
    for url in ("http://", "https:///", "http://:8080"):
        assert parse(json.dumps({**GOOD, "stable": {"revision": "aaaa", "url": url}}).encode()) is None
