"""Replay and discard through the services and the runner, on in-process moto."""

import json

import pytest
from botocore.exceptions import EndpointConnectionError
from django.test import override_settings
from django_tenants.utils import tenant_context

from broker import services as broker_services
from broker.deadletters import runner, services
from broker.deadletters.models import DeadLetter, ReplayJob
from broker.dlq.models import TenantDlqState
from broker.functions.shared import messages
from broker.models import AuditEvent
from core import aws
from core.errors import ApplicationError
from tests.helpers import PUBLIC_URL
from tests.helpers.deadletters import dead_letter, ingest_all, purge, send_to_dlq
from tests.helpers.deadletters import receive_all as _receive_all

pytestmark = pytest.mark.django_db


class Queues:
    """Tenant a's delivery queues (a pool tenant: its shuffle-shard), read as one."""

    def __init__(self, urls):
        self.urls = urls


@pytest.fixture
def queue(world):
    queues = Queues(list(world.a.delivery_queues))
    for url in queues.urls:
        purge(url)
    yield queues
    for url in queues.urls:
        purge(url)


def receive_all(queues):
    return [m for url in queues.urls for m in _receive_all(url)]


def _fill(world, consumer, n, **kwargs):
    bodies = [dead_letter(world.a, consumer.pk, **kwargs) for _ in range(n)]
    send_to_dlq(*bodies)
    ingest_all()
    return bodies


def _run(world, job):
    return runner.replay_job_run(tenant=world.a, job_id=job.pk, sleep=lambda s: None)


def _start(world, **selection):
    return services.replay_start(tenant=world.a, actor=world.admin_a, **selection)


def test_a_replay_sends_each_letter_once_with_its_delivery_id_and_the_next_replay_number(
    world, dlq, consumer_a, queue, django_capture_on_commit_callbacks
):
    bodies = _fill(world, consumer_a, 23)
    with tenant_context(world.a):
        with django_capture_on_commit_callbacks(execute=False):
            outcome = _start(world, filter={"consumer": str(consumer_a.pk)})
        [job] = outcome.jobs
        assert job.total == 23 and outcome.count == 23
        assert _run(world, job) == "completed"
        job.refresh_from_db()
        assert (job.sent, job.failed, job.status) == (23, 0, "completed")
        assert job.finished_at and job.cursor
        assert set(DeadLetter.objects.values_list("status", flat=True)) == {"replayed"}
        assert set(DeadLetter.objects.values_list("replay_count", flat=True)) == {1}
        audit = AuditEvent.objects.get(action="dead_letters.replay")
        assert audit.actor_email == world.admin_a.email and audit.diff["total"] == [None, 23]

    received = [messages.parse(m["Body"]) for m in receive_all(queue)]
    assert sorted(m.delivery.delivery_id for m in received) == sorted(
        b.delivery.delivery_id for b in bodies
    )
    assert {(m.kind, m.delivery.replay, m.delivery.attempt) for m in received} == {
        ("delivery", 1, 1)
    }
    sent = {b.delivery.delivery_id: b for b in bodies}
    for m in received:
        assert m.event == sent[m.delivery.delivery_id].event
        assert m.delivery.consumer_id == str(consumer_a.pk)


def test_a_dry_run_counts_by_consumer_and_changes_nothing(world, dlq, consumer_a, queue):
    _fill(world, consumer_a, 3)
    with tenant_context(world.a):
        outcome = services.replay_preview(filter={})
        assert outcome.count == 3
        assert outcome.by_consumer[str(consumer_a.pk)]["count"] == 3
        assert not ReplayJob.objects.exists()
        assert set(DeadLetter.objects.values_list("status", flat=True)) == {"pending"}
    assert receive_all(queue) == []


def test_a_second_replay_for_the_same_consumer_is_a_conflict_naming_the_first(
    world, dlq, consumer_a
):
    _fill(world, consumer_a, 2)
    _fill(world, consumer_a, 1, event_type="order.paid")
    with tenant_context(world.a):
        [first] = _start(world, filter={"event_type": "order.created"}).jobs
        with pytest.raises(ApplicationError) as exc:
            _start(world, filter={"event_type": "order.paid"})
        assert exc.value.status_code == 409 and exc.value.code == "conflict"
        assert str(first.pk) in exc.value.message
        assert ReplayJob.objects.count() == 1


def test_letters_of_deleted_or_disabled_consumers_are_reported_and_skipped(
    world, dlq, consumer_a, queue
):
    with tenant_context(world.a):
        off, _ = broker_services.consumer_create(
            actor=world.admin_a, name="off", kind="https", url=PUBLIC_URL
        )
        broker_services.consumer_update(actor=world.admin_a, consumer=off, enabled=False)
    _fill(world, consumer_a, 2)
    _fill(world, off, 1)
    send_to_dlq(dead_letter(world.a, "00000000-0000-4000-8000-00000000dead"))
    ingest_all()
    with tenant_context(world.a):
        outcome = _start(world, filter={})
        assert [j.consumer_id for j in outcome.jobs] == [str(consumer_a.pk)]
        assert outcome.skipped[str(off.pk)]["reason"] == "consumer disabled"
        assert outcome.skipped["00000000-0000-4000-8000-00000000dead"]["reason"] == (
            "consumer deleted"
        )
        assert DeadLetter.objects.filter(status="pending").count() == 2


