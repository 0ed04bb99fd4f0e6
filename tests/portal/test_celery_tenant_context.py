"""A task enqueued in a tenant's context runs in that tenant's schema, on a real worker
(a Celery worker thread consuming from the real Redis broker)."""

import time
import uuid

import pytest
from celery.contrib.testing.worker import start_worker
from django.db import connection
from django_tenants.utils import schema_context

from broker.audit import audit_record
from broker.models import AuditEvent
from portal.celery import app
from tests.helpers import onboard

QUEUE = f"test-schema-probe-{uuid.uuid4().hex[:8]}"


@app.task(name="tests.record_schema_probe")
def record_schema_probe(marker: str) -> None:
    audit_record(actor=None, action="probe", object_type="probe", object_id=marker)


def wait_for(predicate, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_task_enqueued_in_tenant_a_runs_in_a_schema_and_not_in_b():
    a, b = onboard("celery-a"), onboard("celery-b")
    app.conf.task_always_eager = False
    try:
        with start_worker(
            app, pool="solo", perform_ping_check=False, queues=[QUEUE], shutdown_timeout=10
        ):
            connection.set_tenant(a)
            record_schema_probe.apply_async(args=["from-a"], queue=QUEUE)
            connection.set_tenant(b)
            record_schema_probe.apply_async(args=["from-b"], queue=QUEUE)
            connection.set_schema_to_public()

            def landed():
                with schema_context(b.schema_name):
                    return AuditEvent.objects.filter(object_id="from-b").exists()

            assert wait_for(landed)
    finally:
        app.conf.task_always_eager = True
    with schema_context(a.schema_name):
        assert list(AuditEvent.objects.values_list("object_id", flat=True)) == ["from-a"]
    with schema_context(b.schema_name):
        assert list(AuditEvent.objects.values_list("object_id", flat=True)) == ["from-b"]
