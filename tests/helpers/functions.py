"""Test helpers (formerly in tests/functions/conftest.py): tests import them from here, and the fixtures of
tests/functions/conftest.py use them."""

import base64
import hashlib
import json
import secrets
import string
import uuid
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

from boto3.dynamodb.types import TypeSerializer

from broker.functions import aws, settings
from broker.functions.shared import messages
from broker.sync import contract

_ser = TypeSerializer()

QUOTAS = {
    "ingest_rate_per_second": 100,
    "ingest_burst": 200,
    "daily_event_quota": 1_000_000,
    "max_producers": 10,
    "max_consumers": 10,
    "max_subscriptions": 50,
    "delivery_concurrency": 5,
    "max_delivery_attempts": 10,
    "dlq_retention_days": 14,
    "api_requests_per_minute": 600,
    "max_event_size_bytes": 64 * 1024,
}


def put_item(item: dict) -> None:
    """Writes one contract item into the config table, unconditionally."""
    aws.dynamodb().put_item(
        TableName=settings.get().config_table,
        Item={k: _ser.serialize(v) for k, v in item.items() if v is not None},
    )


def receive_all(queue_url: str) -> list[messages.Message]:
    """Every message now in the queue, parsed with `messages.parse`, and deleted."""
    client = aws.sqs()
    out = []
    while True:
        got = client.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]
        ).get("Messages", [])
        if not got:
            return out
        for raw in got:
            message = messages.parse(raw["Body"])
            attrs = {k: v["StringValue"] for k, v in raw.get("MessageAttributes", {}).items()}
            assert attrs == {
                "tenant_id": message.delivery.tenant_id,
                "consumer_id": message.delivery.consumer_id,
            }
            out.append(message)
        client.delete_message_batch(
            QueueUrl=queue_url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(got)
            ],
        )


def new_queue(name: str | None = None) -> tuple[str, str]:
    """A fresh SQS queue: (url, arn)."""
    client = aws.sqs()
    url = client.create_queue(QueueName=name or f"test-{uuid.uuid4().hex[:16]}")["QueueUrl"]
    arn = client.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    return url, arn


class TenantPlane:
    """One tenant's configuration in the config table, written as the relay writes it."""

    def __init__(
        self, *, model="silo", status="active", quotas=None, queues=None, ordered_queues=None
    ):
        """`ordered_queues`: the TENANT item's FIFO queues (absent when None: provisioning of
        ordered delivery unfinished)."""
        self.tenant_id = str(uuid.uuid4())
        self.slug = f"t{self.tenant_id[:8]}"
        self.model, self.status = model, status
        self.quotas = {**QUOTAS, **(quotas or {})}
        self.queue_urls = queues or [new_queue()[0]]
        self.ordered_queues = ordered_queues
        self.version = 0
        self.write_tenant()

    def _next(self) -> int:
        self.version += 1
        return self.version

    def _ns(self):
        return SimpleNamespace(
            pk=self.tenant_id,
            slug=self.slug,
            status=self.status,
            tier=SimpleNamespace(name="test", deployment_model=self.model),
            effective_quotas=lambda: dict(self.quotas),
            delivery_queues=self.queue_urls,
            silo_queue_url="",
            ordered_queues=list(self.ordered_queues or []),
            version=self._next(),
        )

    def write_tenant(self, **changes) -> None:
        for name, value in changes.items():
            setattr(self, name, value)
        put_item(contract.tenant_item(self._ns()))

    def producer(
        self,
        *,
        kind="https",
        enabled=True,
        allowed_event_types=(),
        rate=None,
        burst=None,
        source_queue_arn="",
        producer_id=None,
    ):
        producer = SimpleNamespace(
            pk=producer_id or str(uuid.uuid4()),
            name=f"p-{uuid.uuid4().hex[:6]}",
            kind=kind,
            enabled=enabled,
            allowed_event_types=list(allowed_event_types),
            ingest_rate_per_second=rate,
            ingest_burst=burst,
            source_queue_arn=source_queue_arn,
            version=self._next(),
        )
        for item in contract.build_all(contract.PRODUCER, producer, tenant=self._ns()):
            put_item(item)  # an sqs producer's source-queue item too
        return producer

    def api_key(self, producer, *, expires_at=None, revoked=False, relayed_while_valid=False):
        """A new key of the producer (its item as the relay writes it); returns the key.

        `relayed_while_valid`: the item as the relay wrote it before the key expired (the
        expiry job has not tombstoned it yet)."""
        raw = "ebk_" + secrets.token_urlsafe(32)
        key = SimpleNamespace(
            pk=str(uuid.uuid4()),
            key_hash=hashlib.sha256(raw.encode()).hexdigest(),
            prefix=raw[:12],
            producer_id=producer.pk,
            expires_at=expires_at,
            version=self._next(),
            is_valid=lambda: not revoked and (expires_at is None or expires_at > datetime.now(UTC)),
        )
        put_item(contract.apikey_item(key, tenant=self._ns()))
        return raw

    def consumer(self, *, enabled=True, kind="https", consumer_id=None):
        consumer = SimpleNamespace(
            pk=consumer_id or str(uuid.uuid4()),
            name=f"c-{uuid.uuid4().hex[:6]}",
            kind=kind,
            enabled=enabled,
            url="https://hooks.example.com/in" if kind == "https" else "",
            queue_arn="" if kind == "https" else "arn:aws:sqs:eu-west-1:123456789012:x",
            signing_secret_encrypted="fernet1:stand-in",
            previous_signing_secret_encrypted="",
            previous_signing_secret_expires_at=None,
            auth_type="none",
            auth_username="",
            auth_secret_encrypted="",
            timeout_ms=5000,
            delivery_concurrency=None,
            retry_policy={"strategy": "exponential", "max_attempts": 3},
            rate_limit_per_second=None,
            version=self._next(),
        )
        put_item(contract.consumer_item(consumer, tenant=self._ns()))
        return consumer

    def route(
        self,
        event_type,
        consumer,
        *,
        producer=None,
        filter=None,
        enabled=True,
        ordered=None,
        ordering_key_path=None,
        on_head_failure=None,
    ):
        """`ordered`, `ordering_key_path`, `on_head_failure`: the subscription's ordering."""
        sub = SimpleNamespace(
            pk=str(uuid.uuid4()),
            event_type=event_type,
            consumer_id=consumer.pk,
            producer_id=producer.pk if producer else None,
            filter=filter or {},
            enabled=enabled,
            ordered=bool(ordered),
            ordering_key_path=ordering_key_path or "",
            on_head_failure=on_head_failure or "skip",
            version=self._next(),
        )
        item = contract.route_item(sub, tenant=self._ns())
        put_item(item)
        return sub

    def event_type(self, name, schema=None):
        obj = SimpleNamespace(name=name, schema=schema, version=self._next())
        put_item(contract.event_type_item(obj, tenant=self._ns()))
        return obj

    def deliveries(self) -> list[messages.Message]:
        out = []
        for url in self.queue_urls:
            out += receive_all(url)
        return out