def test_ids_that_are_not_the_tenants_are_named_and_nothing_changes(
    world, dlq, consumer_a, consumer_b
):
    _fill(world, consumer_a, 1)
    send_to_dlq(dead_letter(world.b, consumer_b.pk))
    ingest_all()
    with tenant_context(world.b):
        theirs = str(DeadLetter.objects.get().pk)
    with tenant_context(world.a):
        mine = str(DeadLetter.objects.get().pk)
        for call in (
            lambda ids: _start(world, ids=ids),
            lambda ids: services.letters_discard(actor=world.admin_a, ids=ids),
        ):
            with pytest.raises(ApplicationError) as exc:
                call([mine, theirs, "not-a-uuid"])
            assert exc.value.status_code == 400
            named = " ".join(exc.value.fields["ids"])
            assert theirs in named and "not-a-uuid" in named and mine not in named
        assert DeadLetter.objects.get().status == "pending"
        assert not ReplayJob.objects.exists()


def test_discarded_letters_cannot_be_replayed(world, dlq, consumer_a):
    _fill(world, consumer_a, 2)
    with tenant_context(world.a):
        ids = [str(i) for i in DeadLetter.objects.values_list("pk", flat=True)]
        assert services.letters_discard(actor=world.admin_a, ids=ids[:1]) == 1
        with pytest.raises(ApplicationError) as exc:
            _start(world, ids=ids)
        assert exc.value.code == "invalid_status" and ids[0] in exc.value.fields["ids"][0]
        with pytest.raises(ApplicationError):
            _start(world, filter={"status": "discarded"})
        assert AuditEvent.objects.get(action="dead_letters.discard").diff["count"] == [None, 1]


def test_unknown_filters_and_huge_selections_are_refused(world, dlq, consumer_a):
    _fill(world, consumer_a, 3)
    with tenant_context(world.a):
        with pytest.raises(ApplicationError) as exc:
            _start(world, filter={"colour": "red"})
        assert "colour" in exc.value.fields["filter"]
        with pytest.raises(ApplicationError):
            _start(world, filter={"since": "yesterday"})
        with pytest.raises(ApplicationError) as exc:
            _start(world, ids=[f"id{i}" for i in range(1001)])
        assert "At most 1000" in exc.value.message
        with override_settings(REPLAY_MAX_SELECTION=2), pytest.raises(ApplicationError) as exc:
            _start(world, filter={})
        assert exc.value.code == "selection_too_large"
        assert not ReplayJob.objects.exists()


def test_a_cancelled_job_stops_and_its_letters_are_pending_again(world, dlq, consumer_a, queue):
    _fill(world, consumer_a, 5)
    with tenant_context(world.a):
        [job] = _start(world, filter={}).jobs
        services.replay_job_cancel(actor=world.admin_a, job=job)
        assert _run(world, job) == "cancelled"
        assert set(DeadLetter.objects.values_list("status", flat=True)) == {"pending"}
        job.refresh_from_db()
        assert (job.status, job.sent, job.skipped) == ("cancelled", 0, 5)
    assert receive_all(queue) == []


