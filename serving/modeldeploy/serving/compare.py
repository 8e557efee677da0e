"""Comparison of a shadow response with the primary response, as a shadow metric label.

What "equal" means is the contract's (`modeldeploy.contract.comparison`); this module names the
outcome as the `result` label of `modeldeploy_shadow_requests_total`.
"""

from __future__ import annotations

from enum import StrEnum

from modeldeploy.contract.comparison import Mode, responses_match


class Verdict(StrEnum):
    """The label values of `modeldeploy_shadow_requests_total{result}`."""

    MATCH = "match"
    MISMATCH = "mismatch"
    ERROR = "error"
    DROPPED = "dropped"


def compare_responses(
    primary: tuple[int, bytes], shadow: tuple[int, bytes], mode: Mode, tolerance: float
) -> Verdict:
    """MATCH or MISMATCH for two (status, body) pairs (a failed shadow is the caller's ERROR)."""
    return Verdict.MATCH if responses_match(primary, shadow, mode, tolerance) else Verdict.MISMATCH