def create_config_table() -> None:
    """The contract table as `bootstrap_aws` creates it (PK/SK; the API-key index is not
    needed by the functions), in whatever AWS the functions' settings point at."""
    client = aws.dynamodb()
    name = settings.get().config_table
    if name in client.list_tables()["TableNames"]:
        return
    client.create_table(
        TableName=name,
        AttributeDefinitions=[
            {"AttributeName": "PK", "AttributeType": "S"},
            {"AttributeName": "SK", "AttributeType": "S"},
        ],
        KeySchema=[
            {"AttributeName": "PK", "KeyType": "HASH"},
            {"AttributeName": "SK", "KeyType": "RANGE"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )


def http_event(
    path="/v1/events", *, body=None, key=None, method="POST", headers=None, base64_body=False
) -> dict:
    """An API Gateway HTTP API / function URL payload v2 event."""
    raw = body if isinstance(body, (str, bytes)) or body is None else json.dumps(body)
    if isinstance(raw, bytes):
        raw = raw.decode()
    all_headers = {"content-type": "application/json"}
    if key is not None:
        all_headers["authorization"] = f"Bearer {key}"
    all_headers.update(headers or {})
    if base64_body and raw is not None:
        raw = base64.b64encode(raw.encode()).decode()
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": all_headers,
        "requestContext": {"http": {"method": method, "path": path}},
        "body": raw,
        "isBase64Encoded": base64_body,
    }


def post(path="/v1/events", **kwargs):
    """Calls the ingress handler: (status, parsed body, headers)."""
    from broker.functions.ingress import handler

    out = handler(http_event(path, **kwargs), None)
    return out["statusCode"], json.loads(out["body"]), out["headers"]


def in_an_hour():
    return datetime.now(UTC) + timedelta(hours=1)


def new_fifo_queue(name: str | None = None) -> str:
    """A fresh FIFO queue (as the template makes the ordered ones): its url."""
    name = name or f"test-{uuid.uuid4().hex[:16]}"
    return aws.sqs().create_queue(
        QueueName=name + ".fifo", Attributes={"FifoQueue": "true", "VisibilityTimeout": "60"}
    )["QueueUrl"]


def fifo_dlq_url() -> str:
    """The central FIFO DLQ (`<prefix>-dlq.fifo`): the template's, made here if the stack the
    test runs against has none."""
    client = aws.sqs()
    name = settings.get().central_fifo_dlq_name
    try:
        return client.get_queue_url(QueueName=name)["QueueUrl"]
    except client.exceptions.QueueDoesNotExist:
        return client.create_queue(QueueName=name, Attributes={"FifoQueue": "true"})["QueueUrl"]


def receive_fifo(queue_url: str, *, delete: bool = True) -> list[dict]:
    """Every message now receivable from a FIFO queue: {message, group, dedup, attributes},
    in the order received (deleted unless told otherwise)."""
    client = aws.sqs()
    out = []
    while True:
        got = client.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=10,
            MessageAttributeNames=["All"],
            AttributeNames=["MessageGroupId", "MessageDeduplicationId"],
        ).get("Messages", [])
        if not got:
            return out
        for raw in got:
            out.append(
                {
                    "message": messages.parse(raw["Body"]),
                    "group": raw["Attributes"].get("MessageGroupId"),
                    "dedup": raw["Attributes"].get("MessageDeduplicationId"),
                    "attributes": {
                        k: v["StringValue"] for k, v in raw.get("MessageAttributes", {}).items()
                    },
                    "receipt": raw["ReceiptHandle"],
                }
            )
            if delete:
                client.delete_message(QueueUrl=queue_url, ReceiptHandle=raw["ReceiptHandle"])


# SQS's rules for MessageGroupId / MessageDeduplicationId, written out apart from
# broker/functions/shared/ordering.py (moto checks neither).
SQS_ID_CHARS = frozenset(
    string.ascii_letters + string.digits + "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"
)


def valid_sqs_id(value) -> bool:
    """A MessageGroupId / MessageDeduplicationId SQS would take: 1 to 128 of its characters."""
    return isinstance(value, str) and 0 < len(value) <= 128 and set(value) <= SQS_ID_CHARS
