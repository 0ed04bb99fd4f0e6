"""Fixtures of the egress tests: a real HTTP receiver on 127.0.0.1, consumers with real
encrypted secrets (contract items built by the relay's own builder), SQS events as Lambda
hands them over, and hooks that see every SQS send and DynamoDB write the egress makes."""

import json
import socket
import threading
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import pytest

from broker.functions import aws, settings
from broker.functions.egress import RECORDER, flush_records, handler
from broker.functions.egress import signing as egress_signing
from broker.functions.shared import messages, records, secrets
from broker.sync import contract
from tests.helpers.functions import new_queue, put_item


@dataclass
class Received:
    path: str
    headers: dict
    body: bytes


@dataclass
class Answer:
    status: int = 200
    body: bytes = b"ok"
    headers: dict = field(default_factory=dict)
    delay: float = 0.0


class Receiver:
    """A consumer endpoint: records every request; answers per path (200 by default)."""

    def __init__(self):
        self.received: list[Received] = []
        self.answers: dict[str, Answer] = {}
        # decide(path, body) -> Answer | None: an answer chosen by the request's body.
        self.decide = None
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                receiver.received.append(Received(self.path, dict(self.headers), body))
                answer = receiver.decide(self.path, body) if receiver.decide else None
                answer = answer or receiver.answers.get(self.path, Answer())
                if answer.delay:
                    time.sleep(answer.delay)
                try:
                    self.send_response(answer.status)
                    for name, value in answer.headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(answer.body)))
                    self.end_headers()
                    self.wfile.write(answer.body)
                except OSError:
                    pass  # the egress gave up (timeout) and closed the connection

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path="/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def encrypt(tenant_id: str, value: str) -> str:
    s = settings.get()
    return secrets.encrypt(
        tenant_id=tenant_id,
        plaintext=value,
        kms=None,
        kms_key_id=None,
        fernet_keys=secrets.fernet(keys=s.fernet_keys, secret_key=s.secret_key),
    )


def sqs_record(body: str, source_arn: str, message_id: str | None = None) -> dict:
    """One record of an SQS event as Lambda's event source mapping delivers it."""
    return {
        "messageId": message_id or str(uuid.uuid4()),
        "receiptHandle": "handle",
        "body": body,
        "attributes": {"ApproximateReceiveCount": "1"},
        "messageAttributes": {},
        "md5OfBody": "",
        "eventSource": "aws:sqs",
        "eventSourceARN": source_arn,
        "awsRegion": "eu-west-1",
    }


