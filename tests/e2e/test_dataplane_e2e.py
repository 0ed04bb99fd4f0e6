"""The data plane end to end, on the moto server: configuration made through the portal's
services and written by the relay, the real local runner (ingress + pollers + egress) in its
own process, and the demo receiver as a real HTTP consumer."""

import json
import time
import uuid

import pytest
from django.conf import settings as django_settings
from django_tenants.utils import tenant_context
from standardwebhooks import Webhook

from broker import services
from broker.functions.shared import messages
from broker.sync import contract, dynamo, relay
from core import aws
from tests.helpers.e2e import Runner, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.django_db]

ORDER = {"type": "order.created", "data": {"order_id": "A-1", "total": 42.5}}


@pytest.fixture(scope="module")
def runner(moto_server, tmp_path_factory):
    log = tmp_path_factory.mktemp("runner") / "runner.log"
    r = Runner(
        aws_endpoint=moto_server,
        log=log,
        RUNNER_WAIT_SECONDS=2,
        RUNNER_DISCOVER_SECONDS=0.5,
    )
    yield r
    assert r.stop() == 0, log.read_text()[-3000:]


@pytest.fixture
def dp(live_aws, runner, receiver, world, settings):
    """Tenants a and b on the moto server (their TENANT items), the receiver as a private
    target; yields a helper to configure a tenant and read what arrived."""
    settings.CONSUMER_PRIVATE_TARGETS = ("127.0.0.1:8200-8299",)
    # PostgreSQL is rolled back after each test, the moto server is not: forget the previous
    # tests' items of tenants a and b, and let the runner's cache (1 s here) forget them too.
    ddb, table, stale = aws.dynamodb(), django_settings.DYNAMODB_CONFIG_TABLE, False
    for tenant in (world.a, world.b):
        for item in dynamo.query_partition(contract.tenant_pk(tenant.pk)):
            if item["SK"] != "TENANT":
                ddb.delete_item(
                    TableName=table, Key={"PK": {"S": item["PK"]}, "SK": {"S": item["SK"]}}
                )
                stale = True
        dynamo.put_versioned(contract.tenant_item(tenant))
    if stale:
        time.sleep(1.2)
    yield Plane(world, runner, receiver)


class Plane:
    def __init__(self, world, runner, receiver):
        self.world, self.runner, self.receiver = world, runner, receiver
        self.tag = uuid.uuid4().hex[:8]  # paths of this test only

    def url(self, path: str) -> str:
        return f"{self.receiver.url}/{path.strip('/')}/{self.tag}"

    def setup(self, tenant, admin, *, path="hooks", event_type="order.*", url=None, **consumer):
        """A producer (its key), an https consumer on the receiver (or at `url`) and a
        subscription."""
        with tenant_context(tenant):
            producer, key = services.producer_create(
                actor=admin, name=f"p-{uuid.uuid4().hex[:6]}", kind="https"
            )
            filter_ = consumer.pop("filter", None)
            created, secret = services.consumer_create(
                actor=admin,
                name=f"c-{uuid.uuid4().hex[:6]}",
                kind="https",
                url=url or self.url(path),
                **consumer,
            )
            sub = services.subscription_create(
                actor=admin, consumer=created, event_type=event_type, filter=filter_
            )
        relay.drain()
        return producer, key, created, secret, sub

    def send(self, key: str, event=ORDER, path="/v1/events"):
        return self.runner.post(path, event, headers={"Authorization": f"Bearer {key}"})

    def received(self, path: str) -> list[dict]:
        wanted = f"/{path.strip('/')}/{self.tag}"
        return [m for m in reversed(self.receiver.messages()) if m["path"] == wanted]


def test_an_https_producers_event_reaches_the_consumer_signed_and_verifiable(dp):
    w = dp.world
    producer, key, consumer, secret, sub = dp.setup(w.a, w.admin_a)
    status, answer, _ = dp.send(key)
    assert status == 202 and answer["deliveries"] == 1, answer

    (got,) = wait_for(lambda: dp.received("hooks"), timeout=10)
    headers = {k: got[k.replace("-", "_")] for k in ("webhook-id", "webhook-timestamp")}
    headers["webhook-signature"] = got["webhook_signature"]
    event = Webhook(secret).verify(got["body"].encode(), headers)
    assert event["id"] == answer["id"] and event["type"] == "order.created"
    assert event["data"] == ORDER["data"]
    assert got["webhook_id"].startswith("msg_") and got["status"] == 200


