"""Concurrent requests for the same thing: one wins, the others get a clear answer.

Real threads, each with its own PostgreSQL connection, against the committed session world;
what they commit is removed at the end, also from a connection of its own."""

from concurrent.futures import ThreadPoolExecutor
from threading import Barrier

import pytest
from django.db import connection, connections
from django_tenants.utils import tenant_context

from tests.helpers import HostClient, host_of, token_for

pytestmark = pytest.mark.django_db


def _in_own_connection(fn):
    def run():
        try:
            return fn()
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(run).result()


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


def test_concurrent_onboarding_of_one_slug_is_one_202_and_409_conflicts(world):
    from tenants.models import Tenant

    token = token_for(world.operator)
    body = {"name": "Race", "slug": "race", "tier": "basic", "admin_email": "boss@race.test"}

    def cleanup():
        Tenant.objects.filter(slug="race").delete()
        with connection.cursor() as cursor:
            cursor.execute("DROP SCHEMA IF EXISTS t_race CASCADE")

    try:
        responses = _burst(
            6,
            lambda i: HostClient(host_of(), token).post("/api/v1/tenants/", body, format="json"),
        )
        statuses = sorted(r.status_code for r in responses)
        assert statuses == [202] + [409] * 5, [
            r.content[:300] for r in responses if r.status_code != 409
        ]
        for r in responses:
            if r.status_code == 409:
                assert r.json()["error"]["code"] == "conflict"
        assert _in_own_connection(lambda: Tenant.objects.filter(slug="race").count()) == 1
    finally:
        _in_own_connection(cleanup)


def test_parallel_invitations_of_one_email_leave_one_pending(world):
    from broker.models import AuditEvent
    from tenants.models import Invitation

    token = token_for(world.admin_a, world.a)
    body = {"email": "twice@a.test", "role": "viewer"}

    def pending():
        return Invitation.objects.filter(
            tenant=world.a, email="twice@a.test", accepted_at=None, revoked_at=None
        ).count()

    def cleanup():
        ids = [
            str(i)
            for i in Invitation.objects.filter(email="twice@a.test").values_list("pk", flat=True)
        ]
        with tenant_context(world.a):
            AuditEvent.objects.filter(object_type="invitation", object_id__in=ids).delete()
        Invitation.objects.filter(email="twice@a.test").delete()

    try:
        responses = _burst(
            6,
            lambda i: HostClient(host_of(world.a), token).post(
                "/api/v1/members/", body, format="json"
            ),
        )
        statuses = [r.status_code for r in responses]
        assert set(statuses) <= {201, 409} and 201 in statuses, [r.content[:200] for r in responses]
        for r in responses:
            if r.status_code == 409:
                assert r.json()["error"]["code"] == "conflict"
        assert _in_own_connection(pending) == 1
    finally:
        _in_own_connection(cleanup)
