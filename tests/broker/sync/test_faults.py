"""Sync under faults, with real worker processes and the moto server.

These tests commit (other processes must see the data), so they use their own tenants."""

import json
import random
import subprocess
import sys

import pytest
from django_tenants.utils import tenant_context

from broker import services
from broker.sync import contract, dynamo, reconcile
from broker.sync.models import OutboxEntry
from portal.celery import app
from tests.broker.sync._processes import ROOT, Proxy, Worker, wait_for
from tests.helpers import PUBLIC_URL, onboard

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

QUEUE = "arn:aws:sqs:eu-west-1:123456789012:sink"


@pytest.fixture(autouse=True)
def clean_table():
    """Overrides the unit tests' table reset: these tests run against the moto server."""
    yield


@pytest.fixture
def real_tasks():
    app.conf.task_always_eager = False
    yield
    app.conf.task_always_eager = True


@pytest.fixture
def purge_broker():
    app.control.purge()
    yield
    app.control.purge()


def _changes(tenant, actor, n: int) -> None:
    """n committed changes of every kind (each one its own transaction, its own kick)."""
    with tenant_context(tenant):
        consumers = []
        for i in range(n):
            step = i % 5
            if step == 0:
                services.producer_create(actor=actor, name=f"p{i}", kind="https")
            elif step == 1:
                consumer, _ = services.consumer_create(
                    actor=actor, name=f"c{i}", kind="https", url=PUBLIC_URL
                )
                consumers.append(consumer)
            elif step == 2:
                services.subscription_create(
                    actor=actor, consumer=consumers[-1], event_type=f"t{i}.*"
                )
            elif step == 3:
                services.consumer_update(actor=actor, consumer=consumers[-1], enabled=False)
            else:
                services.event_type_create(actor=actor, name=f"type.n{i}")


def _outbox_empty() -> bool:
    return not OutboxEntry.objects.exists()


def _tenant(slug):
    from tenants.models import Tenant

    eager = app.conf.task_always_eager
    app.conf.task_always_eager = True  # provisioning runs here
    try:
        tenant = onboard(slug, tier="premium")
    finally:
        app.conf.task_always_eager = eager
    return Tenant.objects.select_related("tier").get(pk=tenant.pk)


def test_changes_saved_while_aws_is_unreachable_arrive_after_it_returns(
    live_aws, real_tasks, purge_broker, tmp_path
):
    from tests.helpers import make_user

    tenant = _tenant("sync-outage")
    actor = make_user("admin@outage.test")
    proxy = Proxy(live_aws)
    proxy.up = False
    worker = Worker(aws_endpoint=proxy.url, log=tmp_path / "worker.log")
    try:
        _changes(tenant, actor, 100)
        # The worker tried and failed: the changes wait in the outbox, with errors.
        assert wait_for(lambda: OutboxEntry.objects.exclude(last_error="").exists(), timeout=60), (
            tmp_path / "worker.log"
        ).read_text()[-3000:]
        assert OutboxEntry.objects.exists()

        proxy.up = True
        assert wait_for(_outbox_empty, timeout=90), (tmp_path / "worker.log").read_text()[-3000:]
    finally:
        worker.stop()
        proxy.close()
    counts = reconcile.sync_tenant(tenant)
    assert counts["drift"] == 0, dict(counts)
    assert counts["objects"] > 100


def test_a_worker_killed_while_draining_loses_nothing(live_aws, real_tasks, purge_broker, tmp_path):
    from tests.helpers import make_user

    tenant = _tenant("sync-kill")
    actor = make_user("admin@kill.test")
    # No worker is running yet: every kick waits in Redis, every change in the outbox.
    _changes(tenant, actor, 300)
    total = OutboxEntry.objects.count()
    assert total >= 300

    worker = Worker(aws_endpoint=live_aws, log=tmp_path / "worker-1.log")
    try:
        started = wait_for(
            lambda: 0 < OutboxEntry.objects.count() < total, timeout=60, interval=0.01
        )
        assert started, (tmp_path / "worker-1.log").read_text()[-3000:]
    finally:
        worker.kill()
    left = OutboxEntry.objects.count()
    assert left > 0, "the worker finished before it could be killed; nothing was tested"

    worker = Worker(aws_endpoint=live_aws, log=tmp_path / "worker-2.log")
    try:
        assert wait_for(_outbox_empty, timeout=90), (tmp_path / "worker-2.log").read_text()[-3000:]
    finally:
        worker.stop()
    counts = reconcile.sync_tenant(tenant)
    assert counts["drift"] == 0, dict(counts)


WRITER = """
import json, os, sys
import django
django.setup()
from broker.sync import dynamo
items = json.load(open(sys.argv[1]))
for item in items:
    dynamo.put_versioned(item)
"""


def test_a_thousand_versions_shuffled_and_duplicated_from_two_processes_end_at_the_last(
    live_aws, tmp_path
):
    from tests.helpers import make_user

    tenant = _tenant("sync-order")
    actor = make_user("admin@order.test")
    with tenant_context(tenant):
        producer, _ = services.producer_create(actor=actor, name="p", kind="https")
        versions = []
        for v in range(1, 1001):
            producer.version = v
            producer.name = f"name-v{v}"
            versions.append(contract.producer_item(producer, tenant=tenant))
    rng = random.Random(2026)
    stream = versions + rng.sample(versions, 200)  # 20% duplicates
    rng.shuffle(stream)
    halves = [stream[0::2], stream[1::2]]
    files = []
    for i, half in enumerate(halves):
        path = tmp_path / f"writer-{i}.json"
        path.write_text(json.dumps(half))
        files.append(path)
    env = {
        "PATH": "/usr/bin:/bin",
        "DJANGO_SETTINGS_MODULE": "portal.settings",
        "DJANGO_DEBUG": "1",
        "AWS_ENDPOINT_URL": live_aws,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "eu-west-1",
        "DATABASE_URL": "postgres://unused@127.0.0.1:1/unused",
    }
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(f)], cwd=ROOT, env=env) for f in files
    ]
    assert [p.wait(timeout=300) for p in procs] == [0, 0]

    stored = dynamo.get_item(f"TENANT#{tenant.pk}", f"PRODUCER#{producer.pk}")
    assert stored["version"] == 1000 and stored["name"] == "name-v1000"
