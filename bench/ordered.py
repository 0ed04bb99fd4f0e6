"""Ordered delivery benchmark: the egress's deliveries/s of ordered deliveries (one key, and
100 keys) next to unordered ones, measured in the same run. Django-free.

    make bench ARGS="ordered"       (or: .venv/bin/python bench/ordered.py [--quick])

AWS is moto in this process, with the emulator's changes of the local stack
(`broker/functions/local/moto_server.py`: FIFO receives one at a time per queue, DynamoDB
writes one at a time). One pool tenant, one https consumer on a local receiver that answers
200 at once (concurrency 100, so the in-flight cap never defers), two subscriptions: an
unordered one, whose deliveries sit in a standard queue, and an ordered one, whose deliveries
sit in a FIFO queue. Each scenario fills its queue with N deliveries, then `--pollers` threads
drain it as Lambda's pollers would (receive 10, the egress handler, delete what succeeded)
until the receiver has all N:

- unordered: the standard queue;
- ordered, one key: every delivery in one message group: SQS hands out one batch of the key at
  a time and the egress runs it one attempt at a time;
- ordered, 100 keys: 100 groups, deliveries interleaved as a busy producer sends them.

Each ordered delivery also costs one consistent GetItem (is its key held?). The figures are
the emulator's, on this machine: what they compare is the paths, not AWS's throughput.
"""

import argparse
import json
import os
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
os.environ.setdefault("AWS_DEFAULT_REGION", "eu-west-1")
os.environ.pop("AWS_ENDPOINT_URL", None)

from boto3.dynamodb.types import TypeSerializer  # noqa: E402
from cryptography.fernet import Fernet  # noqa: E402
from moto import mock_aws  # noqa: E402

from broker.functions import aws, config, settings  # noqa: E402
from broker.functions.egress import flush_records, handler, signing  # noqa: E402
from broker.functions.local import events  # noqa: E402
from broker.functions.local.moto_server import patch_moto  # noqa: E402
from broker.functions.shared import contract, messages, ordering, secrets  # noqa: E402

PREFIX = "bo"
TENANT, CONSUMER = str(uuid.uuid4()), str(uuid.uuid4())
PLAIN, ORDERED = str(uuid.uuid4()), str(uuid.uuid4())
_ser = TypeSerializer()


class Receiver:
    """Answers 200 at once; counts what it got."""

    def __init__(self):
        self.count = 0
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver.lock:
                    receiver.count += 1
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def _table(name: str, keys: list[tuple[str, str]]) -> None:
    aws.dynamodb().create_table(
        TableName=name,
        AttributeDefinitions=[{"AttributeName": k, "AttributeType": "S"} for k, _ in keys],
        KeySchema=[{"AttributeName": k, "KeyType": t} for k, t in keys],
        BillingMode="PAY_PER_REQUEST",
    )


def setup(receiver: Receiver) -> dict:
    os.environ.update(
        DYNAMODB_CONFIG_TABLE=f"{PREFIX}-config",
        DATAPLANE_TABLE=f"{PREFIX}-dataplane",
        IDEMPOTENCY_TABLE=f"{PREFIX}-idempotency",
        SQS_QUEUE_PREFIX=PREFIX,
        CONSUMER_PRIVATE_TARGETS=receiver.url.split("//", 1)[1].split("/", 1)[0],
        SECRETS_FERNET_KEYS=Fernet.generate_key().decode(),
        CONFIG_CACHE_TTL_SECONDS="600",
    )
    settings.reload()
    aws.reset_clients()
    config.clear()
    signing.clear_cache()
    s = settings.get()
    pk_sk = [("PK", "HASH"), ("SK", "RANGE")]
    _table(s.config_table, pk_sk)
    _table(s.dataplane_table, pk_sk)
    _table(s.idempotency_table, [("id", "HASH")])
    sqs = aws.sqs()
    sqs.create_queue(QueueName=f"{PREFIX}-dlq")
    sqs.create_queue(QueueName=f"{PREFIX}-dlq.fifo", Attributes={"FifoQueue": "true"})
    queues = {
        "plain": sqs.create_queue(
            QueueName=f"{PREFIX}-delivery-00", Attributes={"VisibilityTimeout": "60"}
        )["QueueUrl"],
        "fifo": sqs.create_queue(
            QueueName=f"{PREFIX}-ordered-00.fifo",
            Attributes={
                "FifoQueue": "true",
                "DeduplicationScope": "messageGroup",
                "FifoThroughputLimit": "perMessageGroupId",
                "VisibilityTimeout": "60",
            },
        )["QueueUrl"],
    }
    secret_ref = secrets.encrypt(
        tenant_id=TENANT,
        plaintext=secrets.generate_signing_secret(),
        kms=None,
        kms_key_id=None,
        fernet_keys=secrets.fernet(keys=s.fernet_keys, secret_key=s.secret_key),
    )
    base = {"contract": contract.CONTRACT_VERSION, "version": 1, "tenant_id": TENANT}
    route = {
        **base,
        "PK": contract.tenant_pk(TENANT),
        "type": "route",
        "consumer_id": CONSUMER,
        "event_type": "order.*",
        "filter_json": "{}",
        "enabled": True,
    }
    items = [
        {
            **base,
            "PK": contract.tenant_pk(TENANT),
            "SK": contract.TENANT_SK,
            "type": "tenant",
            "status": "active",
            "deployment_model": "pool",
            "quotas": {"max_delivery_attempts": 5},
            "delivery_queues": [queues["plain"]],
            "ordered_queues": [queues["fifo"]],
        },
        {
            **base,
            "PK": contract.tenant_pk(TENANT),
            "SK": contract.consumer_sk(CONSUMER),
            "type": "consumer",
            "consumer_id": CONSUMER,
            "kind": "https",
            "enabled": True,
            "target": {"url": receiver.url},
            "auth": {"type": "none"},
            "signing_secrets": [{"secret_ref": secret_ref}],
            "timeout_ms": 5000,
            "concurrency": 100,
            "retry": {"strategy": "schedule", "schedule": [1, 1], "max_attempts": 3},
        },
        {**route, "SK": contract.route_sk("order.*", PLAIN), "subscription_id": PLAIN},
        {
            **route,
            "SK": contract.route_sk("order.*", ORDERED),
            "subscription_id": ORDERED,
            "ordered": True,
            "on_head_failure": "hold",
        },
    ]
    for item in items:
        aws.dynamodb().put_item(
            TableName=s.config_table, Item={k: _ser.serialize(v) for k, v in item.items()}
        )
    return queues


