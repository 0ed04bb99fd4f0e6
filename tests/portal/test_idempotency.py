"""Idempotency-Key on the tenant API's POSTs (Redis-backed, per caller)."""

import hashlib
import uuid
from dataclasses import dataclass

import pytest
from django.conf import settings
from django.core.cache import cache
from django_tenants.utils import schema_context, tenant_context
from redis import Redis
from rest_framework import viewsets
from rest_framework.decorators import action
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.test import APIRequestFactory, force_authenticate

from broker.models import Producer
from core import idempotency
from core.errors import ApplicationError, error_body
from core.idempotency import IdempotentMixin

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
    scope = f"{world.admin_a.pk}|/api/v1/producers/|{key}"
    with schema_context(world.a.schema_name):
        stored = cache.get("idempotency:" + hashlib.sha256(scope.encode()).hexdigest())
    assert stored["status"] == 201 and stored["data"]["id"] == created["id"]
    assert created["api_key"] and stored["data"]["api_key"] is None
    assert created["api_key"] not in str(stored)


def test_a_request_still_running_answers_409(world, api, key):
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


# --- the mixin on its own: a tiny viewset, APIRequestFactory, the real Redis cache ---------

CALLS: list = []
SECRET_MARK = "one-time-secret-"


class Tiny(IdempotentMixin, viewsets.ViewSet):
    """Answers what the body asks for and counts how often it really ran."""

    permission_classes = [IsAuthenticated]
    throttle_classes = []
    idempotent_actions = ("create", "confirm")
    idempotency_redact = ("api_key",)

    def create(self, request):
        CALLS.append(request.data)
        if request.data.get("raise") == "invalid":
            raise ApplicationError("No.", code="refused")
        if request.data.get("raise") == "crash":
            raise RuntimeError("boom")
        status = request.data.get("status", 201)
        return Response(
            {"call": len(CALLS), "api_key": f"{SECRET_MARK}{uuid.uuid4()}"}, status=status
        )

    @action(detail=False, methods=["post"])
    def confirm(self, request):
        CALLS.append(request.data)
        return Response({"call": len(CALLS)})

    @action(detail=False, methods=["post"])
    def ping(self, request):
        CALLS.append(request.data)
        return Response({"call": len(CALLS)})


@dataclass(frozen=True)
class Caller:
    pk: int
    is_authenticated: bool = True


ALICE, BOB = Caller(pk=10_001), Caller(pk=10_002)


@pytest.fixture
def tiny():
    """tiny(body, key=None, user=ALICE, action="create") → the view's response."""
    CALLS.clear()
    factory = APIRequestFactory()

    def call(body, key=None, *, user=ALICE, action_name="create"):
        headers = {"HTTP_IDEMPOTENCY_KEY": key} if key is not None else {}
        request = factory.post(f"/tiny/{action_name}/", body, format="json", **headers)
        force_authenticate(request, user=user)
        response = Tiny.as_view({"post": action_name})(request)
        response.render()
        return response

    return call


def _stored(user, action_name, key):
    scope = f"{user.pk}|/tiny/{action_name}/|{key}"
    return cache.get("idempotency:" + hashlib.sha256(scope.encode()).hexdigest())


def test_the_same_key_and_body_run_the_handler_once(tiny, key):
    first = tiny({"a": 1, "b": [1, 2]}, key)
    again = tiny({"b": [1, 2], "a": 1}, key)  # the same body, keys in another order
    assert len(CALLS) == 1
    assert first.status_code == again.status_code == 201
    assert again.data["call"] == first.data["call"] == 1
    assert again["Idempotent-Replayed"] == "true" and not first.has_header("Idempotent-Replayed")


def test_another_body_with_the_same_key_is_a_409(tiny, key):
    tiny({"a": 1}, key)
    other = tiny({"a": 2}, key)
    assert other.status_code == 409
    assert other.data == error_body(
        "idempotency_key_reused", "This Idempotency-Key was used with another request body."
    )
    assert len(CALLS) == 1


def test_without_a_key_the_handler_runs_every_time(tiny):
    assert [tiny({"a": 1}).data["call"] for _ in range(3)] == [1, 2, 3]


@pytest.mark.parametrize("bad", ["", "x" * 256, "naïve", "tab\there", "with space"])
def test_a_malformed_key_is_refused_before_the_handler_runs(tiny, bad):
    response = tiny({"a": 1}, bad)
    assert response.status_code == 400
    assert response.data["error"]["code"] == "invalid_idempotency_key"
    assert CALLS == []


def test_the_longest_key_is_accepted(tiny):
    assert tiny({"a": 1}, "k" * 255).status_code == 201


def test_a_5xx_is_not_kept_so_a_retry_runs_again(tiny, key):
    assert tiny({"status": 503}, key).status_code == 503
    assert _stored(ALICE, "create", key) is None
    retry = tiny({"status": 503}, key)
    assert retry.status_code == 503 and not retry.has_header("Idempotent-Replayed")
    assert len(CALLS) == 2


