"""Another tenant's objects do not exist for you: 404 everywhere, 401 on the wrong host."""

import pytest
from django_tenants.utils import tenant_context

from broker import services
from broker.models import Consumer, EventType, Producer, Subscription
from tests.helpers import PUBLIC_URL

pytestmark = pytest.mark.django_db


@pytest.fixture
def b_objects(world):
    with tenant_context(world.b):
        producer, _ = services.producer_create(actor=world.admin_b, name="p", kind="https")
        consumer, _ = services.consumer_create(
            actor=world.admin_b, name="c", kind="https", url=PUBLIC_URL
        )
        sub = services.subscription_create(actor=world.admin_b, consumer=consumer, event_type="a.b")
        event_type = services.event_type_create(actor=world.admin_b, name="a.b")
        key = producer.api_keys.get()
        audit = __import__("broker.models", fromlist=["AuditEvent"]).AuditEvent.objects.first()
    return {
        "producer": producer,
        "consumer": consumer,
        "subscription": sub,
        "event_type": event_type,
        "key": key,
        "audit": audit,
    }


def _requests(o):
    p, c, s, e = (o["producer"].pk, o["consumer"].pk, o["subscription"].pk, o["event_type"].pk)
    return [
        ("get", f"/api/v1/producers/{p}/", None),
        ("patch", f"/api/v1/producers/{p}/", {"enabled": False}),
        ("delete", f"/api/v1/producers/{p}/", None),
        ("post", f"/api/v1/producers/{p}/rotate-key/", {}),
        ("post", f"/api/v1/producers/{p}/revoke-key/", {"key_id": str(o["key"].pk)}),
        ("post", f"/api/v1/producers/{p}/enable/", None),
        ("post", f"/api/v1/producers/{p}/disable/", None),
        ("get", f"/api/v1/consumers/{c}/", None),
        ("patch", f"/api/v1/consumers/{c}/", {"enabled": False}),
        ("delete", f"/api/v1/consumers/{c}/", None),
        ("post", f"/api/v1/consumers/{c}/rotate-signing-secret/", {}),
        ("post", f"/api/v1/consumers/{c}/enable/", None),
        ("post", f"/api/v1/consumers/{c}/disable/", None),
        ("get", f"/api/v1/subscriptions/{s}/", None),
        ("patch", f"/api/v1/subscriptions/{s}/", {"enabled": False}),
        ("delete", f"/api/v1/subscriptions/{s}/", None),
        ("get", f"/api/v1/event-types/{e}/", None),
        ("patch", f"/api/v1/event-types/{e}/", {"description": "x"}),
        ("delete", f"/api/v1/event-types/{e}/", None),
        ("get", f"/api/v1/audit-events/{o['audit'].pk}/", None),
    ]


def _state(world):
    with tenant_context(world.b):
        return (
            sorted((p.pk, p.version, p.enabled) for p in Producer.objects.all()),
            sorted((c.pk, c.version, c.enabled) for c in Consumer.objects.all()),
            sorted((s.pk, s.version) for s in Subscription.objects.all()),
            sorted((e.pk, e.version) for e in EventType.objects.all()),
        )


def test_every_object_endpoint_answers_404_for_another_tenants_ids(world, api, b_objects):
    before = _state(world)
    client = api(world.admin_a, world.a)
    for method, path, body in _requests(b_objects):
        response = getattr(client, method)(path, body, format="json")
        assert response.status_code == 404, (method, path, response.status_code)
        assert response.json()["error"]["code"] == "not_found"
    assert _state(world) == before


def test_another_tenants_ids_cannot_be_referenced_in_a_body(world, api, b_objects):
    client = api(world.admin_a, world.a)
    response = client.post(
        "/api/v1/subscriptions/",
        {"consumer": str(b_objects["consumer"].pk), "event_type": "a.b"},
        format="json",
    )
    assert response.status_code == 400 and "consumer" in response.json()["error"]["fields"]


def test_a_token_of_tenant_a_is_refused_on_tenant_bs_host(world, api, b_objects):
    from tests.helpers import HostClient, host_of, token_for

    client = HostClient(host_of(world.b), token_for(world.admin_a, world.a))
    before = _state(world)
    for method, path, body in [*_requests(b_objects), ("get", "/api/v1/producers/", None)]:
        response = getattr(client, method)(path, body, format="json")
        assert response.status_code == 401, (method, path, response.status_code)
    assert _state(world) == before


def test_lists_show_only_your_own_objects(world, api, b_objects):
    client = api(world.admin_a, world.a)
    for path in [
        "/api/v1/producers/",
        "/api/v1/consumers/",
        "/api/v1/subscriptions/",
        "/api/v1/event-types/",
        "/api/v1/audit-events/",
    ]:
        assert client.get(path).json()["count"] == 0, path