def test_a_crash_after_sending_resends_the_batch_with_the_same_replay_numbers(
    world, dlq, consumer_a, queue, monkeypatch
):
    _fill(world, consumer_a, 12)
    real_save = runner._save_batch
    calls = {"n": 0}

    def crash_once(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise SystemExit("killed after the send, before the save")
        return real_save(*args, **kwargs)

    monkeypatch.setattr(runner, "_save_batch", crash_once)
    with tenant_context(world.a):
        [job] = _start(world, filter={}).jobs
        with pytest.raises(SystemExit):
            _run(world, job)
        assert _run(world, job) == "completed"
        job.refresh_from_db()
        assert job.sent == 12
    received = [messages.parse(m["Body"]) for m in receive_all(queue)]
    keys = [(m.delivery.delivery_id, m.delivery.replay, m.delivery.attempt) for m in received]
    # The second batch went out twice with identical idempotency keys: the egress absorbs it.
    assert len(keys) == 14 and len(set(keys)) == 12
    assert {k[1:] for k in keys} == {(1, 1)}


def test_aws_unavailable_makes_the_job_wait_and_retry_without_losing_letters(
    world, dlq, consumer_a, queue, monkeypatch
):
    _fill(world, consumer_a, 10)
    sqs = aws.sqs()
    real = sqs.send_message_batch
    failures = {"left": 3}

    def flaky(**kwargs):
        if failures["left"]:
            failures["left"] -= 1
            raise EndpointConnectionError(endpoint_url="http://sqs")
        return real(**kwargs)

    monkeypatch.setattr(sqs, "send_message_batch", flaky)
    waits = []
    with tenant_context(world.a):
        [job] = _start(world, filter={}).jobs
        assert runner.replay_job_run(tenant=world.a, job_id=job.pk, sleep=waits.append) == (
            "completed"
        )
    assert len(waits) >= 3
    assert len(receive_all(queue)) == 10


def test_aws_down_for_too_long_leaves_the_job_running_to_resume(
    world, dlq, consumer_a, queue, monkeypatch
):
    _fill(world, consumer_a, 3)
    sqs = aws.sqs()

    def down(**kwargs):
        raise EndpointConnectionError(endpoint_url="http://sqs")

    monkeypatch.setattr(sqs, "send_message_batch", down)
    with tenant_context(world.a), override_settings(REPLAY_AWS_MAX_WAIT_SECONDS=1):
        [job] = _start(world, filter={}).jobs
        assert active_jobs(world.a) == (1, 0)
        with pytest.raises(runner.AwsUnavailable):
            _run(world, job)
        job.refresh_from_db()
        assert job.status == "running" and job.sent == 0
        assert active_jobs(world.a) == (0, 1)
        assert DeadLetter.objects.filter(status="replaying").count() == 3
        monkeypatch.undo()
        assert _run(world, job) == "completed"
        assert active_jobs(world.a) == (0, 0)
    assert len(receive_all(queue)) == 3


def active_jobs(tenant) -> tuple[int, int]:
    """(queued, running) as the tenant's public DLQ state holds them for /metrics."""
    state = TenantDlqState.objects.get(tenant=tenant)
    return state.replay_jobs_queued, state.replay_jobs_running


def test_every_job_change_recounts_the_tenants_active_jobs_for_metrics(
    world, dlq, consumer_a, queue
):
    _fill(world, consumer_a, 2)
    with tenant_context(world.a):
        [job] = _start(world, filter={}).jobs
        assert active_jobs(world.a) == (1, 0)
        services.replay_job_cancel(actor=world.admin_a, job=job)
        assert active_jobs(world.a) == (0, 0)
        [job] = _start(world, filter={}).jobs
        assert active_jobs(world.a) == (1, 0)
        broker_services.consumer_update(actor=world.admin_a, consumer=consumer_a, enabled=False)
        assert _run(world, job) == "failed"
        assert active_jobs(world.a) == (0, 0)


def test_the_rate_limiter_paces_batches_at_the_jobs_rate():
    now = {"t": 0.0}
    waits = []

    def sleep(seconds):
        waits.append(seconds)
        now["t"] += seconds

    limiter = runner.RateLimiter(20, clock=lambda: now["t"], sleep=sleep)
    for _ in range(5):
        limiter.take(10)
    assert now["t"] == pytest.approx(2.0)  # 40 letters already sent at 20/s before the 5th


def test_a_replayed_letter_that_fails_again_can_be_replayed_with_the_next_number(
    world, dlq, consumer_a, queue
):
    [body] = _fill(world, consumer_a, 1)
    with tenant_context(world.a):
        _run(world, _start(world, filter={}).jobs[0])
    receive_all(queue)
    again = dead_letter(world.a, consumer_a.pk, delivery_id=body.delivery.delivery_id, replay=1)
    send_to_dlq(again)
    ingest_all()
    with tenant_context(world.a):
        letter = DeadLetter.objects.get()
        assert (letter.status, letter.replay_count) == ("pending", 1)
        _run(world, _start(world, ids=[str(letter.pk)]).jobs[0])
        letter.refresh_from_db()
        assert (letter.status, letter.replay_count) == ("replayed", 2)
        assert [h["event"] for h in letter.history] == [
            "dead_lettered",
            "replayed",
            "dead_lettered",
            "replayed",
        ]
    [m] = [messages.parse(x["Body"]) for x in receive_all(queue)]
    assert (m.delivery.delivery_id, m.delivery.replay) == (body.delivery.delivery_id, 2)


def test_the_replay_rate_comes_from_the_tier_and_is_capped(world):
    from tenants.models import Tenant

    tenant = Tenant.objects.select_related("tier").get(pk=world.a.pk)
    assert services.replay_rate(tenant) == 50
    tenant.quota_overrides = {"replay_rate_per_second": 5000}
    assert services.replay_rate(tenant) == 500


def test_payloads_in_replayed_messages_are_the_events_as_received(world, dlq, consumer_a, queue):
    [body] = _fill(world, consumer_a, 1, data={"nested": {"list": [1, 2, {"x": None}]}})
    with tenant_context(world.a):
        _run(world, _start(world, filter={}).jobs[0])
    [m] = receive_all(queue)
    assert json.loads(m["Body"])["event"] == body.event
