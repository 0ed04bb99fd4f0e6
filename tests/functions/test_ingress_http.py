"""The HTTPS ingress: answers, errors, routing and counters, on the in-process moto."""

from datetime import UTC, datetime, timedelta

import pytest

from broker.functions import aws, config, settings
from broker.functions.ingress import routing
from broker.functions.shared import records
from tests.helpers.functions import in_an_hour, new_queue, post, receive_all

ORDER = {"type": "order.created", "data": {"total": 12, "currency": "EUR"}}


@pytest.fixture
def shop(dataplane):
    """A silo tenant with one producer (and its key), one consumer, one route for orders."""
    t = dataplane.tenant()
    t.prod = t.producer()
    t.key = t.api_key(t.prod)
    t.cons = t.consumer()
    t.sub = t.route("order.created", t.cons)
    return t


def test_an_event_is_accepted_and_one_delivery_message_is_queued_per_subscription(shop):
    other = shop.consumer()
    other_sub = shop.route("order.*", other)
    status, body, _ = post(body={**ORDER, "time": "2026-11-30T10:00:00Z"}, key=shop.key)
    assert status == 202
    assert body["deliveries"] == 2 and body["id"].startswith("evt_")
    sent = shop.deliveries()
    assert {(m.delivery.consumer_id, m.delivery.subscription_id) for m in sent} == {
        (shop.cons.pk, shop.sub.pk),
        (other.pk, other_sub.pk),
    }
    for message in sent:
        d = message.delivery
        assert message.kind == "delivery"
        assert (d.tenant_id, d.producer_id, d.event_id, d.event_type) == (
            shop.tenant_id,
            shop.prod.pk,
            body["id"],
            "order.created",
        )
        assert (d.replay, d.attempt) == (0, 1)
        assert message.event == {
            "id": body["id"],
            "type": "order.created",
            "time": "2026-11-30T10:00:00Z",
            "data": ORDER["data"],
        }
    assert len({m.delivery.delivery_id for m in sent}) == 2


def test_the_key_may_also_come_in_x_api_key(shop):
    status, body, _ = post(body=ORDER, headers={"x-api-key": shop.key})
    assert status == 202 and body["deliveries"] == 1


def test_a_base64_encoded_body_is_read(shop):
    status, _, _ = post(body=ORDER, key=shop.key, base64_body=True)
    assert status == 202


def test_an_event_without_subscriptions_is_accepted_with_no_delivery(shop):
    status, body, _ = post(body={"type": "user.created", "data": {}}, key=shop.key)
    assert (status, body["deliveries"]) == (202, 0)
    assert shop.deliveries() == []


def test_errors_have_the_portals_error_shape(shop):
    from core.errors import error_body

    status, body, _ = post(body=ORDER, key="ebk_nope")
    assert status == 401
    assert body == error_body(
        "not_authenticated", body["error"]["message"], body["error"]["fields"]
    )


@pytest.mark.parametrize(
    ("path", "method", "status", "code"),
    [("/v1/nothing", "POST", 404, "not_found"), ("/v1/events", "GET", 405, "method_not_allowed")],
)
def test_unknown_paths_and_methods_are_refused(shop, path, method, status, code):
    got, body, _ = post(path, method=method, body=ORDER, key=shop.key)
    assert (got, body["error"]["code"]) == (status, code)


# --- authentication -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"authorization": "Bearer ebk_unknown"},
        {"authorization": "Basic dXNlcjpwYXNz"},
        {"x-api-key": "ebk_unknown"},
    ],
)
def test_a_missing_or_unknown_key_is_not_authenticated(shop, headers):
    status, body, _ = post(body=ORDER, headers=headers)
    assert (status, body["error"]["code"]) == (401, "not_authenticated")
    assert shop.deliveries() == []


def test_a_revoked_key_is_not_authenticated(shop):
    key = shop.api_key(shop.prod, revoked=True)  # the relay writes a tombstone
    status, body, _ = post(body=ORDER, key=key)
    assert (status, body["error"]["code"]) == (401, "not_authenticated")


