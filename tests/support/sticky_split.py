"""The sticky split's hash, as a test oracle: the contract the sidecar's split must match.

With `stickyHeader` set, a request whose header has value `key` goes to the canary when
`sticky_point(key) * 100 < weight`, where `sticky_point` is the unkeyed 56-bit BLAKE2b of the
key's UTF-8 bytes (digest size 7, personalisation `modeldeploy`), big-endian, divided by 2**56.
The Rust sidecar implements it in `sidecar/src/split.rs` (its unit tests pin two values of this
function); `tests/serving/test_traffic_split.py` checks that the running binary puts every key
where this oracle says, and end-to-end tests use it to pick client keys on either side of a weight.
Changing the function moves users between revisions in the middle of a rollout: never do it.
"""

from __future__ import annotations

import hashlib

_HASH_BYTES = 7  # 56 bits: exact as a float in [0, 1)
_HASH_SCALE = float(1 << (8 * _HASH_BYTES))


def sticky_point(key: str) -> float:
    """The point in [0, 1) the sidecar assigns to a sticky key."""
    digest = hashlib.blake2b(key.encode("utf-8"), digest_size=_HASH_BYTES, person=b"modeldeploy").digest()
    return int.from_bytes(digest, "big") / _HASH_SCALE


def on_canary(key: str, weight: float) -> bool:
    """Whether the sidecar sends a request with this sticky key to the canary at `weight` percent."""
    if weight <= 0:
        return False
    if weight >= 100:
        return True
    return sticky_point(key) * 100.0 < weight
