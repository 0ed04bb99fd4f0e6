"""The relay is the one writer of a tenant's items (tenants reaches it through tenants/hooks.py),
and a quota change reaches every item that carries a copy of the quotas."""

from datetime import timedelta

import pytest
from botocore.exceptions import ClientError
from django.utils import timezone
from django_tenants.utils import tenant_context

from broker import services as broker_services
from broker import tasks as broker_tasks
from broker.models import ApiKey
from broker.sync import contract, dynamo, relay, selectors
from broker.sync.models import OutboxEntry
from tenants import services
from tenants.models import Tenant, Tier
from tests.helpers import onboard

pytestmark = pytest.mark.django_db

QUEUE = "arn:aws:sqs:eu-west-1:123456789012:sink"


def item_of(tenant, object_type, obj):
    [(pk, sk)] = contract.item_keys(object_type, obj, tenant_id=tenant.pk)
    return dynamo.get_item(pk, sk)


def carriers(tenant):
    with tenant_context(tenant):
        producer, _ = broker_services.producer_create(actor=None, name="p", kind="https")
        consumer, _ = broker_services.consumer_create(
            actor=None, name="c", kind="sqs", queue_arn=QUEUE
        )
    relay.drain()
    return producer, consumer


def test_a_quota_override_reaches_the_producer_and_consumer_items_not_only_the_tenant_item(
    django_capture_on_commit_callbacks,
):
    tenant = onboard("quota-carriers")
    producer, consumer = carriers(tenant)
    assert item_of(tenant, contract.PRODUCER, producer)["rate_per_second"] != 7
    with django_capture_on_commit_callbacks(execute=True):
        services.tenant_update_quotas(
            tenant=tenant, overrides={"ingest_rate_per_second": 7, "delivery_concurrency": 3}
        )
    assert (
        dynamo.get_item(contract.tenant_pk(tenant.pk), "TENANT")["quotas"]["ingest_rate_per_second"]
        == 7
    )
    assert item_of(tenant, contract.PRODUCER, producer)["rate_per_second"] == 7
    assert item_of(tenant, contract.CONSUMER, consumer)["concurrency"] == 3


def test_a_tier_quota_change_reaches_the_producer_items_of_every_tenant_on_the_tier(
    django_capture_on_commit_callbacks,
):
    tenant = onboard("tier-carriers", tier="premium")
    producer, _ = carriers(tenant)
    tier = Tier.objects.get(name="premium")
    with django_capture_on_commit_callbacks(execute=True):
        services.tier_update(tier=tier, quotas={"ingest_burst": tier.ingest_burst + 11})
    assert item_of(tenant, contract.PRODUCER, producer)["burst"] == tier.ingest_burst + 11


def test_a_suspension_dynamodb_refuses_shows_as_failing_and_the_relay_finishes_it_later(
    monkeypatch, django_capture_on_commit_callbacks
):
    tenant = onboard("refused-suspend")
    real_put = dynamo.put_versioned

    def refuse(item):
        raise ClientError({"Error": {"Code": "ValidationException", "Message": "no"}}, "PutItem")

    monkeypatch.setattr(dynamo, "put_versioned", refuse)
    with django_capture_on_commit_callbacks(execute=True):
        services.tenant_suspend(tenant=tenant)
    _, objects = selectors.tenant_sync_status(tenant)
    [state] = [o for o in objects if o["object_type"] == "tenant"]
    assert state["status"] == "failing" and "ValidationException" in state["last_error"]
    assert dynamo.get_item(contract.tenant_pk(tenant.pk), "TENANT")["status"] == "active"

    monkeypatch.setattr(dynamo, "put_versioned", real_put)
    OutboxEntry.objects.filter(tenant=tenant).update(available_at=timezone.now())
    relay.drain()
    assert dynamo.get_item(contract.tenant_pk(tenant.pk), "TENANT")["status"] == "suspended"
    tenant = Tenant.objects.get(pk=tenant.pk)
    assert tenant.synced_version == tenant.version


def test_the_key_expiry_job_removes_keys_past_their_grace_period_and_tombstones_their_items(
    django_capture_on_commit_callbacks,
):
    tenant = onboard("key-expiry")
    with tenant_context(tenant):
        producer, _ = broker_services.producer_create(actor=None, name="p", kind="https")
        old = producer.api_keys.get()
        broker_services.producer_rotate_key(actor=None, producer=producer, grace_seconds=3600)
    relay.drain()
    assert item_of(tenant, contract.APIKEY, old)["producer_id"] == str(producer.pk)

    with tenant_context(tenant):
        ApiKey.objects.filter(pk=old.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    with django_capture_on_commit_callbacks(execute=True):
        assert broker_tasks.expire_api_keys() >= 1
    relay.drain()
    with tenant_context(tenant):
        assert not ApiKey.objects.filter(pk=old.pk).exists()
        assert ApiKey.objects.filter(producer=producer).count() == 1
    assert item_of(tenant, contract.APIKEY, old)["deleted"] is True