def test_a_rotated_key_works_until_its_grace_period_ends(shop):
    old = shop.api_key(shop.prod, expires_at=in_an_hour())
    assert post(body=ORDER, key=old)[0] == 202
    ended = shop.api_key(
        shop.prod, expires_at=datetime.now(UTC) - timedelta(seconds=1), relayed_while_valid=True
    )
    status, body, _ = post(body=ORDER, key=ended)
    assert (status, body["error"]["code"]) == (401, "not_authenticated")


def test_an_offboarded_tenants_keys_are_gone(shop):
    from broker.sync import contract
    from tests.helpers.functions import put_item

    put_item(contract.tombstone(pk="TENANT#" + shop.tenant_id, sk="TENANT", version=99))
    config.clear()
    assert post(body=ORDER, key=shop.key)[0] == 401


def test_a_disabled_producer_is_forbidden(dataplane):
    t = dataplane.tenant()
    key = t.api_key(t.producer(enabled=False))
    status, body, _ = post(body=ORDER, key=key)
    assert (status, body["error"]["code"]) == (403, "forbidden")


def test_a_suspended_tenant_is_forbidden(shop):
    shop.write_tenant(status="suspended")
    config.clear()
    status, body, _ = post(body=ORDER, key=shop.key)
    assert (status, body["error"]["code"]) == (403, "forbidden")
    assert shop.deliveries() == []


def test_a_type_the_producer_may_not_send_is_forbidden(dataplane):
    t = dataplane.tenant()
    key = t.api_key(t.producer(allowed_event_types=["order.*", "user.created"]))
    assert post(body={"type": "order.paid.late", "data": {}}, key=key)[0] == 202
    assert post(body={"type": "user.created", "data": {}}, key=key)[0] == 202
    status, body, _ = post(body={"type": "user.deleted", "data": {}}, key=key)
    assert (status, body["error"]["code"]) == (403, "forbidden")
    assert "type" in body["error"]["fields"]


# --- malformed and invalid events -------------------------------------------------------------


def test_a_body_that_is_not_json_is_a_parse_error(shop):
    status, body, _ = post(body='{"type": ', key=shop.key)
    assert (status, body["error"]["code"]) == (400, "parse_error")


@pytest.mark.parametrize(
    ("event", "field"),
    [
        ({"data": {}}, "type"),
        ({"type": "Order Created", "data": {}}, "type"),
        ({"type": "order.created"}, "data"),
        ({"type": "order.created", "data": {}, "id": "x" * 129}, "id"),
        ({"type": "order.created", "data": {}, "id": 7}, "id"),
        ({"type": "order.created", "data": {}, "time": "yesterday"}, "time"),
        ({"type": "order.created", "data": {}, "time": "2026-11-30T10:00:00"}, "time"),
        ({"type": "order.created", "data": {}, "time": "2026-13-30T10:00:00Z"}, "time"),
        ({"type": "order.created", "data": {}, "source": "x"}, "source"),
    ],
)
def test_an_invalid_envelope_is_refused_with_the_field(shop, event, field):
    status, body, _ = post(body=event, key=shop.key)
    assert (status, body["error"]["code"]) == (400, "invalid")
    assert field in body["error"]["fields"]
    assert shop.deliveries() == []


def test_an_event_that_is_not_an_object_is_invalid(shop):
    status, body, _ = post(body=[1, 2], key=shop.key)
    assert (status, body["error"]["code"]) == (400, "invalid")


def test_data_must_match_the_event_types_schema(shop):
    shop.event_type(
        "order.created",
        {
            "type": "object",
            "required": ["total"],
            "properties": {"total": {"type": "number", "minimum": 0}},
        },
    )
    assert post(body=ORDER, key=shop.key)[0] == 202
    status, body, _ = post(body={"type": "order.created", "data": {"total": -1}}, key=shop.key)
    assert (status, body["error"]["code"]) == (400, "schema_mismatch")
    assert "total" in body["error"]["fields"]["data"][0]
    assert len(shop.deliveries()) == 1