def test_an_event_the_filter_does_not_match_is_delivered_to_nobody(dp):
    w = dp.world
    producer, key, _, _, _ = dp.setup(
        w.a, w.admin_a, path="filtered", filter={"data": {"total": [{"numeric": [">", 100]}]}}
    )
    with tenant_context(w.a):
        witness, _ = services.consumer_create(
            actor=w.admin_a, name=f"w-{dp.tag}", kind="https", url=dp.url("witness")
        )
        services.subscription_create(actor=w.admin_a, consumer=witness, event_type="order.*")
    relay.drain()

    status, answer, _ = dp.send(key)  # total 42.5: not > 100
    assert status == 202 and answer["deliveries"] == 1
    assert wait_for(lambda: dp.received("witness"), timeout=10)
    assert dp.received("filtered") == []


def test_an_sqs_producers_message_reaches_an_sqs_consumers_queue(dp):
    w = dp.world
    sqs = aws.sqs()
    # Tenants' queues carry the stack's TenantQueuePrefix (the roles allow no other), and a
    # source queue's visibility is at least the SQS producer function's timeout (60 s), or
    # AWS refuses to map it.
    source = sqs.create_queue(
        QueueName=f"tenant-e2e-src-{dp.tag}", Attributes={"VisibilityTimeout": "360"}
    )["QueueUrl"]
    sink = sqs.create_queue(QueueName=f"tenant-e2e-sink-{dp.tag}")["QueueUrl"]
    try:
        with tenant_context(w.a):
            producer, _ = services.producer_create(
                actor=w.admin_a,
                name=f"sqs-{dp.tag}",
                kind="sqs",
                source_queue_arn=aws.queue_arn(source),
            )
            consumer, _ = services.consumer_create(
                actor=w.admin_a, name=f"sink-{dp.tag}", kind="sqs", queue_arn=aws.queue_arn(sink)
            )
            services.subscription_create(actor=w.admin_a, consumer=consumer, event_type="order.*")
        relay.drain()
        # Provisioning mapped the source queue to the SQS producer function: that is what the
        # runner polls, as Lambda would.
        (mapping,) = aws.mappings_of_queue(aws.queue_arn(source))
        assert mapping["FunctionArn"] == django_settings.SQS_PRODUCER_FUNCTION_ARN
        assert mapping["State"] == "Enabled"
        sqs.send_message(QueueUrl=source, MessageBody=json.dumps({**ORDER, "id": "src-1"}))

        def arrived():
            return sqs.receive_message(
                QueueUrl=sink, WaitTimeSeconds=1, MessageAttributeNames=["All"]
            ).get("Messages")

        (message,) = wait_for(arrived, timeout=15)
        body = json.loads(message["Body"])
        event = body.get("event", body)
        assert event["type"] == "order.created" and event["data"] == ORDER["data"]

        # The runner deletes the source message once the handler has routed it.
        def source_left():
            a = sqs.get_queue_attributes(QueueUrl=source, AttributeNames=["All"])["Attributes"]
            return int(a["ApproximateNumberOfMessages"]) + int(
                a["ApproximateNumberOfMessagesNotVisible"]
            )

        assert wait_for(lambda: source_left() == 0, timeout=5)
    finally:
        aws.mapping_delete(queue_arn=aws.queue_arn(source))
        sqs.delete_queue(QueueUrl=source)
        sqs.delete_queue(QueueUrl=sink)


def test_a_failing_consumer_is_retried_per_its_schedule_then_the_dlq_message_carries_everything(
    dp,
):
    w = dp.world
    producer, key, consumer, _, sub = dp.setup(
        w.a, w.admin_a, path="fail", retry_policy={"strategy": "schedule", "schedule": [1, 1]}
    )
    status, answer, _ = dp.send(key, {**ORDER, "id": f"mine-{dp.tag}"})
    assert status == 202 and answer["deliveries"] == 1

    sqs = aws.sqs()
    dlq = aws.queue_url(f"{django_settings.SQS_QUEUE_PREFIX}-dlq")

    def dead_letter():
        for m in sqs.receive_message(
            QueueUrl=dlq, MaxNumberOfMessages=10, WaitTimeSeconds=1, MessageAttributeNames=["All"]
        ).get("Messages", []):
            if m["MessageAttributes"]["consumer_id"]["StringValue"] == str(consumer.pk):
                sqs.delete_message(QueueUrl=dlq, ReceiptHandle=m["ReceiptHandle"])
                return m
            sqs.change_message_visibility(
                QueueUrl=dlq, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=0
            )
        return None

    message = wait_for(dead_letter, timeout=15)
    assert message is not None
    letter = messages.parse(message["Body"])
    d, f = letter.delivery, letter.failure
    assert letter.kind == messages.DEAD_LETTER
    assert (d.tenant_id, d.consumer_id, d.subscription_id, d.producer_id) == (
        str(w.a.pk),
        str(consumer.pk),
        str(sub.pk),
        str(producer.pk),
    )
    assert d.event_id == answer["id"] and d.event_type == "order.created"
    assert d.delivery_id.startswith("msg_") and d.replay == 0
    assert f.attempts == 3 and f.last_status == 503 and f.error_kind == messages.ERROR_HTTP
    assert f.first_attempt_at < f.last_attempt_at <= f.dead_lettered_at and f.last_error
    assert letter.event["data"] == ORDER["data"] and letter.event["source_id"] == f"mine-{dp.tag}"
    assert message["MessageAttributes"]["tenant_id"]["StringValue"] == str(w.a.pk)
    # Three POSTs of the same delivery: one webhook-id.
    posts = dp.received("fail")
    assert len(posts) == 3 and {p["webhook_id"] for p in posts} == {d.delivery_id}