def test_a_crash_keeps_nothing_and_releases_the_key(tiny, key):
    with pytest.raises(RuntimeError):
        tiny({"raise": "crash"}, key)
    assert _stored(ALICE, "create", key) is None
    with pytest.raises(RuntimeError):
        tiny({"raise": "crash"}, key)  # not "in progress": the lock went with the crash
    assert len(CALLS) == 2


def test_a_4xx_is_kept_and_replayed(tiny, key):
    answered = tiny({"status": 404}, key)
    again = tiny({"status": 404}, key)
    assert answered.status_code == again.status_code == 404
    assert again["Idempotent-Replayed"] == "true" and len(CALLS) == 1


def test_a_raised_api_error_is_kept_and_replayed_in_the_error_shape(tiny, key):
    refused = tiny({"raise": "invalid"}, key)
    again = tiny({"raise": "invalid"}, key)
    assert refused.status_code == again.status_code == 400
    assert refused.data == again.data == error_body("refused", "No.")
    assert again["Idempotent-Replayed"] == "true" and len(CALLS) == 1


def _values(redis, key) -> bytes:
    """Every value stored under a Redis key, whatever its type (throttles keep sorted sets)."""
    kind = redis.type(key)
    if kind == b"string":
        return redis.get(key) or b""
    if kind == b"hash":
        return b"".join(k + v for k, v in redis.hgetall(key).items())
    if kind == b"list":
        return b"".join(redis.lrange(key, 0, -1))
    if kind == b"set":
        return b"".join(redis.smembers(key))
    if kind == b"zset":
        return b"".join(redis.zrange(key, 0, -1))
    return b""


def test_redacted_fields_never_reach_the_cache_and_replay_as_null(tiny, key):
    first = tiny({"a": 1}, key)
    secret = first.data["api_key"]
    assert secret.startswith(SECRET_MARK)
    assert _stored(ALICE, "create", key)["data"] == {"call": 1, "api_key": None}
    # nowhere in Redis, under whatever key
    redis = Redis.from_url(settings.REDIS_URL)
    assert not [k for k in redis.scan_iter(count=1000) if secret.encode() in _values(redis, k)]
    again = tiny({"a": 1}, key)
    assert again.data == {"call": 1, "api_key": None}


def test_keys_are_per_caller(tiny, key):
    mine, theirs = tiny({"a": 1}, key, user=ALICE), tiny({"a": 2}, key, user=BOB)
    assert mine.status_code == theirs.status_code == 201
    assert not theirs.has_header("Idempotent-Replayed") and len(CALLS) == 2


def test_keys_are_per_action(tiny, key):
    tiny({"a": 1}, key)
    confirmed = tiny({"a": 1}, key, action_name="confirm")
    assert confirmed.status_code == 200 and not confirmed.has_header("Idempotent-Replayed")
    assert len(CALLS) == 2


def test_post_actions_listed_in_idempotent_actions_honour_the_key(tiny, key):
    tiny({}, key, action_name="confirm")
    again = tiny({}, key, action_name="confirm")
    assert again["Idempotent-Replayed"] == "true" and len(CALLS) == 1


def test_other_actions_ignore_the_key(tiny, key):
    assert [tiny({}, key, action_name="ping").data["call"] for _ in range(2)] == [1, 2]
    assert [tiny({}, "not valid", action_name="ping").status_code for _ in range(2)] == [200, 200]


def test_a_request_still_running_gets_a_409_and_the_handler_does_not_run(tiny, key):
    scope = f"{ALICE.pk}|/tiny/create/|{key}"
    lock = "idempotency:" + hashlib.sha256(scope.encode()).hexdigest() + ":lock"
    cache.add(lock, 1, timeout=30)
    try:
        response = tiny({"a": 1}, key)
    finally:
        cache.delete(lock)
    assert response.status_code == 409
    assert response.data["error"]["code"] == "idempotency_in_progress"
    assert CALLS == []


class _FirstReadMisses:
    """The cache as seen by a retry whose first read ran just before the original request
    stored its response (and released its lock just after)."""

    def __init__(self, real):
        self.real, self.missed = real, False

    def get(self, key, *args, **kwargs):
        if not self.missed:
            self.missed = True
            return None
        return self.real.get(key, *args, **kwargs)

    def __getattr__(self, name):
        return getattr(self.real, name)


def test_a_retry_racing_the_first_response_replays_it(tiny, key, monkeypatch):
    first = tiny({"a": 1}, key)
    monkeypatch.setattr(idempotency, "cache", _FirstReadMisses(cache))
    again = tiny({"a": 1}, key)
    assert len(CALLS) == 1
    assert again["Idempotent-Replayed"] == "true" and again.data["call"] == first.data["call"]
