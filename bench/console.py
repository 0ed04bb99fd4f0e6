"""Operator console benchmark: the tenant list page of 100 and the activity job behind it.

    make bench ARGS="console"            (or: .venv/bin/python bench/console.py [--quick])

Needs PostgreSQL (DATABASE_URL), Redis (REDIS_URL) and the moto server (AWS_ENDPOINT_URL), as
`make bench` starts them. Works in its own database (`<name>_bench_console`, dropped at the
end) and its own data-plane table (a name of its own, deleted at the end).

--tenants (300) tenant rows (no schemas: the console reads nothing inside them), each with
per-minute counters in the data-plane table for 40 of the last 60 minutes and a quota counter.

1. The activity job (`broker.activity.services.activity_refresh`) over every tenant: its
   first run (61 keys a tenant: the hour and today's quota counter) and later runs a minute
   apart (only the minutes that may still change), wall time per 100 tenants and DynamoDB
   keys and calls per tenant; against a run that re-reads the whole hour every time.
2. GET `/?per_page=100` on the public host as an operator (Django's test client, DEBUG off):
   p50/p99 and SQL queries, against GET /api/v1/tiers/ (a trivial authenticated page on the
   same host: the request's floor) in the same run, and against the old way of filling the
   page's delivery columns (broker.deliveries.selectors.tenant_activity for 100 tenants:
   61 keys a tenant read per page view, cold and warm cache).
"""

import argparse
import os
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    drop_database,
    ensure_dataplane_table,
    pct,
    row,
    setup_django,
    timed_gets,
)


class DynamoCounter:
    """BatchGetItem calls and keys on the shared DynamoDB client."""

    def __init__(self):
        from core import aws

        self.calls = self.keys = 0
        self.events = aws.dynamodb().meta.events
        self.events.register("provide-client-params.dynamodb.BatchGetItem", self._count)

    def _count(self, params, **kwargs):
        self.calls += 1
        self.keys += sum(len(v["Keys"]) for v in params["RequestItems"].values())

    def reset(self):
        self.calls = self.keys = 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=300)
    parser.add_argument("--samples", type=int, default=50)
    parser.add_argument("--runs", type=int, default=10, help="later job runs, a minute apart")
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--keep", action="store_true", help="keep the bench database")
    args = parser.parse_args()
    if args.quick:
        args.tenants, args.samples, args.runs = 120, 15, 3
    args.tenants = max(args.tenants, 100)
    url, name = setup_django(
        "console",
        {
            "DATAPLANE_TABLE": f"bench-console-{os.getpid()}",
            "IDEMPOTENCY_TABLE": f"bench-console-idem-{os.getpid()}",
            "DYNAMODB_CONFIG_TABLE": f"bench-console-config-{os.getpid()}",
            "SQS_QUEUE_PREFIX": f"bench-console-{os.getpid()}",
        },
    )
    try:
        tenants, operator = setup(args.tenants)
        print(f"# console benchmark, {time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} CPUs")
        row("figure", "value", "unit", "budget", "baseline (same run)", "ratio")
        job_bench(tenants, args.runs)
        page_bench(tenants, operator, args.samples)
    finally:
        cleanup()
        from django.db import connections

        connections.close_all()
        if not args.keep:
            drop_database(url, name)


def setup(count: int):
    from boto3.dynamodb.types import TypeSerializer

    from broker.functions.shared import records
    from core import aws
    from tenants.models import Tenant, TenantStatus, Tier, User

    tiers = list(Tier.objects.order_by("name"))
    tenants = Tenant.objects.bulk_create(
        [
            Tenant(
                name=f"Bench {n}",
                slug=f"bench-{n:04d}",
                schema_name=f"bench_{n:04d}",
                tier=tiers[n % len(tiers)],
                status=TenantStatus.ACTIVE,
                admin_email=f"admin@bench-{n}.test",
            )
            for n in range(count)
        ]
    )
    operator = User.objects.create_user(
        "operator@bench.test", "bench-pass-2026", platform_role="operator", is_staff=True
    )
    # Counters as the data plane writes them: 40 of the last 60 minutes and today's quota.
    ser, ddb, table = TypeSerializer(), aws.dynamodb(), os.environ["DATAPLANE_TABLE"]
    ensure_dataplane_table(ddb, table)
    now = datetime.now(UTC)
    items = []
    for n, tenant in enumerate(tenants):
        for i in range(0, 60, 3):
            for j in (0, 1):
                pk, sk = records.tenant_stats_key(
                    str(tenant.pk), records.minute(now - timedelta(minutes=i + j))
                )
                items.append(
                    {"PK": pk, "SK": sk, "delivered": 20 + n % 7, "failed": n % 3, "dead": n % 2}
                )
        pk, sk = records.quota_key(str(tenant.pk), records.day(now))
        items.append({"PK": pk, "SK": sk, "c": 1000 + n})
    for start in range(0, len(items), 25):
        ddb.batch_write_item(
            RequestItems={
                table: [
                    {"PutRequest": {"Item": {k: ser.serialize(v) for k, v in item.items()}}}
                    for item in items[start : start + 25]
                ]
            }
        )
    from django.db import connection

    with connection.cursor() as cursor:
        # What autovacuum does soon after a bulk load: without statistics the planner guesses
        # thousands of rows and JIT-compiles the page's query (~30 ms of a 1 ms query).
        cursor.execute("ANALYZE")
    return tenants, operator