def test_an_event_over_the_tenants_size_limit_is_too_large(dataplane):
    t = dataplane.tenant(quotas={"max_event_size_bytes": 1024})
    key = t.api_key(t.producer())
    ok = {"type": "a.b", "data": {"x": "y" * 900}}
    assert post(body=ok, key=key)[0] == 202
    status, body, _ = post(body={"type": "a.b", "data": {"x": "y" * 1100}}, key=key)
    assert (status, body["error"]["code"]) == (413, "too_large")


def test_no_tier_raises_the_event_size_above_256_kb(dataplane):
    t = dataplane.tenant(quotas={"max_event_size_bytes": 10 * 1024 * 1024})
    key = t.api_key(t.producer())
    status, body, _ = post(body={"type": "a.b", "data": "y" * (257 * 1024)}, key=key)
    assert (status, body["error"]["code"]) == (413, "too_large")


# --- rate and quota ---------------------------------------------------------------------------


@pytest.fixture
def clock(monkeypatch):
    """The rate limiter's clock, stopped early in a window (no test depends on timing)."""
    from types import SimpleNamespace

    from broker.functions.ingress import limits

    now = SimpleNamespace(value=3_000_000_000.1)
    monkeypatch.setattr(limits, "time", SimpleNamespace(time=lambda: now.value))
    return now


def test_over_the_producers_burst_is_rate_limited_with_retry_after(shop, clock):
    key = shop.api_key(shop.producer(rate=1, burst=3))
    answers = [post(body=ORDER, key=key) for _ in range(4)]
    assert [a[0] for a in answers[:3]] == [202, 202, 202]
    status, body, headers = answers[3]
    assert (status, body["error"]["code"]) == (429, "rate_limited")
    assert headers["retry-after"] == "3"  # the rest of the 3-second window


def test_the_previous_window_still_counts_for_the_part_the_sliding_window_covers(shop, clock):
    key = shop.api_key(shop.producer(rate=2, burst=4))  # windows of 2 s, 4 events each
    assert post("/v1/events/batch", body=[ORDER] * 4, key=key)[0] == 202
    clock.value += 2.5  # 30 % into the next window: 70 % of the last one (2.8 → 2) counts
    assert post("/v1/events/batch", body=[ORDER] * 2, key=key)[0] == 202
    assert post(body=ORDER, key=key)[0] == 429
    clock.value += 1.0  # 80 % in: the last window counts for 0.8 → 0, this one for 2
    assert post("/v1/events/batch", body=[ORDER] * 2, key=key)[0] == 202
    assert post(body=ORDER, key=key)[0] == 429


def test_the_rate_counter_is_shared_by_every_instance(shop, clock):
    """A second function instance (fresh memory, same table) sees the first one's count."""
    key = shop.api_key(shop.producer(rate=1, burst=2))
    assert post(body=ORDER, key=key)[0] == 202
    from broker.functions.ingress import limits

    limits._windows.clear()
    config.clear()
    assert post(body=ORDER, key=key)[0] == 202
    limits._windows.clear()
    assert post(body=ORDER, key=key)[0] == 429


def test_a_refused_request_does_not_use_up_the_rate(shop, clock):
    key = shop.api_key(shop.producer(rate=1, burst=5))
    big = [ORDER] * 4
    assert post("/v1/events/batch", body=big, key=key)[0] == 202
    assert post("/v1/events/batch", body=big, key=key)[0] == 429
    assert post(body=ORDER, key=key)[0] == 202  # the 4 refused events were not counted


def test_over_the_daily_quota_is_refused_until_midnight(dataplane):
    t = dataplane.tenant(quotas={"daily_event_quota": 2})
    key = t.api_key(t.producer())
    assert post(body=ORDER, key=key)[0] == 202
    assert post(body=ORDER, key=key)[0] == 202
    status, body, headers = post(body=ORDER, key=key)
    assert (status, body["error"]["code"]) == (429, "quota_exceeded")
    assert 1 <= int(headers["retry-after"]) <= 86_400


