"""Dead letters under faults, with real worker processes and the moto server.

These tests commit (the worker must see the data), so they use their own tenants."""

import pytest
from django_tenants.utils import tenant_context

from broker import services as broker_services
from broker.deadletters import ingest, runner, services
from broker.deadletters.models import DeadLetter, ReplayJob
from broker.functions.shared import messages
from core.errors import ApplicationError
from portal.celery import app
from tenants.models import Tenant
from tests.broker.sync._processes import Proxy, Worker, wait_for
from tests.helpers import PUBLIC_URL, make_user, onboard
from tests.helpers.deadletters import dead_letter, dlq_url, purge, receive_all, send_to_dlq

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


@pytest.fixture
def real_tasks(monkeypatch):
    monkeypatch.setenv("REPLAY_RESUME_INTERVAL_SECONDS", "1")
    monkeypatch.setenv("DLQ_INGEST_INTERVAL_SECONDS", "3600")
    app.control.purge()
    app.conf.task_always_eager = False
    yield
    app.conf.task_always_eager = True
    app.control.purge()


def _tenant(slug, rate):
    eager = app.conf.task_always_eager
    app.conf.task_always_eager = True  # provisioning runs here
    try:
        tenant = onboard(slug, tier="dedicated")
    finally:
        app.conf.task_always_eager = eager
    Tenant.objects.filter(pk=tenant.pk).update(quota_overrides={"replay_rate_per_second": rate})
    return Tenant.objects.select_related("tier").get(pk=tenant.pk)


def _letters(tenant, n):
    actor = make_user(f"admin@{tenant.slug}.test")
    with tenant_context(tenant):
        consumer, _ = broker_services.consumer_create(
            actor=actor, name="flaky", kind="https", url=PUBLIC_URL
        )
    purge(dlq_url())
    bodies = [dead_letter(tenant, consumer.pk) for _ in range(n)]
    send_to_dlq(*bodies)
    ingest.run(max_batches=1000, wait_seconds=0)
    return actor, bodies


def _job(tenant):
    with tenant_context(tenant):
        return ReplayJob.objects.get()


def _log(path):
    return path.read_text()[-3000:] if path.exists() else "(no log)"


def test_a_replay_worker_killed_mid_job_resumes_and_each_letter_reaches_the_queue_once(
    live_aws, real_tasks, tmp_path
):
    tenant = _tenant("dl-kill", rate=40)
    actor, bodies = _letters(tenant, 200)
    [queue] = tenant.delivery_queues
    purge(queue)
    with tenant_context(tenant):
        services.replay_start(tenant=tenant, actor=actor, filter={})

    worker = Worker(aws_endpoint=live_aws, log=tmp_path / "worker-1.log")
    try:
        started = wait_for(lambda: 30 <= _job(tenant).sent < 150, timeout=60, interval=0.05)
        assert started, _log(tmp_path / "worker-1.log")
    finally:
        worker.kill()
    assert _job(tenant).status == "running"

    worker = Worker(aws_endpoint=live_aws, log=tmp_path / "worker-2.log")
    try:
        done = wait_for(lambda: _job(tenant).status == "completed", timeout=90)
        assert done, _log(tmp_path / "worker-2.log")
    finally:
        worker.stop()

    job = _job(tenant)
    assert (job.sent, job.failed, job.total) == (200, 0, 200)
    received = [messages.parse(m["Body"]) for m in receive_all(queue)]
    keys = {(m.delivery.delivery_id, m.delivery.replay, m.delivery.attempt) for m in received}
    # Every letter once per idempotency key; a batch resent after the kill carries the same
    # keys (the egress absorbs it), so at most one batch of 10 is a duplicate.
    assert keys == {(b.delivery.delivery_id, 1, 1) for b in bodies}
    assert len(received) - len(keys) <= 10
    with tenant_context(tenant):
        assert set(DeadLetter.objects.values_list("status", "replay_count")) == {("replayed", 1)}


def test_a_replay_waits_while_aws_is_unreachable_and_finishes_when_it_returns(
    live_aws, real_tasks, tmp_path
):
    tenant = _tenant("dl-outage", rate=500)
    actor, bodies = _letters(tenant, 30)
    [queue] = tenant.delivery_queues
    purge(queue)
    proxy = Proxy(live_aws)
    proxy.up = False
    worker = Worker(aws_endpoint=proxy.url, log=tmp_path / "worker.log")
    try:
        with tenant_context(tenant):
            services.replay_start(tenant=tenant, actor=actor, filter={})
        assert wait_for(lambda: _job(tenant).status == "running", timeout=60), _log(
            tmp_path / "worker.log"
        )
        assert _job(tenant).sent == 0
        proxy.up = True
        done = wait_for(lambda: _job(tenant).status == "completed", timeout=90)
        assert done, _log(tmp_path / "worker.log")
    finally:
        worker.stop()
        proxy.close()
    received = [messages.parse(m["Body"]) for m in receive_all(queue)]
    assert {m.delivery.delivery_id for m in received} == {b.delivery.delivery_id for b in bodies}


def test_two_overlapping_replays_of_one_consumer_send_each_letter_once(live_aws, tmp_path):
    tenant = _tenant("dl-overlap", rate=500)
    actor, bodies = _letters(tenant, 20)
    [queue] = tenant.delivery_queues
    purge(queue)
    ids = []
    with tenant_context(tenant):
        ids = [str(i) for i in DeadLetter.objects.values_list("pk", flat=True)]
        app.conf.task_always_eager = False
        try:
            first = services.replay_start(tenant=tenant, actor=actor, ids=ids[:15])
            with pytest.raises(ApplicationError) as exc:
                services.replay_start(tenant=tenant, actor=actor, ids=ids[10:])
        finally:
            app.conf.task_always_eager = True
        assert exc.value.status_code == 409
        [job] = first.jobs
        assert runner.replay_job_run(tenant=tenant, job_id=job.pk) == "completed"
        second = services.replay_start(tenant=tenant, actor=actor, ids=ids[15:])
        assert second.jobs[0].total == 5
    app.control.purge()
    received = [messages.parse(m["Body"]) for m in receive_all(queue)]
    assert len(received) == 20
    assert len({m.delivery.delivery_id for m in received}) == 20
