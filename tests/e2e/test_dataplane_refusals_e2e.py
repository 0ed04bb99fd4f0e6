"""What the data plane refuses, end to end on the moto server: configuration made through the
portal's services and written by the relay, the real local runner in its own process, the
demo receiver as the consumer (fixtures of test_dataplane_e2e.py). Unit tests cover each rule
(tests/functions); these check that the deployed path applies it."""

import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.conf import settings as django_settings
from django_tenants.utils import tenant_context

from broker import services
from broker.functions.shared import messages, ssrf
from broker.sync import contract, dynamo, relay
from core import aws
from tenants.models import Tenant
from tenants.services import tenant_suspend
from tests.e2e import test_dataplane_e2e as base
from tests.helpers.e2e import free_receiver_port, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.django_db]

dp, runner = base.dp, base.runner  # its fixtures, for this module (receiver: conftest)

CACHE_TTL = 1.2  # the runner's CONFIG_CACHE_TTL_SECONDS (1 s), and a little more


def _dead_letter(consumer_id: str):
    """This consumer's message on the central DLQ (others' are put back), or None."""
    sqs = aws.sqs()
    dlq = aws.queue_url(f"{django_settings.SQS_QUEUE_PREFIX}-dlq")
    for m in sqs.receive_message(
        QueueUrl=dlq, MaxNumberOfMessages=10, WaitTimeSeconds=1, MessageAttributeNames=["All"]
    ).get("Messages", []):
        if m["MessageAttributes"]["consumer_id"]["StringValue"] == consumer_id:
            sqs.delete_message(QueueUrl=dlq, ReceiptHandle=m["ReceiptHandle"])
            return messages.parse(m["Body"])
        sqs.change_message_visibility(
            QueueUrl=dlq, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=0
        )
    return None


def _purge_delivery_queues():
    """Retries a failed test left behind would keep the shared pollers busy: purged (SQS
    allows one purge a minute per queue, so only queues that hold something)."""
    sqs = aws.sqs()
    prefix = f"{django_settings.SQS_QUEUE_PREFIX}-delivery-"
    for url in sqs.list_queues(QueueNamePrefix=prefix).get("QueueUrls", []):
        attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        waiting = sum(
            int(attrs.get(name, 0))
            for name in (
                "ApproximateNumberOfMessages",
                "ApproximateNumberOfMessagesNotVisible",
                "ApproximateNumberOfMessagesDelayed",
            )
        )
        if waiting:
            try:
                sqs.purge_queue(QueueUrl=url)
            except sqs.exceptions.PurgeQueueInProgress:
                pass


ONE_RETRY = {"strategy": "schedule", "schedule": [1]}  # two attempts, a second apart


def test_a_suspended_tenants_producer_is_refused_403_at_ingress(dp):
    w = dp.world
    producer, key, *_ = dp.setup(w.a, w.admin_a, path="suspended")
    accepted = []

    def refused() -> bool:
        status = dp.send(key)[0]
        accepted.append(status == 202)
        return status == 403

    assert not refused()
    active_item = contract.tenant_item(w.a)
    try:
        # A fresh instance: the session's w.a must keep its state for the other tests.
        tenant_suspend(tenant=Tenant.objects.get(pk=w.a.pk), actor=w.operator)
        relay.drain()
        # Within the runner's config cache (1 s) the old status may still answer.
        assert wait_for(refused, timeout=5, interval=0.2)
        status, answer, _ = dp.send(key)
        assert (status, answer["error"]["code"]) == (403, "forbidden")
        # Delivered: the events accepted before the suspension reached the receiver, only (the
        # egress's execution environments may be starting: each is a process of its own).
        assert wait_for(lambda: len(dp.received("suspended")) >= sum(accepted), timeout=15)
        time.sleep(1)
        assert len(dp.received("suspended")) == sum(accepted)
    finally:
        # PostgreSQL is rolled back after the test, the moto server is not: tenant a active
        # again there (at its old version, which the next test writes over).
        ddb = aws.dynamodb()
        key_ = {"PK": {"S": active_item["PK"]}, "SK": {"S": active_item["SK"]}}
        ddb.delete_item(TableName=django_settings.DYNAMODB_CONFIG_TABLE, Key=key_)
        dynamo.put_versioned(active_item)
        time.sleep(CACHE_TTL)


