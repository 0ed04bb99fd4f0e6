"""Revisions, diffs and rollback: what the configuration was, and putting it back."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django_tenants.utils import tenant_context

from broker import services
from broker.configcode import revisions
from broker.configcode.models import ConfigRevision
from broker.models import Consumer, Producer, Subscription
from tests.helpers import PUBLIC_URL

pytestmark = pytest.mark.django_db


def test_each_service_call_makes_one_revision_holding_the_document_at_that_point(world, api):
    with tenant_context(world.a):
        start = revisions.head()
        producer, _ = services.producer_create(actor=world.admin_a, name="shop", kind="https")
        consumer, _ = services.consumer_create(
            actor=world.developer_a, name="orders", kind="https", url=PUBLIC_URL
        )
        services.subscription_create(actor=world.developer_a, consumer=consumer, event_type="a.b")
        services.subscription_create(actor=world.developer_a, consumer=consumer, event_type="c.d")
        services.producer_update(actor=world.admin_a, producer=producer, enabled=False)
        # A consumer and its two subscriptions deleted: one change, one revision.
        services.consumer_delete(actor=world.admin_a, consumer=consumer)
        assert revisions.head() == start + 6
        last = ConfigRevision.objects.get(number=start + 6)
        assert last.objects_changed == 3 and last.actor_email == world.admin_a.email
        assert last.summary.startswith("subscription.delete orders.a.b")
        # A key rotation changes no configuration: no revision.
        services.producer_rotate_key(actor=world.admin_a, producer=producer)
        assert revisions.head() == start + 6

    client = api(world.viewer_a, world.a)
    listed = client.get("/api/v1/config/revisions/").json()
    assert [r["number"] for r in listed["results"][:6]] == list(range(start + 6, start, -1))
    assert listed["results"][5]["summary"] == "producer.create shop"
    assert listed["results"][5]["actor"] == world.admin_a.email

    at_4 = client.get(f"/api/v1/config/revisions/{start + 4}/").json()
    assert [s["name"] for s in at_4["subscriptions"]] == ["orders.a.b", "orders.c.d"]
    assert at_4["producers"][0]["enabled"] is True
    assert client.get(f"/api/v1/config/revisions/{start + 7}/").status_code == 404

    diff = client.get(f"/api/v1/config/diff/?from={start + 4}&to={start + 6}").json()
    assert diff["added"] == []
    assert diff["removed"] == [
        {"object_type": "subscription", "name": "orders.a.b"},
        {"object_type": "subscription", "name": "orders.c.d"},
        {"object_type": "consumer", "name": "orders"},
    ]
    assert diff["changed"] == [
        {"object_type": "producer", "name": "shop", "fields": {"enabled": [True, False]}}
    ]
    assert client.get("/api/v1/config/diff/?from=x").status_code == 400


def test_a_failed_change_makes_no_revision(world):
    with tenant_context(world.a):
        start = revisions.head()
        services.producer_create(actor=world.admin_a, name="shop", kind="https")
        with pytest.raises(Exception):
            services.producer_create(actor=world.admin_a, name="shop", kind="https")
        services.producer_create(actor=world.admin_a, name="shop-2", kind="https")
        assert list(ConfigRevision.objects.values_list("number", flat=True)[:2]) == [
            start + 2,
            start + 1,
        ]


def test_a_rollback_puts_the_configuration_back_and_the_diff_is_then_empty(world, api):
    with tenant_context(world.a):
        producer, _ = services.producer_create(actor=world.admin_a, name="shop", kind="https")
        consumer, _ = services.consumer_create(
            actor=world.admin_a, name="orders", kind="https", url=PUBLIC_URL
        )
        services.subscription_create(
            actor=world.admin_a,
            consumer=consumer,
            event_type="order.created",
            producer=producer,
            filter={"data": {"total": [{"numeric": [">", 100]}]}},
        )
        good = revisions.head()
        sub = Subscription.objects.get()
        services.subscription_update(actor=world.admin_a, subscription=sub, filter={"x": ["y"]})
        services.consumer_update(actor=world.admin_a, consumer=consumer, timeout_ms=2000)
        services.event_type_create(actor=world.admin_a, name="order.created")

    admin = api(world.admin_a, world.a)
    dry = admin.post("/api/v1/config/rollback/", {"revision": good, "dry_run": True}, format="json")
    assert dry.status_code == 200, dry.content
    plan = dry.json()
    assert plan["base_revision"] == good + 3
    assert [(c["action"], c["object_type"]) for c in plan["changes"]] == [
        ("update", "consumer"),
        ("update", "subscription"),
        ("delete", "event_type"),
    ]
    done = admin.post(
        "/api/v1/config/rollback/", {"revision": good, "plan": plan["hash"]}, format="json"
    )
    assert done.status_code == 200, done.content
    assert done.json()["revision"] == good + 4 and done.json()["changes"] == 3

    diff = admin.get(f"/api/v1/config/diff/?from={good}&to={good + 4}").json()
    assert diff == {"from": good, "to": good + 4, "added": [], "removed": [], "changed": []}
    with tenant_context(world.a):
        assert Subscription.objects.get().filter == {"data": {"total": [{"numeric": [">", 100]}]}}
        assert ConfigRevision.objects.get(number=good + 4).summary.startswith(f"rollback to {good}")

    # The same plan again is stale: the rollback made a revision.
    again = admin.post(
        "/api/v1/config/rollback/", {"revision": good, "plan": plan["hash"]}, format="json"
    )
    assert again.status_code == 409


def test_a_rollback_over_a_deleted_object_says_what_cannot_come_back(world, api):
    with tenant_context(world.a):
        services.producer_create(actor=world.admin_a, name="shop", kind="https")
        consumer, _ = services.consumer_create(
            actor=world.admin_a, name="orders", kind="https", url=PUBLIC_URL
        )
        good = revisions.head()
        services.consumer_delete(actor=world.admin_a, consumer=consumer)
        services.producer_delete(actor=world.admin_a, producer=Producer.objects.get())

    admin = api(world.admin_a, world.a)
    plan = admin.post(
        "/api/v1/config/rollback/", {"revision": good, "dry_run": True}, format="json"
    ).json()
    notes = {c["name"]: c["notes"] for c in plan["changes"]}
    assert "new API key" in notes["shop"][0] and "new signing secret" in notes["orders"][0]
    done = admin.post("/api/v1/config/rollback/", {"revision": good}, format="json").json()
    assert {(s["name"], s["field"]) for s in done["secrets"]} == {
        ("shop", "api_key"),
        ("orders", "signing_secret"),
    }
    diff = admin.get(f"/api/v1/config/diff/?from={good}").json()
    assert diff["added"] == diff["removed"] == diff["changed"] == []
    with tenant_context(world.a):
        assert Consumer.objects.get().pk != consumer.pk  # a new object, a new secret


def test_the_revision_list_runs_a_constant_number_of_queries(world, api):
    client = api(world.viewer_a, world.a)
    with tenant_context(world.a):
        services.producer_create(actor=world.admin_a, name="p0", kind="https")
    client.get("/api/v1/config/revisions/")
    with CaptureQueriesContext(connection) as few:
        assert client.get("/api/v1/config/revisions/").status_code == 200
    with tenant_context(world.a):
        for i in range(1, 12):
            services.producer_create(actor=world.admin_a, name=f"p{i}", kind="https")
    with CaptureQueriesContext(connection) as many:
        page = client.get("/api/v1/config/revisions/").json()
    assert len(page["results"]) >= 12
    assert len(many) == len(few)


def _stored_bytes(number: int) -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT (SELECT pg_column_size(r.*) FROM broker_configrevision r WHERE r.number = %s)"
            " + (SELECT coalesce(sum(pg_column_size(e.*)), 0) FROM broker_configrevisionentry e"
            "    JOIN broker_configrevision r ON r.id = e.revision_id WHERE r.number = %s)",
            [number, number],
        )
        return cursor.fetchone()[0]


def test_a_revision_stores_only_what_changed(world):
    """Storage per change does not grow with the configuration: one entry per object changed
    (printed with -s; docs/config-as-code.md quotes it)."""
    figures = []
    with tenant_context(world.a):
        consumer, _ = services.consumer_create(
            actor=world.admin_a, name="orders", kind="https", url=PUBLIC_URL
        )
        for size in (5, 50):
            for i in range(Subscription.objects.count(), size):
                services.subscription_create(
                    actor=world.admin_a,
                    consumer=consumer,
                    event_type=f"order.e{i}",
                    filter={"data": {"total": [{"numeric": [">", i]}]}},
                )
            sub = Subscription.objects.first()
            services.subscription_update(
                actor=world.admin_a, subscription=sub, filter={"data": {"n": [size]}}
            )
            figures.append(_stored_bytes(revisions.head()))
    print(f"\nrevision storage per one-object change: {figures[0]} B (5 subs), {figures[1]} B (50)")
    assert figures[0] == figures[1] < 1024
