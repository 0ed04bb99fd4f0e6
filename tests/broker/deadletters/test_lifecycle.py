"""Retention, offboarding and DLQ alerts."""

import json
from datetime import timedelta
from pathlib import Path

import pytest
from django.core import mail
from django.utils import timezone
from django_tenants.utils import tenant_context

from broker.deadletters import alerts, retention
from broker.deadletters.models import DeadLetter
from broker.dlq.hooks import offboard_dead_letters
from broker.dlq.models import QuarantinedMessage, TenantDlqState
from tenants.models import Tenant
from tenants.services import _common as tenant_common
from tests.helpers.deadletters import dead_letter, ingest_all, send_to_dlq

pytestmark = pytest.mark.django_db


def _fill(world, consumer, n, tenant=None, **kwargs):
    tenant = tenant or world.a
    send_to_dlq(*[dead_letter(tenant, consumer.pk, **kwargs) for _ in range(n)])
    ingest_all()


def _tenant(world):
    return Tenant.objects.select_related("tier").get(pk=world.a.pk)


def test_letters_older_than_the_tiers_retention_are_purged(world, dlq, consumer_a):
    _fill(world, consumer_a, 3)
    tenant = _tenant(world)
    days = tenant.effective_quotas()["dlq_retention_days"]
    with tenant_context(world.a):
        old = list(DeadLetter.objects.values_list("pk", flat=True)[:2])
        DeadLetter.objects.filter(pk__in=old).update(
            dead_lettered_at=timezone.now() - timedelta(days=days, minutes=1)
        )
        assert retention.purge(tenant=tenant, batch=1) == 2
        assert DeadLetter.objects.count() == 1


def test_offboarding_removes_the_letters_before_the_export_and_the_quarantined_messages(
    world, dlq, consumer_a
):
    _fill(world, consumer_a, 2, data={"secret": "s3cr3t-payload"})
    QuarantinedMessage.objects.create(
        message_id="m1", body="{}", reason="x", tenant_hint=str(world.a.pk)
    )
    report = offboard_dead_letters(world.a)
    assert report == {"dead_letters_purged": 2, "quarantined_purged": 1}
    with tenant_context(world.a):
        assert not DeadLetter.objects.exists()


def test_the_offboarding_export_carries_no_dead_letter_payload(
    world, dlq, consumer_a, settings, tmp_path
):
    from tenants.services import offboarding

    _fill(world, consumer_a, 1, data={"secret": "s3cr3t-payload"})
    settings.OFFBOARD_EXPORT_DIR = str(tmp_path)
    offboard_dead_letters(world.a)
    path = offboarding._export_tenant_data(world.a)
    text = Path(path).read_text()
    assert "broker.deadletter" not in text and "payload_encrypted" not in text
    assert json.loads(text)["tenant"]["slug"] == world.a.slug


def test_an_alert_mails_the_admins_once_when_crossed_and_once_when_cleared(
    world, dlq, consumer_a, django_capture_on_commit_callbacks
):
    tenant = _tenant(world)
    alerts.settings_update(tenant=tenant, actor=world.admin_a, backlog=3)
    _fill(world, consumer_a, 2)
    with django_capture_on_commit_callbacks(execute=True):
        assert not alerts.evaluate(tenant=tenant).alerting
    _fill(world, consumer_a, 2)
    with django_capture_on_commit_callbacks(execute=True):
        state = alerts.evaluate(tenant=tenant)
        alerts.evaluate(tenant=tenant)
    assert state.alerting and "4 pending" in state.alert_reason
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == [world.admin_a.email]
    assert "attention" in mail.outbox[0].subject
    assert alerts.banner(tenant) is not None
    with tenant_context(world.a):
        DeadLetter.objects.update(status="discarded")
    with django_capture_on_commit_callbacks(execute=True):
        assert not alerts.evaluate(tenant=tenant).alerting
        alerts.evaluate(tenant=tenant)
    assert len(mail.outbox) == 2 and "back under" in mail.outbox[1].subject
    assert alerts.banner(tenant) is None


def test_an_old_letter_crosses_the_age_threshold(world, dlq, consumer_a):
    tenant = _tenant(world)
    _fill(world, consumer_a, 1)
    with tenant_context(world.a):
        DeadLetter.objects.update(dead_lettered_at=timezone.now() - timedelta(minutes=61))
    state = alerts.evaluate(tenant=tenant)
    assert state.alerting and "min old" in state.alert_reason
    assert TenantDlqState.objects.get(tenant=tenant).backlog == 1


def test_the_replay_rate_quota_has_an_upper_bound():
    with pytest.raises(Exception) as exc:
        tenant_common.validate_quota_overrides({"replay_rate_per_second": 501})
    assert "At most 500" in str(exc.value.fields)
    assert tenant_common.validate_quota_overrides({"replay_rate_per_second": 500})
