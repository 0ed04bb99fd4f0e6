"""An apply (or rollback) and a single write of the same tenant at the same moment: both finish,
one after the other, never a deadlock. Every configuration write takes the tenant's revision
lock first (broker/services/_common.py `begin_write`), so an apply holding it never waits on a
row the single write holds while that write waits for the revision lock.

Real threads, each with its own PostgreSQL connection, against the committed session world;
what they commit is removed at the end, from a connection of its own."""

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connections, transaction
from django_tenants.utils import tenant_context

from broker import services
from broker.configcode import revisions
from broker.models import Producer

pytestmark = pytest.mark.django_db


def _own(fn):
    def run():
        try:
            return fn()
        finally:
            connections.close_all()

    return run


def test_an_apply_and_a_single_delete_of_the_same_row_both_finish(world):
    with ThreadPoolExecutor(max_workers=1) as pool:

        def make():
            with tenant_context(world.a):
                producer, _ = services.producer_create(
                    actor=world.admin_a, name="raced", kind="https"
                )
                return producer.pk

        pk = pool.submit(_own(make)).result()

    in_scope, go = threading.Event(), threading.Event()
    outcomes = {}

    def apply_like():
        # What an apply does: the revision scope first, then the services' writes.
        try:
            with tenant_context(world.a), transaction.atomic():
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
            with tenant_context(world.a):
                producer = Producer.objects.get(pk=pk)
                timer = threading.Timer(0.3, go.set)  # the apply goes on while we wait
                timer.start()
                services.producer_delete(actor=world.admin_a, producer=producer)
            outcomes["delete"] = "ok"
        except Exception as exc:
            outcomes["delete"] = f"{type(exc).__name__}: {exc}"

    try:
        with ThreadPoolExecutor(max_workers=2) as pool:
            for future in [pool.submit(_own(apply_like)), pool.submit(_own(single_delete))]:
                future.result(timeout=30)
        assert outcomes == {"apply": "ok", "delete": "ok"}, outcomes
    finally:

        def cleanup():
            with tenant_context(world.a):
                for producer in Producer.objects.filter(name="raced"):
                    services.producer_delete(actor=world.admin_a, producer=producer)

        with ThreadPoolExecutor(max_workers=1) as pool:
            pool.submit(_own(cleanup)).result()
