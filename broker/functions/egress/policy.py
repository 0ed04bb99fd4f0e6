"""A consumer's retry policy (the CONSUMER item's `retry` map): how many attempts, how long
to wait before the next one."""

import random

# SQS's longest DelaySeconds: a longer wait is taken in steps (see retry.requeue).
MAX_SQS_DELAY = 900
DEFAULT_POLICY = {
    "strategy": "exponential",
    "base_seconds": 5,
    "cap_seconds": 3600,
    "jitter": True,
    "max_attempts": 5,
}


def max_attempts(policy: dict | None, *, tenant_cap: int | None = None) -> int:
    """The policy's attempts (a schedule of n delays makes n + 1), never above the tenant's
    `max_delivery_attempts` quota when the TENANT item gives one."""
    policy = policy or DEFAULT_POLICY
    if policy.get("strategy") == "schedule":
        attempts = int(policy.get("max_attempts") or len(policy.get("schedule") or []) + 1)
    else:
        attempts = int(policy.get("max_attempts") or DEFAULT_POLICY["max_attempts"])
    if tenant_cap:
        attempts = min(attempts, int(tenant_cap))
    return max(1, attempts)


def delay_after(policy: dict | None, failed_attempt: int, *, rng=random) -> int:
    """Seconds to wait after attempt `failed_attempt` (1-based) failed, before the next one.

    exponential: base × 2^(n-1), capped; with jitter, a uniform draw in [half, all] of it, so
    retries of many deliveries spread out but never come sooner than half the policy's wait.
    schedule: the n-th delay of the list (the last one again if the list is shorter)."""
    policy = policy or DEFAULT_POLICY
    if policy.get("strategy") == "schedule":
        schedule = [int(s) for s in policy.get("schedule") or [DEFAULT_POLICY["base_seconds"]]]
        return max(0, schedule[min(failed_attempt, len(schedule)) - 1])
    base = int(policy.get("base_seconds", DEFAULT_POLICY["base_seconds"]))
    cap = int(policy.get("cap_seconds", DEFAULT_POLICY["cap_seconds"]))
    delay = min(cap, base * 2 ** max(0, failed_attempt - 1))
    if policy.get("jitter", True):
        delay = rng.uniform(delay / 2, delay)
    return max(0, round(delay))
