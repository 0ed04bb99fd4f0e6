"""Dead-letter benchmark: DLQ ingest, replay against naive sends, memory, list endpoints.

    make bench ARGS="replay"            (or: .venv/bin/python bench/replay.py [--quick])

Needs PostgreSQL (DATABASE_URL), Redis (REDIS_URL) and the moto server (AWS_ENDPOINT_URL), as
`make bench` starts them. Works in its own database (`<name>_bench_replay`, dropped at the end)
and its own SQS queue names (a prefix of its own), on the same moto server.

1. Ingest: --letters (10,000) dead-letter messages, put in the central DLQ 1,000 at a time
   200 at a time (moto's SQS scans the queue on every call), each chunk ingested by
   `ingest.run` (timed): letters/s, against receive + delete alone of 2,000 messages in the
   same chunks (the emulator's ceiling for the SQS part).
2. List and groups endpoints at --letters letters: p50 of a page of 100 and the SQL queries.
3. Replay of every letter by one job (the runner in this process, the job's rate lifted so
   the machine, not the quota, is measured; a concurrent consumer drains the queue): SQS calls
   per letter (budget ≤ 0.1) and letters/s, against the naive one-SendMessage-per-letter way
   (--naive, 2,000 letters) into the same kind of drained queue in the same run.
4. Peak Python memory (tracemalloc) of a replay of 1,000 and of --letters letters, and of
   the ingest over its first 1,000 and over --letters more letters: flat in the number of
   letters (both work in batches of 10). Measured with DEBUG off (no SQL query log) and a
   drain that keeps no per-letter state.
"""

import argparse
import os
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import drop_database, pct, row, setup_django  # noqa: E402


class Drain(threading.Thread):
    """Receives and deletes from a queue until stopped, counting messages and, with
    `keep_keys`, collecting their (delivery_id, replay) keys. tracemalloc traces every thread:
    the memory figures drain without keys, or the set (~200 bytes a letter) is what they
    measure."""

    def __init__(self, url, *, keep_keys=True):
        super().__init__(daemon=True)
        import boto3
        from django.conf import settings

        self.sqs = boto3.session.Session().client(
            "sqs", endpoint_url=settings.AWS_ENDPOINT_URL, region_name=settings.AWS_REGION
        )
        self.url, self.stop, self.count, self.keys = url, threading.Event(), 0, set()
        self.keep_keys = keep_keys

    def run(self):
        import json

        while not self.stop.is_set():
            got = self.sqs.receive_message(
                QueueUrl=self.url, MaxNumberOfMessages=10, WaitTimeSeconds=1
            ).get("Messages", [])
            if not got:
                continue
            for m in got if self.keep_keys else ():
                body = json.loads(m["Body"])
                if "delivery" in body:
                    self.keys.add((body["delivery"]["delivery_id"], body["delivery"]["replay"]))
            self.count += len(got)
            self.sqs.delete_message_batch(
                QueueUrl=self.url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(got)
                ],
            )

    def wait_for(self, n, timeout=600):
        deadline = time.monotonic() + timeout
        while self.count < n and time.monotonic() < deadline:
            time.sleep(0.05)
        self.stop.set()
        self.join(timeout=10)


class CallCounter:
    def __init__(self, client):
        self.calls = {}
        client.meta.events.register("before-call.sqs.*", self._count)

    def _count(self, model, **kwargs):
        self.calls[model.name] = self.calls.get(model.name, 0) + 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--letters", type=int, default=10_000)
    parser.add_argument("--naive", type=int, default=2_000)
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--keep", action="store_true", help="keep the bench database")
    args = parser.parse_args()
    if args.quick:
        args.letters, args.naive = 1_000, 300
    url, name = setup_django(
        "replay",
        {"SQS_QUEUE_PREFIX": f"bench-replay-{os.getpid()}"},
    )
    tenant = None
    try:
        tenant, actor, consumer = setup_tenant()
        print(f"# replay benchmark, {time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} CPUs")
        row("figure", "value", "unit", "budget", "baseline (same run)", "ratio")
        ingest_bench(tenant, consumer, args.letters)
        endpoints_bench(tenant, actor, args.letters)
        replay_bench(tenant, actor, args.letters, args.naive)
        memory_bench(tenant, actor, args.letters)
        ingest_memory_bench(tenant, consumer, args.letters)
    finally:
        from core import aws

        sqs = aws.sqs()
        for queue in sqs.list_queues(QueueNamePrefix=os.environ["SQS_QUEUE_PREFIX"]).get(
            "QueueUrls", []
        ):
            sqs.delete_queue(QueueUrl=queue)
        from django.db import connections

        connections.close_all()
        if not args.keep:
            drop_database(url, name)


