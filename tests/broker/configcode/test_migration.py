"""Migration 0008 on a tenant that had configuration: subscriptions named from their consumer
and event type, and a baseline revision 1 that rebuilds the configuration exactly."""

import importlib

import pytest
from django.apps import apps
from django_tenants.utils import tenant_context

from broker import services
from broker.configcode import document, revisions
from broker.configcode.models import ConfigRevision
from broker.models import Subscription
from tests.helpers import PUBLIC_URL

pytestmark = pytest.mark.django_db

migration = importlib.import_module("broker.migrations.0008_subscription_name_config_revisions")


def test_existing_subscriptions_are_named_and_the_baseline_rebuilds_the_configuration(world):
    with tenant_context(world.a):
        consumer, _ = services.consumer_create(
            actor=world.admin_a, name="orders", kind="https", url=PUBLIC_URL
        )
        for _ in range(2):
            services.subscription_create(
                actor=world.admin_a, consumer=consumer, event_type="order.created"
            )
        services.event_type_create(actor=world.admin_a, name="order.created")
        # As before the migration: names from nowhere (0008 adds the column empty; unique
        # only in 0009), no revisions.
        for i, sub in enumerate(Subscription.objects.all()):
            Subscription.objects.filter(pk=sub.pk).update(name=f"unnamed-{i}")
        ConfigRevision.objects.all().delete()

        migration.name_subscriptions(apps, None)
        migration.baseline(apps, None)

        assert sorted(Subscription.objects.values_list("name", flat=True)) == [
            "orders.order.created",
            "orders.order.created-2",
        ]
        assert revisions.head() == 1
        assert revisions.document_at(1) == document.export_document()
        # The next change is revision 2, and the history rebuilds both.
        services.event_type_delete(
            actor=world.admin_a,
            event_type=apps.get_model("broker", "EventType").objects.get(),
        )
        assert revisions.head() == 2
        assert revisions.document_at(2) == document.export_document()
        assert revisions.document_at(1)["event_types"][0]["name"] == "order.created"
