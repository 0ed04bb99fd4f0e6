"""The tenant API for broker configuration, end to end through HTTP."""

import uuid

import pytest
from django_tenants.utils import tenant_context

from broker.models import AuditEvent, Consumer, Producer
from broker.sync.models import OutboxEntry
from tests.helpers import PUBLIC_URL

pytestmark = pytest.mark.django_db

QUEUE = "arn:aws:sqs:eu-west-1:123456789012:sink"


def test_a_producer_goes_through_its_whole_life_over_the_api(world, api):
    client = api(world.developer_a, world.a)

    created = client.post("/api/v1/producers/", {"name": "shop", "kind": "https"}, format="json")
    assert created.status_code == 201, created.content
    body = created.json()
    key, pid = body["api_key"], body["id"]
    assert key.startswith("ebk_") and body["api_keys"][0]["prefix"] == key[:12]

    listed = client.get("/api/v1/producers/").json()
    assert [p["name"] for p in listed["results"]] == ["shop"]
    assert "api_key" not in listed["results"][0]

    changed = client.patch(
        f"/api/v1/producers/{pid}/", {"allowed_event_types": ["order.*"]}, format="json"
    )
    assert changed.json()["allowed_event_types"] == ["order.*"] and changed.json()["version"] == 2
    assert client.post(f"/api/v1/producers/{pid}/disable/").json()["enabled"] is False
    assert client.post(f"/api/v1/producers/{pid}/enable/").json()["enabled"] is True

    rotated = client.post(f"/api/v1/producers/{pid}/rotate-key/", {}, format="json").json()
    assert rotated["api_key"] != key
    assert sorted(k["status"] for k in rotated["api_keys"]) == ["active", "expiring"]
    old = next(k for k in rotated["api_keys"] if k["status"] == "expiring")
    revoked = client.post(
        f"/api/v1/producers/{pid}/revoke-key/", {"key_id": old["id"]}, format="json"
    ).json()
    assert sorted(k["status"] for k in revoked["api_keys"]) == ["active", "revoked"]

    assert client.delete(f"/api/v1/producers/{pid}/").status_code == 204
    assert client.get(f"/api/v1/producers/{pid}/").status_code == 404


def test_a_consumer_goes_through_its_whole_life_over_the_api(world, api):
    client = api(world.admin_a, world.a)

    created = client.post(
        "/api/v1/consumers/",
        {
            "name": "shop",
            "kind": "https",
            "url": PUBLIC_URL,
            "auth_type": "bearer",
            "auth_secret": "bearer-token-value",
        },
        format="json",
    )
    assert created.status_code == 201, created.content
    body = created.json()
    cid = body["id"]
    assert body["signing_secret"].startswith("whsec_")
    assert body["has_auth_secret"] is True and "auth_secret" not in body

    got = client.get(f"/api/v1/consumers/{cid}/").json()
    assert "signing_secret" not in got and "bearer-token-value" not in str(got)

    rotated = client.post(f"/api/v1/consumers/{cid}/rotate-signing-secret/", {}, format="json")
    assert rotated.json()["signing_secret"] != body["signing_secret"]
    assert rotated.json()["previous_signing_secret_valid_until"]

    assert client.post(f"/api/v1/consumers/{cid}/disable/").json()["enabled"] is False
    patched = client.patch(f"/api/v1/consumers/{cid}/", {"timeout_ms": 5000}, format="json")
    assert patched.json()["timeout_ms"] == 5000
    assert client.delete(f"/api/v1/consumers/{cid}/").status_code == 204


def test_subscriptions_and_event_types_over_the_api(world, api):
    client = api(world.developer_a, world.a)
    consumer = client.post(
        "/api/v1/consumers/", {"name": "sink", "kind": "sqs", "queue_arn": QUEUE}, format="json"
    ).json()

    sub = client.post(
        "/api/v1/subscriptions/",
        {"consumer": consumer["id"], "event_type": "order.*"},
        format="json",
    )
    assert sub.status_code == 201, sub.content
    sid = sub.json()["id"]
    assert client.get(f"/api/v1/subscriptions/?consumer={consumer['id']}").json()["count"] == 1
    patched = client.patch(
        f"/api/v1/subscriptions/{sid}/",
        {"filter": {"data": {"amount": [{"numeric": [">", 100]}]}}},
        format="json",
    )
    assert patched.status_code == 200 and patched.json()["version"] == 2

    et = client.post(
        "/api/v1/event-types/",
        {"name": "order.created", "schema": {"type": "object"}},
        format="json",
    )
    assert et.status_code == 201
    assert client.get("/api/v1/event-types/?name=order").json()["count"] == 1
    assert client.delete(f"/api/v1/subscriptions/{sid}/").status_code == 204
    assert client.delete(f"/api/v1/event-types/{et.json()['id']}/").status_code == 204