def setup_tenant():
    from django.test import TestCase
    from django_tenants.utils import tenant_context

    from broker import services as broker_services
    from portal.celery import app
    from tenants import services
    from tenants.models import Membership, Tenant, User

    app.conf.task_always_eager = True
    with TestCase.captureOnCommitCallbacks(execute=True):
        tenant = services.tenant_onboard(
            name="Bench", slug="bench", tier="dedicated", admin_email="admin@bench.test"
        )
    tenant = Tenant.objects.select_related("tier").get(pk=tenant.pk)
    assert tenant.status == "active", tenant.provisioning_error
    actor = User.objects.create_user("bench@bench.test", "bench-pass-2026")
    Membership.objects.create(user=actor, tenant=tenant, role="admin")
    with tenant_context(tenant):
        consumer = broker_services.consumer_create(
            actor=actor,
            name="bench-sink",
            kind="sqs",
            queue_arn="arn:aws:sqs:eu-west-1:123456789012:sink",
        )[0]
    # Replays are kicked on commit; the benchmark runs them itself.
    app.conf.task_always_eager = False
    return tenant, actor, consumer


def _bodies(tenant, consumer, n):
    import uuid

    from broker.functions.shared import messages

    out = []
    for i in range(n):
        delivery = messages.Delivery(
            delivery_id=messages.new_delivery_id(),
            tenant_id=str(tenant.pk),
            consumer_id=str(consumer.pk),
            subscription_id=str(uuid.uuid4()),
            producer_id=str(uuid.uuid4()),
            event_id=f"evt_{i}",
            event_type=f"order.t{i % 7}",
            attempt=5,
            first_attempt_at=messages.now_iso(),
        )
        event = messages.event_body(
            event_id=delivery.event_id,
            type_=delivery.event_type,
            time=messages.now_iso(),
            data={"order": i, "lines": [{"sku": f"S-{i}", "qty": 1}] * 5},
            source_id=None,
        )
        failure = messages.Failure(
            attempts=5,
            last_status=500 + i % 4,
            last_error="HTTP 50x from the consumer",
            error_kind=messages.ERROR_HTTP,
            first_attempt_at=messages.now_iso(),
            last_attempt_at=messages.now_iso(),
        )
        out.append(messages.dead_letter_message(delivery, event, failure))
    return out


def _send_all(url, bodies):
    from core import aws

    sqs = aws.sqs()
    for start in range(0, len(bodies), 10):
        chunk = bodies[start : start + 10]
        sqs.send_message_batch(
            QueueUrl=url,
            Entries=[
                {"Id": str(i), "MessageBody": m.body(), "MessageAttributes": m.attributes()}
                for i, m in enumerate(chunk)
            ],
        )


def ingest_bench(tenant, consumer, letters):
    from broker.deadletters import ingest
    from core import aws

    url = ingest.dlq_url()
    # Small chunks: moto's SQS scans the whole queue on each call, so a queue of thousands
    # would measure the emulator, not the ingest.
    chunk = 200
    ingest_time, stored = 0.0, 0
    for start in range(0, letters, chunk):
        _send_all(url, _bodies(tenant, consumer, min(chunk, letters - start)))
        began = time.perf_counter()
        result = ingest.run(max_batches=10_000, wait_seconds=0)
        ingest_time += time.perf_counter() - began
        stored += result.stored
    rate = stored / ingest_time
    # Baseline: receive + delete of the same number of messages, nothing else.
    sqs = aws.sqs()
    base_time, moved = 0.0, 0
    sample = min(letters, 2_000)
    for start in range(0, sample, chunk):
        n = min(chunk, sample - start)
        _send_all(url, _bodies(tenant, consumer, n))
        began = time.perf_counter()
        while True:
            got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get(
                "Messages", []
            )
            if not got:
                break
            sqs.delete_message_batch(
                QueueUrl=url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(got)
                ],
            )
            moved += len(got)
        base_time += time.perf_counter() - began
    base = moved / base_time
    row(
        f"ingest ({stored} letters stored)",
        f"{rate:,.0f}",
        "letters/s",
        "",
        f"receive+delete {base:,.0f}/s",
        f"{rate / base:.2f}×",
    )


