from django.db import connection
from django_tenants.utils import get_public_schema_name
from rest_framework.throttling import SimpleRateThrottle


class TenantApiThrottle(SimpleRateThrottle):
    """Per-tenant API request budget: the tenant's `api_requests_per_minute` quota, shared by
    every caller of that tenant (a noisy integration cannot starve the others' tenants).

    Counters live in the Redis cache, under a key that names the tenant."""

    scope = "tenant_api"

    def get_rate(self):
        return None  # decided per request from the tenant's quotas

    def allow_request(self, request, view):
        if connection.schema_name == get_public_schema_name():
            return True
        tenant = request.tenant
        self.num_requests = tenant.effective_quotas()["api_requests_per_minute"]
        self.duration = 60
        self.key = f"throttle:tenant-api:{tenant.pk}"
        self.history = self.cache.get(self.key, [])
        self.now = self.timer()
        while self.history and self.history[-1] <= self.now - self.duration:
            self.history.pop()
        if len(self.history) >= self.num_requests:
            return self.throttle_failure()
        return self.throttle_success()

    def get_cache_key(self, request, view):
        return self.key