class Egress:
    """A tenant with consumers, a delivery queue, and what the egress sends and writes."""

    def __init__(self, plane, receiver: Receiver):
        self.plane = plane
        self.tenant = plane(model="silo")
        self.receiver = receiver
        self.queue_url, self.queue_arn = new_queue()
        self.dlq_url = aws.sqs().create_queue(QueueName=settings.get().central_dlq_name)["QueueUrl"]
        self.sent: list[dict] = []  # SendMessage params, in order
        self.writes: dict[str, int] = defaultdict(int)  # data-plane table write calls by op
        sqs, ddb = aws.sqs(), aws.dynamodb()
        sqs.meta.events.register("provide-client-params.sqs.SendMessage", self._on_send)
        ddb.meta.events.register("provide-client-params.dynamodb", self._on_ddb)

    def _on_send(self, params, **kwargs):
        self.sent.append(dict(params))

    def _on_ddb(self, params, model, **kwargs):
        writes = ("BatchWriteItem", "PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems")
        table = settings.get().dataplane_table
        if model.name in writes and (
            params.get("TableName") == table or table in (params.get("RequestItems") or {})
        ):
            self.writes[model.name] += 1

    # --- configuration ----------------------------------------------------------------

    def consumer(
        self,
        *,
        url: str | None = None,
        kind: str = "https",
        queue_arn: str = "",
        signing_secret: str | None = None,
        previous_secret: str | None = None,
        previous_expires_at: datetime | None = None,
        auth_type: str = "none",
        auth_username: str = "",
        auth_secret: str = "",
        timeout_ms: int = 2000,
        retry: dict | None = None,
        concurrency: int | None = None,
        enabled: bool = True,
        tenant=None,
    ):
        tenant = tenant or self.tenant
        tid = tenant.tenant_id
        signing_secret = signing_secret or secrets.generate_signing_secret()
        consumer = SimpleNamespace(
            pk=str(uuid.uuid4()),
            name=f"c-{uuid.uuid4().hex[:6]}",
            kind=kind,
            enabled=enabled,
            url=(url or self.receiver.url()) if kind == "https" else "",
            queue_arn=queue_arn,
            signing_secret_encrypted=encrypt(tid, signing_secret),
            previous_signing_secret_encrypted=encrypt(tid, previous_secret)
            if previous_secret
            else "",
            previous_signing_secret_expires_at=previous_expires_at,
            auth_type=auth_type,
            auth_username=auth_username,
            auth_secret_encrypted=encrypt(tid, auth_secret) if auth_secret else "",
            timeout_ms=timeout_ms,
            delivery_concurrency=concurrency,
            retry_policy=retry or {"strategy": "schedule", "schedule": [10, 60], "max_attempts": 3},
            rate_limit_per_second=None,
            version=tenant._next(),
            signing_secret=signing_secret,
        )
        put_item(contract.consumer_item(consumer, tenant=tenant._ns()))
        return consumer

    # --- messages -----------------------------------------------------------------------

    def message(self, consumer, *, data=None, tenant=None, **delivery) -> messages.Message:
        tenant = tenant or self.tenant
        event_id = "evt_" + uuid.uuid4().hex
        d = messages.Delivery(
            delivery_id=messages.new_delivery_id(),
            tenant_id=tenant.tenant_id,
            consumer_id=consumer.pk,
            subscription_id=str(uuid.uuid4()),
            producer_id=str(uuid.uuid4()),
            event_id=event_id,
            event_type="order.created",
            **delivery,
        )
        event = messages.event_body(
            event_id=event_id,
            type_="order.created",
            time=messages.now_iso(),
            data=data if data is not None else {"total": 12},
            source_id=None,
        )
        return messages.delivery_message(d, event)

    def run(self, *bodies, message_ids=None) -> dict:
        """Invokes the handler with one SQS record per body (a Message or a string)."""
        bodies = [b.body() if isinstance(b, messages.Message) else b for b in bodies]
        ids = message_ids or [None] * len(bodies)
        event = {"Records": [sqs_record(b, self.queue_arn, i) for b, i in zip(bodies, ids)]}
        return handler(event, None)

    def sent_to(self, url: str) -> list[dict]:
        return [p for p in self.sent if p["QueueUrl"] == url]

    def requeued(self) -> list[tuple[messages.Message, int]]:
        """(message, DelaySeconds) of every message put back on the delivery queue."""
        return [
            (messages.parse(p["MessageBody"]), p.get("DelaySeconds", 0))
            for p in self.sent_to(self.queue_url)
        ]

    def dead_letters(self) -> list[messages.Message]:
        return [messages.parse(p["MessageBody"]) for p in self.sent_to(self.dlq_url)]

    def record_items(self, pk: str) -> list[dict]:
        flush_records()
        answer = aws.dynamodb().query(
            TableName=settings.get().dataplane_table,
            KeyConditionExpression="PK = :pk",
            ExpressionAttributeValues={":pk": {"S": pk}},
        )
        from broker.functions.config import deserialize

        return [deserialize(i) for i in answer.get("Items", [])]

    def history(self, delivery_id: str) -> list[dict]:
        pk, _ = records.delivery_attempt_key(self.tenant.tenant_id, delivery_id, 0, 1)
        return self.record_items(pk)


def in_minutes(n: float) -> datetime:
    return datetime.now(UTC) + timedelta(minutes=n)


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def egress(dataplane, receiver, monkeypatch, fake_dns):
    """The egress on the in-process moto, allowed to call the receiver (and a closed port)."""
    closed = free_port()
    monkeypatch.setenv("CONSUMER_PRIVATE_TARGETS", f"127.0.0.1:{receiver.port},127.0.0.1:{closed}")
    settings.reload()
    flush_records()
    egress_signing.clear_cache()
    e = Egress(dataplane.tenant, receiver)
    e.closed_port = closed
    e.to_json = json.dumps
    yield e
    flush_records()
    assert RECORDER.pending() == 0