# --- producer ids ------------------------------------------------------------------------------


def test_a_repeated_producer_id_is_answered_again_and_not_routed_twice(shop):
    event = {**ORDER, "id": "order-1001"}
    status, first, _ = post(body=event, key=shop.key)
    assert status == 202 and "duplicate" not in first
    status, again, _ = post(body=event, key=shop.key)
    assert status == 202
    assert again == {**first, "duplicate": True}
    (message,) = shop.deliveries()
    assert message.event["source_id"] == "order-1001"
    assert message.event["id"] == first["id"]


def test_producer_ids_are_per_producer(shop):
    other = shop.api_key(shop.producer())
    event = {**ORDER, "id": "same"}
    assert "duplicate" not in post(body=event, key=shop.key)[1]
    assert "duplicate" not in post(body=event, key=other)[1]
    assert len(shop.deliveries()) == 2


# --- routing ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "event_type", "routed"),
    [
        ("order.created", "order.created", True),
        ("order.created", "order.created.v2", False),
        ("order.*", "order.created", True),
        ("order.*", "order.refund.created", True),
        ("order.*", "orders.created", False),
        ("*", "anything.at.all", True),
    ],
)
def test_subscriptions_match_exact_prefix_and_wildcard_types(
    dataplane, pattern, event_type, routed
):
    t = dataplane.tenant()
    key = t.api_key(t.producer())
    t.route(pattern, t.consumer())
    status, body, _ = post(body={"type": event_type, "data": {}}, key=key)
    assert (status, body["deliveries"]) == (202, int(routed))
    assert len(t.deliveries()) == int(routed)


def test_a_producer_restricted_subscription_takes_only_that_producers_events(shop):
    other = shop.producer()
    other_key = shop.api_key(other)
    restricted = shop.consumer()
    shop.route("order.created", restricted, producer=other)
    post(body=ORDER, key=shop.key)
    assert {m.delivery.consumer_id for m in shop.deliveries()} == {shop.cons.pk}
    post(body=ORDER, key=other_key)
    assert {m.delivery.consumer_id for m in shop.deliveries()} == {shop.cons.pk, restricted.pk}


def test_the_payload_filter_decides(dataplane):
    t = dataplane.tenant()
    key = t.api_key(t.producer())
    t.route("order.created", t.consumer(), filter={"data": {"total": [{"numeric": [">", 100]}]}})
    assert post(body={"type": "order.created", "data": {"total": 5}}, key=key)[1]["deliveries"] == 0
    assert t.deliveries() == []
    assert (
        post(body={"type": "order.created", "data": {"total": 500}}, key=key)[1]["deliveries"] == 1
    )
    assert len(t.deliveries()) == 1


def test_disabled_subscriptions_and_disabled_or_missing_consumers_get_nothing(shop):
    shop.route("order.created", shop.consumer(), enabled=False)
    shop.route("order.created", shop.consumer(enabled=False))
    from types import SimpleNamespace

    shop.route("order.created", SimpleNamespace(pk="no-such-consumer"))
    status, body, _ = post(body=ORDER, key=shop.key)
    assert (status, body["deliveries"]) == (202, 1)
    assert [m.delivery.consumer_id for m in shop.deliveries()] == [shop.cons.pk]


def test_a_tenants_key_never_reaches_another_tenants_consumers(dataplane):
    a, b = dataplane.tenant(), dataplane.tenant()
    a_key = a.api_key(a.producer())
    b.route("*", b.consumer())
    a.route("*", a.consumer())
    status, body, _ = post(body=ORDER, key=a_key)
    assert (status, body["deliveries"]) == (202, 1)
    assert b.deliveries() == []
    assert {m.delivery.tenant_id for m in a.deliveries()} == {a.tenant_id}


