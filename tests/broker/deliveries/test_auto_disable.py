"""Endpoint auto-disable: a consumer failing without a success for
CONSUMER_AUTO_DISABLE_AFTER_HOURS is disabled through the consumer service (audit, version,
sync), its tenant's admins are e-mailed, its page says why, and one click enables it again."""

from datetime import UTC, datetime, timedelta

import pytest
from django.test import Client
from django_tenants.utils import tenant_context

from broker import services
from broker.deliveries.tasks import auto_disable_tenant, auto_disable_tick
from broker.models import AuditEvent, Consumer
from broker.sync.models import OutboxEntry
from tests import dataplane_items as dp
from tests.helpers import host_of

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("empty_dataplane")]
QUEUE = "arn:aws:sqs:eu-west-1:123456789012:warehouse"
NOW = datetime.now(UTC)


def make_consumer(world, name="warehouse", *, changed_hours_ago=200):
    with tenant_context(world.a):
        consumer, _ = services.consumer_create(
            actor=world.admin_a, name=name, kind="sqs", queue_arn=QUEUE
        )
        Consumer.objects.filter(pk=consumer.pk).update(
            updated_at=NOW - timedelta(hours=changed_hours_ago)
        )
    return consumer


def failing(world, consumer, *, since_hours, ok_hours_ago=None):
    dp.consumer_minute(world.a, consumer.pk, NOW - timedelta(hours=since_hours), failed=3)
    dp.consumer_minute(world.a, consumer.pk, NOW - timedelta(hours=1), failed=5)
    if ok_hours_ago is not None:
        dp.consumer_minute(world.a, consumer.pk, NOW - timedelta(hours=ok_hours_ago), ok=1)


def run(world, callbacks):
    with callbacks(execute=True):
        return auto_disable_tenant(str(world.a.pk))


def test_a_consumer_failing_for_five_days_is_disabled_audited_synced_and_admins_told(
    world, mailoutbox, django_capture_on_commit_callbacks
):
    consumer = make_consumer(world)
    version = consumer.version
    failing(world, consumer, since_hours=130)
    assert run(world, django_capture_on_commit_callbacks) == ["warehouse"]
    with tenant_context(world.a):
        consumer.refresh_from_db()
        assert not consumer.enabled and "without a success" in consumer.disabled_reason
        assert AuditEvent.objects.filter(action="consumer.auto_disable").count() == 1
    # a new version, mirrored to DynamoDB by the relay (ran on commit, so nothing queued)
    assert consumer.version == version + 1
    assert not OutboxEntry.objects.filter(object_id=str(consumer.pk)).exists()
    (mail,) = [m for m in mailoutbox if "warehouse" in m.subject]
    assert world.admin_a.email in mail.to and world.viewer_a.email not in mail.to


def test_a_success_or_a_shorter_run_of_failures_keeps_the_consumer_enabled(
    world, django_capture_on_commit_callbacks
):
    recovered = make_consumer(world, "recovered")
    failing(world, recovered, since_hours=130, ok_hours_ago=50)
    young = make_consumer(world, "young")
    dp.consumer_minute(world.a, young.pk, NOW - timedelta(hours=100), failed=1)
    changed = make_consumer(world, "changed", changed_hours_ago=10)
    failing(world, changed, since_hours=130)
    assert run(world, django_capture_on_commit_callbacks) == []
    with tenant_context(world.a):
        assert Consumer.objects.filter(enabled=True).count() == 3


def test_the_page_says_why_and_one_click_enables_it_again(
    world, django_capture_on_commit_callbacks
):
    consumer = make_consumer(world)
    failing(world, consumer, since_hours=130)
    run(world, django_capture_on_commit_callbacks)
    client = Client(HTTP_HOST=host_of(world.a))
    client.force_login(world.developer_a)
    body = client.get(f"/consumers/{consumer.pk}/").content.decode()
    assert 'data-testid="disabled-reason"' in body and "Disabled automatically" in body
    assert "Disabled automatically" in client.get("/").content.decode()  # dashboard too
    response = client.post(f"/consumers/{consumer.pk}/enable/", follow=True)
    assert "enabled again" in response.content.decode()
    with tenant_context(world.a):
        consumer.refresh_from_db()
        assert consumer.enabled and consumer.disabled_reason == ""


def test_the_tick_visits_every_active_tenant(world, django_capture_on_commit_callbacks):
    consumer = make_consumer(world)
    failing(world, consumer, since_hours=130)
    with django_capture_on_commit_callbacks(execute=True):
        auto_disable_tick()
    with tenant_context(world.a):
        assert not Consumer.objects.get(pk=consumer.pk).enabled
