"""Per-tenant API request budget, with a share per caller.

A tenant's budget is its `api_requests_per_minute` quota, shared by every caller of that
tenant (a noisy integration cannot starve other tenants). Within it, one caller (a user, or
an address when anonymous) may use at most `API_THROTTLE_CALLER_SHARE` of it, so one viewer
looping on a list cannot exhaust the budget of the whole tenant.

Fixed one-minute windows counted in Redis by one Lua script: it reads both counters and
increments both only when neither is spent, atomically (concurrent requests can neither
overshoot the budget nor be counted when refused). Keys carry the tenant id and the window
and expire with it.
"""

import math
import time

import redis
from django.conf import settings
from django.db import connection
from django_tenants.utils import get_public_schema_name
from rest_framework.throttling import BaseThrottle

WINDOW_SECONDS = 60
KEY_PREFIX = "throttle:tenant-api"

# KEYS: tenant counter, caller counter. ARGV: tenant limit, caller limit, ttl.
# Returns 1 when the request is let through, 0 when a budget is spent.
_TAKE = """
local tenant = tonumber(redis.call('GET', KEYS[1]) or '0')
local caller = tonumber(redis.call('GET', KEYS[2]) or '0')
if tenant >= tonumber(ARGV[1]) or caller >= tonumber(ARGV[2]) then
  return 0
end
redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('INCR', KEYS[2])
redis.call('EXPIRE', KEYS[2], ARGV[3])
return 1
"""

_client = None
_script = None


def _redis():
    global _client, _script
    if _client is None:
        _client = redis.Redis.from_url(settings.REDIS_URL)
        _script = _client.register_script(_TAKE)
    return _client, _script


def caller_budget(tenant_budget: int) -> int:
    share = settings.API_THROTTLE_CALLER_SHARE
    return max(1, min(tenant_budget, math.ceil(tenant_budget * share)))


def take(*, tenant_id, caller: str, tenant_budget: int, now: float | None = None) -> bool:
    """Counts one request of `caller` against the tenant's budget; False when spent."""
    window = int((time.time() if now is None else now) // WINDOW_SECONDS)
    _, script = _redis()
    keys = [
        f"{KEY_PREFIX}:{tenant_id}:{window}",
        f"{KEY_PREFIX}:{tenant_id}:{window}:caller:{caller}",
    ]
    allowed = script(
        keys=keys, args=[tenant_budget, caller_budget(tenant_budget), WINDOW_SECONDS * 2]
    )
    return bool(allowed)


def reset(tenant_id) -> None:
    """Forgets a tenant's counters (tests; an operator raising a spent budget)."""
    client, _ = _redis()
    keys = list(client.scan_iter(match=f"{KEY_PREFIX}:{tenant_id}:*", count=500))
    if keys:
        client.delete(*keys)


def _caller_of(request) -> str:
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        return f"user:{user.pk}"
    return f"addr:{request.META.get('REMOTE_ADDR', '')}"


class TenantApiThrottle(BaseThrottle):
    """DRF throttle over `take()`: 429 with Retry-After until the window turns."""

    def allow_request(self, request, view):
        if connection.schema_name == get_public_schema_name():
            return True
        tenant = request.tenant
        budget = tenant.effective_quotas()["api_requests_per_minute"]
        return take(tenant_id=tenant.pk, caller=_caller_of(request), tenant_budget=budget)

    def wait(self):
        return WINDOW_SECONDS - (time.time() % WINDOW_SECONDS)