def endpoints_bench(tenant, actor, letters):
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from django_tenants.utils import tenant_context

    from portal.celery import app  # noqa: F401 (settings loaded)

    with tenant_context(tenant), connection.cursor() as cursor:
        # What autovacuum does soon after a bulk load (visibility map, statistics).
        cursor.execute("VACUUM ANALYZE broker_deadletter")
    client = Client(HTTP_HOST=f"bench.{os.environ.get('PORTAL_BASE_DOMAIN', 'localhost')}")
    client.force_login(actor)
    floor = []
    for _ in range(30):
        began = time.perf_counter()
        client.get("/api/v1/me/")
        floor.append((time.perf_counter() - began) * 1000)
    row("GET /api/v1/me/ p50 (the request's floor)", f"{statistics.median(floor):.1f}", "ms")
    for path, label in (
        ("/api/v1/dead-letters/?page_size=100", "list, page of 100"),
        ("/api/v1/dead-letters/groups/", "groups"),
    ):
        client.get(path)  # warm
        times = []
        for _ in range(30):
            began = time.perf_counter()
            response = client.get(path)
            times.append((time.perf_counter() - began) * 1000)
            assert response.status_code == 200, response.content[:300]
        with CaptureQueriesContext(connection) as queries:
            client.get(path)
        row(
            f"GET {label} at {letters} letters p50",
            f"{statistics.median(times):.1f}",
            "ms",
            "≤ 30 ms",
            f"p95 {pct(times, 95):.1f} ms",
            f"{len(queries)} queries",
        )


def _replay_all(tenant, actor, *, ids=None, rate=1_000_000):
    from django_tenants.utils import tenant_context

    from broker.deadletters import runner, services
    from broker.deadletters.models import ReplayJob

    with tenant_context(tenant):
        outcome = services.replay_start(
            tenant=tenant, actor=actor, **({"ids": ids} if ids else {"filter": {}})
        )
        [job] = outcome.jobs
        # The quota caps a job at 500 letters/s; lifted here to measure the runner itself.
        ReplayJob.objects.filter(pk=job.pk).update(rate_per_second=rate)
        began = time.perf_counter()
        status = runner.replay_job_run(tenant=tenant, job_id=job.pk)
        took = time.perf_counter() - began
        assert status == "completed", status
        job.refresh_from_db()
    return job, took


def replay_bench(tenant, actor, letters, naive):
    from core import aws

    [queue] = tenant.delivery_queues
    counter = CallCounter(aws.sqs())
    drain = Drain(queue)
    drain.start()
    job, took = _replay_all(tenant, actor)
    drain.wait_for(job.sent)
    calls = counter.calls.get("SendMessageBatch", 0)
    rate = job.sent / took
    assert len(drain.keys) == job.sent == letters, (len(drain.keys), job.sent)

    # Naive: one SendMessage per letter into a drained queue, same bodies, same emulator.
    sqs = aws.sqs()
    drain = Drain(queue)
    drain.start()
    bodies = [b.body() for b in _naive_bodies(tenant, naive)]
    began = time.perf_counter()
    for body in bodies:
        sqs.send_message(QueueUrl=queue, MessageBody=body)
    naive_rate = len(bodies) / (time.perf_counter() - began)
    drain.wait_for(len(bodies))
    row(
        "replay SQS calls per letter",
        f"{calls / job.sent:.3f}",
        "calls",
        "≤ 0.1",
        f"naive 1.000 ({calls} SendMessageBatch)",
        f"{(calls / job.sent):.2f}×",
    )
    row(
        f"replay ({job.sent} letters, one job)",
        f"{rate:,.0f}",
        "letters/s",
        "",
        f"naive SendMessage {naive_rate:,.0f}/s",
        f"{rate / naive_rate:.1f}×",
    )
    row(
        "replay job with the tier cap (500/s) would take",
        f"{job.sent / min(rate, 500):.1f}",
        "s",
        "",
        "",
        "",
    )