def test_a_disabled_consumer_receives_nothing(dp):
    w = dp.world
    _, key, disabled, *_ = dp.setup(w.a, w.admin_a, path="disabled")
    with tenant_context(w.a):
        witness, _ = services.consumer_create(
            actor=w.admin_a, name=f"w-{dp.tag}", kind="https", url=dp.url("witness")
        )
        services.subscription_create(actor=w.admin_a, consumer=witness, event_type="order.*")
        services.consumer_update(actor=w.admin_a, consumer=disabled, enabled=False)
    relay.drain()
    time.sleep(CACHE_TTL)

    status, answer, _ = dp.send(key)

    assert status == 202 and answer["deliveries"] == 1  # the witness's subscription only
    assert wait_for(lambda: dp.received("witness"), timeout=10)
    time.sleep(1)  # a delivery to the disabled one would have arrived by now
    assert dp.received("disabled") == []


class _Redirector:
    """A consumer endpoint that answers every POST 302 to the demo receiver."""

    def __init__(self, location: str):
        self.posts = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                outer.posts += 1
                self.send_response(302)
                self.send_header("Location", location)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        # A port of the runner's private targets (127.0.0.1:8200-8299), as the receiver's.
        self.server = ThreadingHTTPServer(("127.0.0.1", free_receiver_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def test_a_consumer_answering_a_redirect_is_not_followed_and_the_delivery_fails(dp):
    w = dp.world
    redirector = _Redirector(location=dp.url("redirected"))
    try:
        with tenant_context(w.a):
            producer, key = services.producer_create(
                actor=w.admin_a, name=f"p-{dp.tag}", kind="https"
            )
            consumer, _ = services.consumer_create(
                actor=w.admin_a,
                name=f"r-{dp.tag}",
                kind="https",
                url=redirector.url,
                retry_policy=ONE_RETRY,
            )
            services.subscription_create(actor=w.admin_a, consumer=consumer, event_type="order.*")
        relay.drain()

        assert dp.send(key)[1]["deliveries"] == 1
        letter = wait_for(lambda: _dead_letter(str(consumer.pk)), timeout=15)

        assert letter is not None
        assert (letter.failure.attempts, letter.failure.last_status) == (2, 302)
        assert letter.failure.error_kind == messages.ERROR_HTTP
        assert "redirect not followed" in letter.failure.last_error
        assert redirector.posts == 2
        assert dp.received("redirected") == []  # the Location was never called
    finally:
        redirector.close()
        _purge_delivery_queues()


def test_a_consumer_whose_host_resolves_to_a_private_address_at_delivery_is_refused(
    dp, fake_dns, monkeypatch
):
    """Saved while its name resolved to a public address (the portal's check, here through
    the fake resolver); the runner, another process, resolves it for real at delivery time:
    this machine's own name, a loopback or private address."""
    w = dp.world
    host = socket.gethostname().lower()
    try:
        real = {info[4][0] for info in socket.getaddrinfo(host, 443, type=socket.SOCK_STREAM)}
    except OSError:
        pytest.skip(f"this machine's name {host!r} does not resolve")
    if host in ssrf.BLOCKED_NAMES or host.endswith(ssrf.BLOCKED_SUFFIXES):
        pytest.skip(f"{host!r} is refused by name: the portal would not save it")
    if not all(ssrf.is_blocked_ip(ssrf.parse_ip_literal(a.split("%")[0])) for a in real):
        pytest.skip(f"{host!r} does not resolve to private addresses only here: {real}")
    monkeypatch.setitem(fake_dns, host, ["93.184.215.14"])  # what the portal saw
    try:
        with tenant_context(w.a):
            producer, key = services.producer_create(
                actor=w.admin_a, name=f"p-{dp.tag}", kind="https"
            )
            consumer, _ = services.consumer_create(
                actor=w.admin_a,
                name=f"rebind-{dp.tag}",
                kind="https",
                url=f"https://{host}/hook",
                retry_policy=ONE_RETRY,
            )
            services.subscription_create(actor=w.admin_a, consumer=consumer, event_type="order.*")
        relay.drain()

        assert dp.send(key)[1]["deliveries"] == 1
        letter = wait_for(lambda: _dead_letter(str(consumer.pk)), timeout=15)

        assert letter is not None
        assert letter.failure.error_kind == messages.ERROR_SSRF
        assert "non-public address" in letter.failure.last_error
        assert letter.failure.last_status is None  # nothing was called
    finally:
        _purge_delivery_queues()