def job_bench(tenants, runs: int) -> None:
    from broker.activity import services
    from broker.activity.models import TenantActivity

    counter = DynamoCounter()
    n = len(tenants)
    per100 = 100 / n
    now = datetime.now(UTC)
    began = time.perf_counter()
    result = services.activity_refresh(now=now)
    first = time.perf_counter() - began
    assert result.failed == 0, result
    first_keys, first_calls = counter.keys, counter.calls
    later, keys, calls = [], 0, 0
    for k in range(1, runs + 1):
        counter.reset()
        began = time.perf_counter()
        services.activity_refresh(now=now + timedelta(minutes=k))
        later.append(time.perf_counter() - began)
        keys, calls = keys + counter.keys, calls + counter.calls
    # Baseline: every run re-reads the whole hour (no figures kept between runs).
    full = []
    for k in range(1, runs + 1):
        TenantActivity.objects.update(settled_through="", minutes={})
        began = time.perf_counter()
        services.activity_refresh(now=now + timedelta(minutes=k))
        full.append(time.perf_counter() - began)
    later_ms = statistics.median(later) * 1000 * per100
    full_ms = statistics.median(full) * 1000 * per100
    row(f"job, first run ({n} tenants), per 100", f"{first * 1000 * per100:.0f}", "ms")
    row(
        "  DynamoDB keys / BatchGetItem calls per tenant",
        f"{first_keys / n:.1f}/{first_calls / n:.2f}",
        "",
    )
    row(
        f"job, later runs p50 ({runs}, a minute apart), per 100",
        f"{later_ms:.0f}",
        "ms",
        "",
        f"whole hour re-read {full_ms:.0f} ms",
        f"{later_ms / full_ms:.2f}×",
    )
    row(
        "  DynamoDB keys / BatchGetItem calls per tenant",
        f"{keys / runs / n:.1f}/{calls / runs / n:.2f}",
        "",
        "O(tenants)",
        f"whole hour {first_keys / n:.0f}/{first_calls / n:.2f}",
        f"{keys / runs / first_keys:.2f}×",
    )


def page_bench(tenants, operator, samples: int) -> None:
    from django.core.cache import cache
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from broker.deliveries import selectors as deliveries

    client = Client(HTTP_HOST=os.environ.get("PORTAL_BASE_DOMAIN", "localhost"))
    client.force_login(operator)

    floor = timed_gets(client, "/api/v1/tiers/", samples)
    page = timed_gets(client, "/?per_page=100", samples)
    with CaptureQueriesContext(connection) as queries:
        body = client.get("/?per_page=100").content.decode()
    # Read now: the next request's request_started clears the log the capture slices.
    query_count = len(queries)
    assert body.count("data-tenant=") == 100 and "not measured yet" not in body
    counter = DynamoCounter()
    client.get("/?per_page=100")
    calls = counter.calls
    floor_p50, page_p50 = statistics.median(floor), statistics.median(page)
    row("GET /api/v1/tiers/ p50 (the request's floor)", f"{floor_p50:.1f}", "ms")
    row(
        "GET / (console), page of 100, p50",
        f"{page_p50:.1f}",
        "ms",
        "≤ 30 ms",
        f"floor {floor_p50:.1f} ms",
        f"{page_p50 / floor_p50:.1f}×",
    )
    row("GET / (console), page of 100, p99", f"{pct(page, 99):.1f}", "ms")
    row("  SQL queries / DynamoDB calls per page view", f"{query_count}/{calls}", "", "constant/0")
    # The old way: the page's delivery columns read live (61 keys a tenant, cached 30 s).
    ids = [t.pk for t in tenants[:100]]
    cold, warm = [], []
    for _ in range(max(3, samples // 5)):
        cache.clear()
        began = time.perf_counter()
        deliveries.tenant_activity(ids)
        cold.append((time.perf_counter() - began) * 1000)
        began = time.perf_counter()
        deliveries.tenant_activity(ids)
        warm.append((time.perf_counter() - began) * 1000)
    cold_p50, warm_p50 = statistics.median(cold), statistics.median(warm)
    row(
        "  before: live counters for 100 tenants, cold",
        f"{cold_p50:.1f}",
        "ms",
        "",
        "added to every page view",
        f"{cold_p50 / page_p50:.1f}× the page",
    )
    row(
        "  before: the same, warm cache (30 s)",
        f"{warm_p50:.1f}",
        "ms",
        "",
        "",
        f"{warm_p50 / page_p50:.1f}× the page",
    )


def cleanup() -> None:
    from core import aws

    ddb = aws.dynamodb()
    for name in ("DATAPLANE_TABLE", "IDEMPOTENCY_TABLE", "DYNAMODB_CONFIG_TABLE"):
        try:
            ddb.delete_table(TableName=os.environ[name])
        except Exception:  # noqa: BLE001 (already gone)
            pass
    sqs = aws.sqs()
    for queue in sqs.list_queues(QueueNamePrefix=os.environ["SQS_QUEUE_PREFIX"]).get(
        "QueueUrls", []
    ):
        sqs.delete_queue(QueueUrl=queue)


if __name__ == "__main__":
    main()