def test_a_pool_tenants_deliveries_go_to_its_shard_queues(dataplane):
    t = dataplane.tenant(model="pool", queues=[new_queue()[0] for _ in range(3)])
    key = t.api_key(t.producer())
    t.route("*", t.consumer())
    for _ in range(6):
        assert post(body=ORDER, key=key)[0] == 202
    assert len(t.deliveries()) == 6


def test_a_pool_tenants_batch_request_is_spread_over_its_shard_queues(dataplane):
    queues = [new_queue()[0] for _ in range(4)]
    t = dataplane.tenant(model="pool", queues=queues)
    key = t.api_key(t.producer())
    t.route("*", t.consumer())
    status, _, _ = post("/v1/events/batch", body=[ORDER] * 100, key=key)
    assert status == 202
    per_queue = [len(receive_all(url)) for url in queues]
    # one queue drawn per SendMessageBatch call of 10: all ten on one queue is (1/4)^9
    assert sum(per_queue) == 100 and max(per_queue) < 100
    assert all(n % 10 == 0 for n in per_queue)


def test_a_tenant_without_a_delivery_queue_is_answered_unavailable(dataplane):
    t = dataplane.tenant(queues=[])
    t.write_tenant(queue_urls=[])
    key = t.api_key(t.producer())
    t.route("*", t.consumer())
    status, body, _ = post(body={**ORDER, "id": "x-1"}, key=key)
    assert (status, body["error"]["code"]) == (503, "unavailable")
    t.write_tenant(queue_urls=[new_queue()[0]])
    config.clear()
    status, body, _ = post(body={**ORDER, "id": "x-1"}, key=key)
    assert status == 202 and "duplicate" not in body  # the failed attempt was forgotten


# --- batches --------------------------------------------------------------------------------------


def test_a_batch_answers_one_result_per_event_in_order(dataplane):
    t = dataplane.tenant()
    key = t.api_key(t.producer(allowed_event_types=["order.*"]))
    t.route("order.*", t.consumer())
    status, body, _ = post(
        "/v1/events/batch",
        body=[
            ORDER,
            {"type": "order.created"},
            {"type": "user.created", "data": {}},
            {**ORDER, "id": "b-1"},
            {**ORDER, "id": "b-1"},
        ],
        key=key,
    )
    assert status == 202
    r = body["results"]
    assert len(r) == 5
    assert r[0]["deliveries"] == 1
    assert r[1]["error"]["code"] == "invalid"
    assert r[2]["error"]["code"] == "forbidden"
    assert r[3]["deliveries"] == 1 and "duplicate" not in r[3]
    assert r[4] == {**r[3], "duplicate": True}
    assert len(t.deliveries()) == 2


def test_a_batch_may_also_be_an_object_with_events(shop):
    status, body, _ = post("/v1/events/batch", body={"events": [ORDER, ORDER]}, key=shop.key)
    assert status == 202 and len(body["results"]) == 2


@pytest.mark.parametrize(
    ("payload", "status", "code"),
    [
        ([], 400, "invalid"),
        ({"type": "a.b", "data": {}}, 400, "invalid"),
        ([ORDER] * 101, 413, "too_large"),
        ([{"type": "a.b", "data": "x" * 200_000}] * 6, 413, "too_large"),
    ],
)
def test_a_malformed_or_oversized_batch_is_one_error(shop, payload, status, code):
    got, body, _ = post("/v1/events/batch", body=payload, key=shop.key)
    assert (got, body["error"]["code"]) == (status, code)
    assert shop.deliveries() == []


def test_a_large_batch_is_sent_ten_messages_a_call(shop, monkeypatch):
    client = aws.sqs()
    calls = []
    real = client.send_message_batch

    def counting(**kwargs):
        calls.append(len(kwargs["Entries"]))
        return real(**kwargs)

    monkeypatch.setattr(client, "send_message_batch", counting)
    status, body, _ = post("/v1/events/batch", body=[ORDER] * 25, key=shop.key)
    assert status == 202 and all(r["deliveries"] == 1 for r in body["results"])
    assert calls == [10, 10, 5]
    assert len(shop.deliveries()) == 25


