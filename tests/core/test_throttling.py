"""The per-tenant API budget is counted atomically in Redis, with a share per caller."""

import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from threading import Barrier

import pytest
from django.db import connections

from core import throttling

pytestmark = pytest.mark.django_db


def _clear_of_the_window_edge():
    """Fixed one-minute windows: start a burst well inside one, so it is counted in one."""
    if time.time() % throttling.WINDOW_SECONDS > throttling.WINDOW_SECONDS - 3:
        time.sleep(throttling.WINDOW_SECONDS - time.time() % throttling.WINDOW_SECONDS + 0.1)


def _burst(n, fn):
    barrier = Barrier(n)

    def one(i):
        barrier.wait()
        try:
            return fn(i)
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(one, range(n)))


def test_concurrent_requests_never_get_past_the_tenant_budget():
    tenant_id = uuid.uuid4()
    _clear_of_the_window_edge()
    try:
        results = _burst(
            20,
            lambda i: throttling.take(tenant_id=tenant_id, caller=f"user:{i}", tenant_budget=10),
        )
        assert results.count(True) == 10
    finally:
        throttling.reset(tenant_id)


def test_one_caller_cannot_spend_the_whole_tenant_budget():
    tenant_id = uuid.uuid4()
    _clear_of_the_window_edge()
    try:
        results = _burst(
            20, lambda i: throttling.take(tenant_id=tenant_id, caller="user:1", tenant_budget=10)
        )
        assert results.count(True) == throttling.caller_budget(10) == 5
        # the refused requests were not counted against the others
        others = [
            throttling.take(tenant_id=tenant_id, caller=f"user:{i}", tenant_budget=10)
            for i in range(2, 10)
        ]
        assert others.count(True) == 5
    finally:
        throttling.reset(tenant_id)


def test_the_budget_comes_back_in_the_next_window():
    tenant_id = uuid.uuid4()
    try:
        now = 1_000_000 * throttling.WINDOW_SECONDS + 5
        assert throttling.take(tenant_id=tenant_id, caller="u", tenant_budget=1, now=now)
        assert not throttling.take(tenant_id=tenant_id, caller="u", tenant_budget=1, now=now + 1)
        assert throttling.take(
            tenant_id=tenant_id, caller="u", tenant_budget=1, now=now + throttling.WINDOW_SECONDS
        )
    finally:
        throttling.reset(tenant_id)


def test_concurrent_http_requests_of_one_viewer_leave_the_others_their_share(world):
    """Real threads, each with its own database connection: the budget change is committed
    (from a connection of its own) and undone at the end."""
    from tenants.models import Tenant
    from tests.helpers import HostClient, host_of, token_for

    def set_overrides(value):
        def run():
            try:
                Tenant.objects.filter(pk=world.a.pk).update(quota_overrides=value)
            finally:
                connections.close_all()

        with ThreadPoolExecutor(max_workers=1) as pool:
            pool.submit(run).result()

    saved = Tenant.objects.get(pk=world.a.pk).quota_overrides
    set_overrides({**saved, "api_requests_per_minute": 10})
    try:
        viewer_token = token_for(world.viewer_a, world.a)
        admin = HostClient(host_of(world.a), token_for(world.admin_a, world.a))
        throttling.reset(world.a.pk)
        _clear_of_the_window_edge()
        statuses = _burst(
            12, lambda i: HostClient(host_of(world.a), viewer_token).get("/api/v1/me/").status_code
        )
        assert sorted(statuses) == [200] * 5 + [429] * 7
        assert admin.get("/api/v1/me/").status_code == 200
    finally:
        set_overrides(saved)
        throttling.reset(world.a.pk)
