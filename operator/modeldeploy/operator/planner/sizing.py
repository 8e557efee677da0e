"""How many pods each revision runs, so a small canary does not double the bill.

- canary: ceil(replicas x weight / 100) pods, at least 1;
- shadow: sized to its share of traffic, ceil(replicas x percent / 100) pods, at least 1;
- stable: the full ``replicas`` until a promotion has completed.

When a canary also gets shadow copies (it never does in the built-in steps, but the routing
table allows it) the larger share decides.
"""

from __future__ import annotations

import math


def share_replicas(replicas: int, percent: float) -> int:
    """Pods for a revision that receives ``percent`` (0..100) of the traffic of ``replicas`` pods."""
    if replicas < 0:
        raise ValueError(f"replicas must be >= 0, got {replicas}")
    if not 0 <= percent <= 100:
        raise ValueError(f"percent must be within 0..100, got {percent}")
    if replicas == 0:
        return 0
    # Round away float noise first: 3 x 10 / 100 is 0.30000000000000004, which must stay 1, and
    # 20 x 5 / 100 must be exactly 1, not 2.
    exact = round(replicas * percent / 100, 9)
    return max(1, math.ceil(exact))


def canary_replicas(replicas: int, weight: float) -> int:
    """Pods of a canary receiving ``weight`` percent of live traffic (at least 1)."""
    return share_replicas(replicas, weight)


def shadow_replicas(replicas: int, percent: float) -> int:
    """Pods of a shadow receiving a copy of ``percent`` of live requests (at least 1)."""
    return share_replicas(replicas, percent)