def fill(url: str, n: int, *, keys: int | None) -> None:
    """N deliveries; `keys`: an ordered subscription's, over that many keys (interleaved)."""
    entries = []
    for i in range(n):
        event = messages.event_body(
            event_id=f"evt_{uuid.uuid4().hex}",
            type_="order.paid",
            time=messages.now_iso(),
            data={"seq": i},
            source_id=None,
        )
        d = messages.Delivery(
            delivery_id=messages.new_delivery_id(),
            tenant_id=TENANT,
            consumer_id=CONSUMER,
            subscription_id=ORDERED if keys else PLAIN,
            producer_id="p",
            event_id=event["id"],
            event_type=event["type"],
        )
        entry = {"Id": str(len(entries))}
        if keys:
            d.ordering_key = f"k{i % keys}"
            d.group_id = ordering.group_id(TENANT, ORDERED, d.ordering_key)
            entry.update(
                MessageGroupId=d.group_id,
                MessageDeduplicationId=ordering.dedup_id(d.delivery_id, 0),
            )
        message = messages.delivery_message(d, event)
        entry.update(MessageBody=message.body(), MessageAttributes=message.attributes())
        entries.append(entry)
        if len(entries) == 10 or i == n - 1:
            aws.sqs().send_message_batch(QueueUrl=url, Entries=entries)
            entries = []


def drain(url: str, n: int, receiver: Receiver, *, pollers: int) -> float:
    """Seconds until the receiver has `n` more deliveries, `pollers` threads polling."""
    arn = aws.sqs().get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    target = receiver.count + n
    done = threading.Event()

    def poll():
        client = aws.sqs()
        while not done.is_set():
            got = client.receive_message(
                QueueUrl=url,
                MaxNumberOfMessages=10,
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
            ).get("Messages", [])
            if not got:
                time.sleep(0.005)
                continue
            result = handler(events.sqs_event(got, queue_arn=arn, region="eu-west-1"), None)
            failed = events.failed_ids(result) or set()
            ok = [m for m in got if m["MessageId"] not in failed]
            if ok:
                client.delete_message_batch(
                    QueueUrl=url,
                    Entries=[
                        {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                        for i, m in enumerate(ok)
                    ],
                )

    start = time.perf_counter()
    threads = [threading.Thread(target=poll, daemon=True) for _ in range(pollers)]
    for t in threads:
        t.start()
    while receiver.count < target:
        time.sleep(0.01)
    elapsed = time.perf_counter() - start
    done.set()
    for t in threads:
        t.join(timeout=10)
    flush_records()
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, a smoke run")
    parser.add_argument("-n", type=int, help="deliveries per scenario (1,000; --quick 200)")
    parser.add_argument("--pollers", type=int, default=4, help="polling threads (4)")
    args = parser.parse_args()
    n = args.n or (200 if args.quick else 1000)
    patch_moto()
    receiver = Receiver()
    with mock_aws():
        queues = setup(receiver)
        fill(queues["plain"], 20, keys=None)  # warm: clients, caches, secrets
        drain(queues["plain"], 20, receiver, pollers=args.pollers)
        rows = []
        for name, url, keys in (
            ("unordered", queues["plain"], None),
            ("ordered, one key", queues["fifo"], 1),
            ("ordered, 100 keys", queues["fifo"], 100),
        ):
            fill(url, n, keys=keys)
            seconds = drain(url, n, receiver, pollers=args.pollers)
            rows.append((name, n / seconds))
    base = rows[0][1]
    print(f"\n## Ordered delivery: egress deliveries/s, {n} a scenario, {args.pollers} pollers")
    print("| path | deliveries/s | vs unordered |")
    print("|---|---|---|")
    for name, rate in rows:
        print(f"| {name} | {rate:,.0f} | {rate / base:.2f}× |")
    print(json.dumps({name: round(rate, 1) for name, rate in rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
