"""Traffic split decisions: canary by weight (random or sticky on a key), shadow copies by percent.

A request goes to the canary when `u * 100 < weight` for a number `u` uniform in [0, 1): a fresh
random number (exact in expectation), or, when the sticky header is present, a hash of its value
(the same key always gets the same `u`, so it stays on one revision while the weight is unchanged,
and a key on the canary stays there when the weight grows).
"""

from __future__ import annotations

import hashlib
import random

_HASH_BYTES = 7  # 56 bits: exact as a float in [0, 1)
_HASH_SCALE = float(1 << (8 * _HASH_BYTES))


def sticky_point(key: str) -> float:
    """A stable point in [0, 1) for `key`, uniform over keys."""
    digest = hashlib.blake2b(key.encode("utf-8"), digest_size=_HASH_BYTES, person=b"modeldeploy").digest()
    return int.from_bytes(digest, "big") / _HASH_SCALE


def below_percent(point: float, percent: float) -> bool:
    """True when `point` in [0, 1) falls in the first `percent` percent of the interval."""
    return point * 100.0 < percent


def choose_canary(weight: float, sticky_key: str | None, rng: random.Random) -> bool:
    """Whether this request goes to the canary, given the canary weight in percent."""
    if weight <= 0:
        return False
    if weight >= 100:
        return True
    point = sticky_point(sticky_key) if sticky_key is not None else rng.random()
    return below_percent(point, weight)


def choose_shadow(percent: float, rng: random.Random) -> bool:
    """Whether this request is copied to the shadow, given the shadow percent."""
    if percent <= 0:
        return False
    if percent >= 100:
        return True
    return below_percent(rng.random(), percent)