def _naive_bodies(tenant, n):
    import uuid

    from broker.functions.shared import messages

    out = []
    for i in range(n):
        delivery = messages.Delivery(
            delivery_id=messages.new_delivery_id(),
            tenant_id=str(tenant.pk),
            consumer_id=str(uuid.uuid4()),
            subscription_id=None,
            producer_id=None,
            event_id=f"evt_{i}",
            event_type="order.naive",
            replay=1,
        )
        event = messages.event_body(
            event_id=delivery.event_id,
            type_="order.naive",
            time=messages.now_iso(),
            data={"order": i, "lines": [{"sku": f"S-{i}", "qty": 1}] * 5},
            source_id=None,
        )
        out.append(messages.delivery_message(delivery, event))
    return out


def memory_bench(tenant, actor, letters):
    import tracemalloc

    from django.db import connection
    from django_tenants.utils import tenant_context

    from broker.deadletters.models import DeadLetter

    # DEBUG on would keep every SQL query in connection.queries: the figure would measure it.
    assert not connection.queries_logged, "the SQL query log is on"
    [queue] = tenant.delivery_queues
    peaks = {}
    with tenant_context(tenant):
        small_ids = [str(i) for i in DeadLetter.objects.values_list("pk", flat=True)[:1000]]
    for label, ids in (("1,000 (ids)", small_ids), (f"{letters:,} (filter)", None)):
        drain = Drain(queue, keep_keys=False)
        drain.start()
        tracemalloc.start()
        job, _ = _replay_all(tenant, actor, ids=ids)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        drain.wait_for(job.sent)
        peaks[label] = peak
        row(
            f"replay peak Python memory, {label} letters",
            f"{peak / 2**20:.2f}",
            "MiB",
            "flat",
            "",
            "",
        )
    small, large = peaks.values()
    row("  ratio of the two peaks", f"{large / small:.2f}", "×", "≈ 1", "", "")


def ingest_memory_bench(tenant, consumer, letters):
    """Traced memory of the ingest storing `letters` more letters, 200 a chunk (as the ingest
    figure): the peak of a run over the first 1,000 letters and over all of them, above what
    was allocated before, and what is left allocated at the end (the residue). Cyclic garbage
    is collected before each run: otherwise the peak depends on when the collector ran."""
    import gc
    import tracemalloc

    from django.db import connection

    from broker.deadletters import ingest

    assert not connection.queries_logged, "the SQL query log is on"
    url = ingest.dlq_url()
    chunk = 200
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    peaks = []  # (letters sent so far, peak of that ingest run above base)
    for start in range(0, letters, chunk):
        n = min(chunk, letters - start)
        _send_all(url, _bodies(tenant, consumer, n))
        gc.collect()
        tracemalloc.reset_peak()
        ingest.run(max_batches=10_000, wait_seconds=0)
        peaks.append((start + n, tracemalloc.get_traced_memory()[1] - base))
    gc.collect()
    residue = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    first = max(p for sent, p in peaks if sent <= 1_000)
    whole = max(p for _, p in peaks)
    row("ingest peak Python memory, first 1,000 letters", f"{first / 2**20:.2f}", "MiB", "flat")
    row(f"ingest peak Python memory, {letters:,} letters", f"{whole / 2**20:.2f}", "MiB", "flat")
    row("  ratio of the two peaks", f"{whole / first:.2f}", "×", "≈ 1", "", "")
    row("ingest memory left allocated after", f"{residue / 2**10:.0f}", "KiB", "", "", "")


if __name__ == "__main__":
    main()
