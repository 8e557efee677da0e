"""Shadow vs primary response comparison as the shadow metric's label (modeldeploy.serving.compare)."""

from __future__ import annotations

import json

from modeldeploy.serving.compare import Verdict, compare_responses


def test_status_codes_must_agree() -> None:
    assert compare_responses((200, b"[1]"), (400, b"[1]"), "exact", 0) is Verdict.MISMATCH


def test_json_bodies_are_compared_structurally() -> None:
    primary = json.dumps([[0.98, 0.02]]).encode()
    shadow = json.dumps([[0.9800000001, 0.0199999999]], indent=2).encode()
    assert compare_responses((200, primary), (200, shadow), "numeric", 1e-6) is Verdict.MATCH
    assert compare_responses((200, primary), (200, shadow), "exact", 1e-6) is Verdict.MISMATCH


def test_non_json_bodies_are_compared_as_bytes() -> None:
    assert compare_responses((200, b"ok"), (200, b"ok"), "numeric", 1) is Verdict.MATCH
    assert compare_responses((200, b"ok"), (200, b"OK"), "numeric", 1) is Verdict.MISMATCH
    assert compare_responses((200, b"[1]"), (200, b"\xff"), "numeric", 1) is Verdict.MISMATCH