def test_messages_sqs_refuses_are_retried_once_then_their_events_answer_503(shop, monkeypatch):
    client = aws.sqs()
    real = client.send_message_batch
    refuse = {"rounds": 0}

    def flaky(**kwargs):
        refuse["rounds"] += 1
        entries = kwargs["Entries"]
        # First round: SQS refuses entries 1 and 2; second round: it refuses entry 2 again.
        bad = {"1", "2"} if refuse["rounds"] == 1 else {"2"}
        out = real(QueueUrl=kwargs["QueueUrl"], Entries=[e for e in entries if e["Id"] not in bad])
        out["Failed"] = [
            {"Id": e["Id"], "SenderFault": False, "Code": "InternalError"}
            for e in entries
            if e["Id"] in bad
        ]
        return out

    monkeypatch.setattr(client, "send_message_batch", flaky)
    status, body, _ = post(
        "/v1/events/batch", body=[ORDER, ORDER, {**ORDER, "id": "third"}], key=shop.key
    )
    r = body["results"]
    assert status == 202
    assert "deliveries" in r[0] and "deliveries" in r[1]
    assert r[2]["error"]["code"] == "unavailable"
    assert len(shop.deliveries()) == 2
    monkeypatch.setattr(client, "send_message_batch", real)
    status, body, _ = post(body={**ORDER, "id": "third"}, key=shop.key)
    assert status == 202 and "duplicate" not in body


# --- caching and counters ---------------------------------------------------------------------------


def test_a_warm_ingress_reads_nothing_from_dynamodb_per_event(shop):
    shop.event_type("order.created", {"type": "object"})
    assert post(body=ORDER, key=shop.key)[0] == 202
    before = dict(config.reads)
    for _ in range(5):
        assert post(body=ORDER, key=shop.key)[0] == 202
    post("/v1/events/batch", body=[ORDER] * 10, key=shop.key)
    assert config.reads == before


def test_a_config_change_is_seen_once_the_cache_expires(shop, monkeypatch):
    assert post(body=ORDER, key=shop.key)[0] == 202
    shop.write_tenant(status="suspended")
    assert post(body=ORDER, key=shop.key)[0] == 202  # cached
    monkeypatch.setenv("CONFIG_CACHE_TTL_SECONDS", "0")
    settings.reload()
    config.clear()
    assert post(body=ORDER, key=shop.key)[0] == 403


def test_each_request_counts_ingested_routed_and_rejected_events_per_minute(shop):
    post("/v1/events/batch", body=[ORDER, ORDER, {"type": "x"}], key=shop.key)
    pk, sk = records.tenant_stats_key(shop.tenant_id, records.minute())
    item = aws.dynamodb().get_item(
        TableName=settings.get().dataplane_table, Key={"PK": {"S": pk}, "SK": {"S": sk}}
    )["Item"]
    assert (item["ingested"]["N"], item["routed"]["N"], item["rejected"]["N"]) == ("2", "2", "1")
    assert int(item["ttl"]["N"]) > datetime.now(UTC).timestamp()


def test_routing_module_chunks_by_bytes_too():
    entries = [{"Id": str(i), "MessageBody": "x" * 300_000} for i in range(7)]
    assert [len(c) for c in routing._chunks(entries)] == [3, 3, 1]


def test_a_failing_dynamodb_answers_503_with_retry_after(shop, monkeypatch):
    from botocore.exceptions import ClientError

    client = aws.dynamodb()

    def throttled(**kwargs):
        raise ClientError(
            {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow"}},
            "UpdateItem",
        )

    monkeypatch.setattr(client, "update_item", throttled)
    status, body, headers = post(body=ORDER, key=shop.key)
    assert (status, body["error"]["code"], headers["retry-after"]) == (503, "unavailable", "1")
    assert shop.deliveries() == []
