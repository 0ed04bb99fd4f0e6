"""Idempotency-Key on the tenant API's POSTs (Redis-backed, per caller)."""

import uuid

import pytest
from django.core.cache import cache
from django_tenants.utils import schema_context, tenant_context

from broker.models import Producer

pytestmark = pytest.mark.django_db


@pytest.fixture
def key():
    return f"key-{uuid.uuid4()}"  # Redis outlives a test run: never reuse a key


def test_no_key_means_no_deduplication(world, api):
    client = api(world.admin_a, world.a)
    assert client.post("/api/v1/event-types/", {"name": "a.b"}, format="json").status_code == 201
    again = client.post("/api/v1/event-types/", {"name": "a.b"}, format="json")
    assert again.status_code == 400  # the second create really ran


def test_a_replay_is_marked_and_runs_nothing(world, api, key):
    client = api(world.admin_a, world.a)
    first = client.post(
        "/api/v1/event-types/", {"name": "a.b"}, format="json", HTTP_IDEMPOTENCY_KEY=key
    )
    again = client.post(
        "/api/v1/event-types/", {"name": "a.b"}, format="json", HTTP_IDEMPOTENCY_KEY=key
    )
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true" and "Idempotent-Replayed" not in first


def test_a_malformed_key_is_a_400(world, api):
    client = api(world.admin_a, world.a)
    response = client.post(
        "/api/v1/event-types/", {"name": "a.b"}, format="json", HTTP_IDEMPOTENCY_KEY="x" * 300
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_idempotency_key"


def test_keys_belong_to_their_caller(world, api, key):
    admin, developer = api(world.admin_a, world.a), api(world.developer_a, world.a)
    body = {"name": "shop", "kind": "https"}
    assert admin.post("/api/v1/producers/", body, format="json", HTTP_IDEMPOTENCY_KEY=key)
    other = developer.post(
        "/api/v1/producers/", {**body, "name": "other"}, format="json", HTTP_IDEMPOTENCY_KEY=key
    )
    assert other.status_code == 201
    with tenant_context(world.a):
        assert Producer.objects.count() == 2


def test_the_one_time_api_key_is_not_kept_in_the_cache(world, api, key):
    client = api(world.admin_a, world.a)
    created = client.post(
        "/api/v1/producers/",
        {"name": "shop", "kind": "https"},
        format="json",
        HTTP_IDEMPOTENCY_KEY=key,
    ).json()
    import hashlib

    scope = f"{world.admin_a.pk}|/api/v1/producers/|{key}"
    with schema_context(world.a.schema_name):
        stored = cache.get("idempotency:" + hashlib.sha256(scope.encode()).hexdigest())
    assert stored["status"] == 201 and stored["data"]["id"] == created["id"]
    assert created["api_key"] and stored["data"]["api_key"] is None
    assert created["api_key"] not in str(stored)


def test_a_request_still_running_answers_409(world, api, key):
    import hashlib

    client = api(world.admin_a, world.a)
    scope = f"{world.admin_a.pk}|/api/v1/event-types/|{key}"
    lock = "idempotency:" + hashlib.sha256(scope.encode()).hexdigest() + ":lock"
    with schema_context(world.a.schema_name):
        cache.add(lock, 1, timeout=30)
    try:
        response = client.post(
            "/api/v1/event-types/", {"name": "a.b"}, format="json", HTTP_IDEMPOTENCY_KEY=key
        )
    finally:
        with schema_context(world.a.schema_name):
            cache.delete(lock)
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "idempotency_in_progress"
