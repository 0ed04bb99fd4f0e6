"""A batch's attempts run concurrently, within the consumer's delivery concurrency across
every function instance (pool consumers) or one at a time per instance (silo consumers, whose
queue mapping's MaximumConcurrency bounds the instances)."""

import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from broker.functions import settings
from broker.functions.egress import inflight
from tests.functions import egress_fixtures
from tests.functions.egress_context import Deadline
from tests.functions.egress_fixtures import sqs_record

egress, receiver = egress_fixtures.egress, egress_fixtures.receiver


class Counting(ThreadingHTTPServer):
    """Answers every POST after `delay` seconds; notes the most requests in progress at once,
    in all and per path."""

    daemon_threads = True

    def __init__(self, delay: float):
        super().__init__(("127.0.0.1", 0), _CountingHandler)
        self.delay = delay
        self.lock = threading.Lock()
        self.active: Counter = Counter()
        self.most: Counter = Counter()
        self.total = 0

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{path}"


class _CountingHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        s = self.server
        with s.lock:
            for key in (self.path, "*"):
                s.active[key] += 1
                s.most[key] = max(s.most[key], s.active[key])
        time.sleep(s.delay)
        with s.lock:
            s.total += 1
            for key in (self.path, "*"):
                s.active[key] -= 1
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()


@pytest.fixture
def counting(egress, monkeypatch):
    server = Counting(delay=0.8)  # long enough for a batch's attempts to overlap under load
    threading.Thread(target=server.serve_forever, daemon=True).start()
    allowed = [*settings.get().private_targets, f"127.0.0.1:{server.server_address[1]}"]
    monkeypatch.setenv("CONSUMER_PRIVATE_TARGETS", ",".join(allowed))
    settings.reload()
    yield server
    server.shutdown()
    server.server_close()


def _run(egress, bodies) -> dict:
    event = {"Records": [sqs_record(m.body(), egress.queue_arn) for m in bodies]}
    return egress_fixtures.handler(event, Deadline(900))


def test_a_pool_consumers_batch_runs_as_many_at_once_as_its_concurrency(
    egress, dataplane, counting
):
    pool = dataplane.tenant(model="pool")
    consumer = egress.consumer(tenant=pool, url=counting.url("/a"), concurrency=5)

    answer = _run(egress, [egress.message(consumer, tenant=pool) for _ in range(10)])

    assert answer == {"batchItemFailures": []}
    assert counting.total == 10
    assert counting.most["/a"] == 5


def test_deliveries_in_flight_elsewhere_count_against_the_consumers_concurrency(
    egress, dataplane, counting
):
    pool = dataplane.tenant(model="pool")
    consumer = egress.consumer(tenant=pool, url=counting.url("/a"), concurrency=5)
    other = inflight.Slots()  # another function instance, three deliveries in flight
    other.plan(pool.tenant_id, consumer.pk, 3)
    assert other.acquire(pool.tenant_id, consumer.pk, 5)
    try:
        answer = _run(egress, [egress.message(consumer, tenant=pool) for _ in range(6)])
    finally:
        other.release_all()

    assert answer == {"batchItemFailures": []}
    assert counting.total == 6
    assert counting.most["/a"] == 2


def test_a_silo_consumer_takes_one_at_a_time_beside_the_other_consumers(egress, counting):
    a = egress.consumer(url=counting.url("/a"))
    b = egress.consumer(url=counting.url("/b"))

    answer = _run(egress, [egress.message(c) for c in (a, b, a, b, a, b)])

    assert answer == {"batchItemFailures": []}
    assert counting.total == 6
    assert counting.most == {"/a": 1, "/b": 1, "*": 2}


def test_every_mark_of_a_concurrent_batch_is_written_once_it_ends(egress, dataplane, counting):
    from broker.functions import aws

    pool = dataplane.tenant(model="pool")
    consumer = egress.consumer(tenant=pool, url=counting.url("/a"), concurrency=10)
    batch = [egress.message(consumer, tenant=pool) for _ in range(10)]
    table = settings.get().idempotency_table
    before = aws.dynamodb().scan(TableName=table)["Items"]

    _run(egress, batch)

    after = aws.dynamodb().scan(TableName=table)["Items"]
    new = [i for i in after if i not in before]
    assert Counter(i["status"]["S"] for i in new) == {"COMPLETED": 10}
    assert _run(egress, batch) == {"batchItemFailures": []}  # SQS duplicates: absorbed
    assert counting.total == 10


def test_process_body_on_its_own_gives_its_slot_back(egress, dataplane):
    from broker.functions.egress import deliver

    pool = dataplane.tenant(model="pool")
    consumer = egress.consumer(tenant=pool, concurrency=1)
    first, second = (egress.message(consumer, tenant=pool) for _ in range(2))

    outcomes = [
        deliver.process_body(m.body(), source_arn=egress.queue_arn) for m in (first, second)
    ]

    assert outcomes == [deliver.DELIVERED, deliver.DELIVERED]  # the first slot was given back


def test_a_batch_runs_on_the_handlers_thread_while_its_records_are_quick(
    egress, dataplane, monkeypatch
):
    """A thread handoff per record cost more CPU than a quick attempt's own code (app.py):
    records run on the handler's thread until one has run `SPILL_AFTER_S`."""
    from broker.functions.egress import app, deliver

    monkeypatch.setattr(app, "SPILL_AFTER_S", 30.0)  # nothing here runs that long
    threads = []
    real = deliver.process_body

    def noting(*args, **kwargs):
        threads.append(threading.get_ident())
        return real(*args, **kwargs)

    monkeypatch.setattr(deliver, "process_body", noting)
    pool = dataplane.tenant(model="pool")
    consumer = egress.consumer(tenant=pool, concurrency=10)

    answer = _run(egress, [egress.message(consumer, tenant=pool) for _ in range(10)])

    assert answer == {"batchItemFailures": []}
    assert len(egress.receiver.received) == 10
    assert threads == [threading.get_ident()] * 10


def test_a_quick_record_behind_a_slow_one_is_not_held_back_by_it(egress, dataplane, counting):
    from broker.functions.egress import deliver

    pool = dataplane.tenant(model="pool")
    slow = egress.consumer(tenant=pool, url=counting.url("/slow"), concurrency=5)
    quick = egress.consumer(tenant=pool, concurrency=5)
    done = {}
    real = deliver.process_body

    def noting(body, **kwargs):
        outcome = real(body, **kwargs)
        done[deliver.parse(body).delivery.consumer_id] = time.monotonic()
        return outcome

    started = time.monotonic()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(deliver, "process_body", noting)
        answer = _run(
            egress, [egress.message(slow, tenant=pool), egress.message(quick, tenant=pool)]
        )

    assert answer == {"batchItemFailures": []}
    assert done[slow.pk] - started >= counting.delay  # the slow consumer's answer took 0.8 s
    assert done[quick.pk] - started < counting.delay / 2  # the quick one did not wait for it
