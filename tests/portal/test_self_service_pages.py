"""Self-service details: a producer edited on its page, filters shown as JSON, names rather
than ids, kind-dependent form fields, and invitation links that explain themselves."""

import hashlib
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone
from django_tenants.utils import tenant_context

from broker import services
from broker.models import Producer
from tenants import services as tenant_services
from tenants.models import Invitation
from tests.helpers import host_of

pytestmark = pytest.mark.django_db
QUEUE = "arn:aws:sqs:eu-west-1:123456789012:warehouse"


def page(user, tenant):
    client = Client(HTTP_HOST=host_of(tenant))
    if user is not None:
        client.force_login(user)
    return client


def test_a_developer_edits_a_producers_name_types_rate_and_burst(world):
    with tenant_context(world.a):
        producer, _ = services.producer_create(actor=world.admin_a, name="shop", kind="https")
    client = page(world.developer_a, world.a)
    form = client.get(f"/config/producer/{producer.pk}/edit/").content.decode()
    assert 'name="ingest_burst"' in form
    response = client.post(
        f"/config/producer/{producer.pk}/edit/",
        {
            "name": "web-shop",
            "allowed_event_types": "order.*, invoice.paid",
            "ingest_rate_per_second": "5",
            "ingest_burst": "20",
        },
    )
    assert response.status_code == 302
    with tenant_context(world.a):
        producer = Producer.objects.get(pk=producer.pk)
    assert producer.name == "web-shop"
    assert producer.allowed_event_types == ["order.*", "invoice.paid"]
    assert (producer.ingest_rate_per_second, producer.ingest_burst) == (5, 20)
    assert (
        page(world.viewer_a, world.a).get(f"/config/producer/{producer.pk}/edit/").status_code
        == 404
    )


def test_filters_are_shown_as_formatted_json_and_consumers_by_name(world):
    with tenant_context(world.a):
        consumer, _ = services.consumer_create(
            actor=world.admin_a, name="warehouse", kind="sqs", queue_arn=QUEUE
        )
        services.subscription_create(
            actor=world.admin_a,
            consumer=consumer,
            event_type="order.*",
            filter={"data": {"paid": [True]}},
        )
    for path in ("/", "/config/"):
        body = page(world.viewer_a, world.a).get(path).content.decode()
        assert "&quot;paid&quot;: [\n" in body and "True" not in body
        assert f'<a href="/consumers/{consumer.pk}/">warehouse</a>' in body


def test_create_forms_mark_fields_by_kind_for_the_page_script(world):
    body = page(world.developer_a, world.a).get("/config/").content.decode()
    assert 'data-field="source_queue_arn"' in body and 'data-field="queue_arn"' in body
    assert "/static/portal/portal.js" in body


def test_a_used_or_expired_invitation_link_says_why(world):
    tenant_services.member_invite(
        tenant=world.a, invited_by=world.admin_a, email="late@a.test", role="viewer"
    )
    invitation = Invitation.objects.get(email="late@a.test")
    # The token is only in the e-mail; give the row a known one.
    invitation.token_hash = hashlib.sha256(b"known-token").hexdigest()
    invitation.expires_at = timezone.now() - timedelta(days=1)
    invitation.save()
    response = page(None, world.a).get("/invitations/known-token/")
    assert response.status_code == 404 and "This invitation expired on" in response.content.decode()
    invitation.accepted_at = timezone.now()
    invitation.save()
    body = page(None, world.a).get("/invitations/known-token/").content.decode()
    assert "already accepted" in body and 'href="/login/"' in body
    response = page(None, world.a).get("/invitations/garbage/")
    assert response.status_code == 404 and "not valid" in response.content.decode()