def test_a_configuration_change_reaches_the_ingress_within_the_cache_ttl(dp):
    w = dp.world
    producer, key, *_ = dp.setup(w.a, w.admin_a)
    assert dp.send(key)[0] == 202  # now cached by the runner's ingress
    with tenant_context(w.a):
        services.producer_update(actor=w.admin_a, producer=producer, enabled=False)
    relay.drain()
    # CONFIG_CACHE_TTL_SECONDS is 1 in this runner: refused a moment later.
    assert wait_for(lambda: dp.send(key)[0] == 403, timeout=5, interval=0.2)
    status, answer, _ = dp.send(key)
    assert status == 403 and answer["error"]["code"] == "forbidden"


def test_one_slow_pool_consumer_does_not_delay_another_tenants_deliveries(dp):
    """Tenant a's consumer answers after a second and may have one delivery in flight; ten of
    its events are queued first. Tenant b's event still arrives before a's second one."""
    w = dp.world
    _, key_a, *_ = dp.setup(w.a, w.admin_a, path="slow/1000", delivery_concurrency=1)
    _, key_b, *_ = dp.setup(w.b, w.admin_b, path="quick")
    batch = {"events": [ORDER] * 10}
    status, answer, _ = dp.send(key_a, batch, path="/v1/events/batch")
    assert status == 202 and all(r.get("deliveries") == 1 for r in answer["results"]), answer
    assert wait_for(lambda: dp.received("slow/1000"), timeout=10)  # a's consumer is busy
    assert dp.send(key_b)[0] == 202

    assert wait_for(lambda: dp.received("quick"), timeout=10)
    assert len(dp.received("slow/1000")) <= 2  # a's backlog did not hold b's delivery
    # Drain: a's remaining deliveries would keep the shared pollers busy for the next tests.
    sqs = aws.sqs()
    for url in sqs.list_queues(QueueNamePrefix=f"{django_settings.SQS_QUEUE_PREFIX}-delivery-")[
        "QueueUrls"
    ]:
        sqs.purge_queue(QueueUrl=url)


def test_a_producer_restricted_subscription_only_gets_that_producers_events(dp):
    w = dp.world
    chosen, key, consumer, _, sub = dp.setup(w.a, w.admin_a, path="restricted")
    with tenant_context(w.a):
        services.subscription_update(actor=w.admin_a, subscription=sub, producer=chosen)
        _, other_key = services.producer_create(actor=w.admin_a, name=f"o-{dp.tag}", kind="https")
    relay.drain()
    status, answer, _ = dp.send(other_key)
    assert status == 202 and answer["deliveries"] == 0
    status, answer, _ = dp.send(key)
    assert status == 202 and answer["deliveries"] == 1
    (got,) = wait_for(lambda: dp.received("restricted"), timeout=10)
    assert json.loads(got["body"])["id"] == answer["id"]


def test_an_event_sent_twice_with_the_producers_id_is_delivered_once(dp):
    w = dp.world
    _, key, *_ = dp.setup(w.a, w.admin_a, path="once")
    event = {**ORDER, "id": f"order-{dp.tag}"}
    first = dp.send(key, event)[1]
    second = dp.send(key, event)[1]
    assert second == {**first, "duplicate": True}
    assert wait_for(lambda: dp.received("once"), timeout=10)
    time.sleep(1)  # a second delivery would have arrived by now
    assert len(dp.received("once")) == 1


def test_tenant_as_events_never_reach_tenant_bs_consumers(dp):
    w = dp.world
    _, key_a, *_ = dp.setup(w.a, w.admin_a, path="tenant-a")
    dp.setup(w.b, w.admin_b, path="tenant-b")
    assert dp.send(key_a)[1]["deliveries"] == 1
    assert wait_for(lambda: dp.received("tenant-a"), timeout=10)
    time.sleep(1)
    assert dp.received("tenant-b") == []