def test_testing_a_filter_says_whether_and_why_an_event_matches(world, api):
    client = api(world.viewer_a, world.a)
    pattern = {"data": {"amount": [{"numeric": [">", 100]}], "currency": ["EUR"]}}

    yes = client.post(
        "/api/v1/subscriptions/test-filter/",
        {
            "filter": pattern,
            "event_type": "order.*",
            "event": {"type": "order.created", "data": {"amount": 150, "currency": "EUR"}},
        },
        format="json",
    )
    assert yes.status_code == 200, yes.content
    assert yes.json()["matches"] is True and yes.json()["event_type_matches"] is True

    no = client.post(
        "/api/v1/subscriptions/test-filter/",
        {"filter": pattern, "event": {"type": "x", "data": {"amount": 50, "currency": "EUR"}}},
        format="json",
    ).json()
    assert no["matches"] is False
    failing = [r for r in no["reasons"] if not r["matched"]]
    assert failing and "amount" in failing[0]["path"]
    # Values and matchers read as JSON, as the caller wrote them (not Python's repr).
    assert failing[0]["detail"] == '50 does not match any of [{"numeric":[">",100]}]'
    listed = client.post(
        "/api/v1/subscriptions/test-filter/",
        {"filter": {"tags": ["x", None]}, "event": {"tags": ["a", True]}},
        format="json",
    ).json()
    assert listed["reasons"][0]["detail"] == '["a",true] does not match any of ["x",null]'

    bad = client.post(
        "/api/v1/subscriptions/test-filter/",
        {"filter": {"data": "x"}, "event": {}},
        format="json",
    )
    assert bad.status_code == 400 and "filter" in bad.json()["error"]["fields"]
    bad_type = client.post(
        "/api/v1/subscriptions/test-filter/",
        {"filter": {}, "event_type": "Not A Type", "event": {}},
        format="json",
    )
    assert bad_type.status_code == 400
    assert list(bad_type.json()["error"]["fields"]) == ["event_type"]


def test_bad_input_answers_400_with_field_errors_and_stores_nothing(world, api, in_a):
    client = api(world.admin_a, world.a)
    cases = [
        ("/api/v1/producers/", {"name": "p", "kind": "ftp"}, "kind"),
        ("/api/v1/producers/", {"name": "p", "kind": "https", "colour": "red"}, "colour"),
        ("/api/v1/producers/", {"kind": "https"}, "name"),
        ("/api/v1/consumers/", {"name": "c", "kind": "https"}, "url"),
        ("/api/v1/consumers/", {"name": "c", "kind": "https", "url": "https://10.0.0.1/"}, "url"),
        ("/api/v1/consumers/", {"name": "c", "kind": "sqs", "queue_arn": "arn:x"}, "queue_arn"),
        ("/api/v1/subscriptions/", {"consumer": "not-a-uuid", "event_type": "a"}, "consumer"),
        ("/api/v1/event-types/", {"name": "Bad Name"}, "name"),
    ]
    for path, body, field in cases:
        response = client.post(path, body, format="json")
        assert response.status_code == 400, (path, body, response.content)
        error = response.json()["error"]
        assert field in error["fields"], (path, body, error)
        assert error["code"] and error["message"]
    malformed = client.post("/api/v1/producers/", "{not json", content_type="application/json")
    assert malformed.status_code == 400 and malformed.json()["error"]["code"]
    assert not Producer.objects.exists() and not Consumer.objects.exists()
    assert not AuditEvent.objects.exists() and not OutboxEntry.objects.exists()


def test_viewers_read_but_cannot_write(world, api):
    with tenant_context(world.a):
        from broker import services

        producer, _ = services.producer_create(actor=world.admin_a, name="shop", kind="https")
    viewer = api(world.viewer_a, world.a)

    assert viewer.get("/api/v1/producers/").status_code == 200
    assert viewer.get("/api/v1/audit-events/").status_code == 200
    for method, path in [
        ("post", "/api/v1/producers/"),
        ("patch", f"/api/v1/producers/{producer.pk}/"),
        ("delete", f"/api/v1/producers/{producer.pk}/"),
        ("post", f"/api/v1/producers/{producer.pk}/rotate-key/"),
        ("post", "/api/v1/consumers/"),
        ("post", "/api/v1/subscriptions/"),
        ("post", "/api/v1/event-types/"),
    ]:
        assert getattr(viewer, method)(path, {}, format="json").status_code == 403, path
    assert api(None, world.a).get("/api/v1/producers/").status_code == 401


def test_the_audit_log_lists_changes_with_secrets_masked(world, api):
    client = api(world.admin_a, world.a)
    client.post(
        "/api/v1/consumers/",
        {
            "name": "c",
            "kind": "https",
            "url": PUBLIC_URL,
            "auth_type": "basic",
            "auth_username": "user",
            "auth_secret": "pa55word-in-clear",
        },
        format="json",
    )
    events = client.get("/api/v1/audit-events/?object_type=consumer").json()["results"]
    assert [e["action"] for e in events] == ["consumer.create"]
    assert events[0]["actor_email"] == "admin@a.test"
    assert "pa55word" not in str(events) and "whsec_" not in str(events)
    assert client.post("/api/v1/audit-events/", {}, format="json").status_code == 405


def test_an_idempotency_key_replays_the_first_response(world, api):
    client = api(world.admin_a, world.a)
    body = {"name": "shop", "kind": "https"}
    key = f"k-{uuid.uuid4()}"  # the cache (Redis) outlives a test run

    first = client.post("/api/v1/producers/", body, format="json", HTTP_IDEMPOTENCY_KEY=key)
    again = client.post("/api/v1/producers/", body, format="json", HTTP_IDEMPOTENCY_KEY=key)
    other = client.post(
        "/api/v1/producers/", {**body, "name": "other"}, format="json", HTTP_IDEMPOTENCY_KEY=key
    )

    assert first.status_code == again.status_code == 201
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["api_key"] is None  # a secret is shown once, never replayed
    assert other.status_code == 409
    with tenant_context(world.a):
        assert Producer.objects.count() == 1
