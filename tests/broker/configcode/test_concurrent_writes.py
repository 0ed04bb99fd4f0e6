"""An apply (or rollback) and a single write of the same tenant at the same moment: both finish,
one after the other, never a deadlock. Every configuration write takes the tenant's revision
lock first (broker/services/_common.py `begin_write`), so an apply holding it never waits on a
row the single write holds while that write waits for the revision lock.

Real threads, each with its own PostgreSQL connection, in a tenant of the test's own (committed,
so that both connections see it), dropped at the end with its schema."""

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection, connections, transaction
from django_tenants.utils import tenant_context

from broker import services
from broker.configcode import revisions
from broker.models import Producer
from tenants.models import Tenant
from tests.helpers import onboard

pytestmark = pytest.mark.django_db


def _own(fn):
    def run():
        try:
            return fn()
        finally:
            connections.close_all()

    return run


def _in_own_connection(fn):
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(_own(fn)).result()


def test_an_apply_and_a_single_delete_of_the_same_row_both_finish(world):
    def make():
        tenant = onboard("raced", tier="basic")
        with tenant_context(tenant):
            producer, _ = services.producer_create(actor=world.admin_a, name="raced", kind="https")
        return tenant, producer.pk

    def drop():
        Tenant.objects.filter(slug="raced").delete()
        with connection.cursor() as cursor:
            cursor.execute("DROP SCHEMA IF EXISTS t_raced CASCADE")

    try:
        tenant, pk = _in_own_connection(make)
        _race(world, tenant, pk)
    finally:
        _in_own_connection(drop)


def _race(world, tenant, pk):
    in_scope, go = threading.Event(), threading.Event()
    outcomes = {}

    def apply_like():
        # What an apply does: the revision scope first, then the services' writes.
        try:
            with tenant_context(tenant), transaction.atomic():
                with revisions.scope(actor=world.admin_a, summary="raced apply"):
                    in_scope.set()
                    go.wait(5)
                    producer = Producer.objects.get(pk=pk)
                    services.producer_update(
                        actor=world.admin_a, producer=producer, description="applied"
                    )
            outcomes["apply"] = "ok"
        except Exception as exc:  # the outcome is what the test asserts
            outcomes["apply"] = f"{type(exc).__name__}: {exc}"

    def single_delete():
        in_scope.wait(5)
        try:
            with tenant_context(tenant):
                producer = Producer.objects.get(pk=pk)
                timer = threading.Timer(0.3, go.set)  # the apply goes on while we wait
                timer.start()
                services.producer_delete(actor=world.admin_a, producer=producer)
            outcomes["delete"] = "ok"
        except Exception as exc:
            outcomes["delete"] = f"{type(exc).__name__}: {exc}"

    with ThreadPoolExecutor(max_workers=2) as pool:
        for future in [pool.submit(_own(apply_like)), pool.submit(_own(single_delete))]:
            future.result(timeout=30)
    assert outcomes == {"apply": "ok", "delete": "ok"}, outcomes
