"""Shuffle-sharding of pool tenants onto the shared delivery queues.

Rendezvous (highest-random-weight) hashing: every queue gets a score from
sha256(tenant id, queue index) and the tenant takes the k best. It is deterministic, the k
queues are distinct, load spreads evenly, and growing N moves only the tenants whose new
queue wins, so two tenants rarely share all k queues: a noisy one cannot fill another's.
"""

import hashlib


def shard_for(tenant_id, *, n: int, k: int) -> list[int]:
    if not 0 < k <= n:
        raise ValueError(f"shard size k={k} must be between 1 and n={n}")
    key = str(tenant_id).encode()

    def score(index: int) -> bytes:
        return hashlib.sha256(key + b"#" + str(index).encode()).digest()

    return sorted(sorted(range(n), key=score, reverse=True)[:k])