def test_a_delivery_message_sqs_hands_out_twice_is_posted_once(dp):
    w = dp.world
    producer, _, consumer, _, sub = dp.setup(w.a, w.admin_a, path="dup")
    event = messages.event_body(
        event_id=f"evt_{uuid.uuid4().hex}",
        type_="order.created",
        time=messages.now_iso(),
        data=ORDER["data"],
        source_id=None,
    )
    delivery = messages.Delivery(
        delivery_id=messages.new_delivery_id(),
        tenant_id=str(w.a.pk),
        consumer_id=str(consumer.pk),
        subscription_id=str(sub.pk),
        producer_id=str(producer.pk),
        event_id=event["id"],
        event_type=event["type"],
    )
    message = messages.delivery_message(delivery, event)
    queue = aws.queue_url(w.a.delivery_queues[0].rsplit("/", 1)[-1])
    for _ in range(2):  # the same message twice, as SQS may deliver it
        aws.sqs().send_message(
            QueueUrl=queue, MessageBody=message.body(), MessageAttributes=message.attributes()
        )
    assert wait_for(lambda: dp.received("dup"), timeout=10)
    time.sleep(1.5)
    posts = dp.received("dup")
    assert len(posts) == 1 and posts[0]["webhook_id"] == delivery.delivery_id


def test_the_ingress_answers_errors_in_the_portals_shape(dp):
    w = dp.world
    _, key, *_ = dp.setup(w.a, w.admin_a, path="errors")
    with tenant_context(w.a):
        services.event_type_create(
            actor=w.admin_a,
            name="order.created",
            schema={"type": "object", "required": ["order_id"]},
        )
    relay.drain()
    cases = [
        (
            dp.runner.post("/v1/events", ORDER, headers={"Authorization": "Bearer nope"}),
            401,
            "not_authenticated",
        ),
        (
            dp.runner.post("/v1/events", b"{not json", headers={"Authorization": f"Bearer {key}"}),
            400,
            "parse_error",
        ),
        (dp.send(key, {"type": "order.created"}), 400, "invalid"),
        (dp.send(key, {"type": "order.created", "data": {"total": 1}}), 400, "schema_mismatch"),
        (
            dp.send(key, {"type": "order.created", "data": {"order_id": "x" * 300_000}}),
            413,
            "too_large",
        ),
    ]
    for (status, answer, _), expected_status, code in cases:
        assert (status, answer["error"]["code"]) == (expected_status, code), answer
    assert dp.received("errors") == []


def test_a_rotated_key_stops_working_when_its_grace_ends_and_the_new_one_works(dp):
    w = dp.world
    producer, old, *_ = dp.setup(w.a, w.admin_a, path="rotated")
    assert dp.send(old)[0] == 202
    with tenant_context(w.a):
        _, new = services.producer_rotate_key(actor=w.admin_a, producer=producer, grace_seconds=1)
    relay.drain()
    assert wait_for(lambda: dp.send(new)[0] == 202, timeout=5, interval=0.2)
    assert wait_for(lambda: dp.send(old)[0] == 401, timeout=5, interval=0.2)
    assert dp.send(new)[0] == 202


def test_a_pool_consumer_that_times_out_goes_through_the_slow_lane_and_comes_back(dp):
    """Its attempt cut at its 1-s timeout flags it; its next delivery is moved to the stack's
    slow lane (`<prefix>-delivery-slow`, its own mapping), delivered from there, and that fast
    answer on the slow lane takes the flag back."""
    from broker.functions.shared import records

    w = dp.world
    _, key, consumer, *_ = dp.setup(
        w.a, w.admin_a, path="slow/3000", timeout_ms=1000, delivery_concurrency=2
    )
    pk, sk = records.inflight_key(w.a.pk, consumer.pk)

    def slow_until():
        item = aws.dynamodb().get_item(
            TableName=django_settings.DATAPLANE_TABLE, Key={"PK": {"S": pk}, "SK": {"S": sk}}
        )
        return item.get("Item", {}).get("slow_until")

    assert dp.send(key)[0] == 202
    assert wait_for(slow_until, timeout=15)
    with tenant_context(w.a):
        services.consumer_update(actor=w.admin_a, consumer=consumer, url=dp.url("quick"))
    relay.drain()
    time.sleep(1.2)  # the runner's config cache (1 s here)
    status, answer, _ = dp.send(key)

    assert status == 202
    assert wait_for(
        lambda: [m for m in dp.received("quick") if answer["id"] in m["body"]], timeout=15
    )
    assert wait_for(lambda: slow_until() is None, timeout=10)
