"""Scale benchmark: the platform's per-tenant walks with --tenants (1,000; 10,000 for the
published figures) tenants present, each against the same measurement at --baseline (100)
tenants in the same run.

    make bench ARGS="scale --tenants 10000 --keep"      (the tenants are made once, then reused)
    make bench ARGS="scale --quick"                      (300 tenants, a smoke run)

Needs PostgreSQL, Redis and the moto server (AWS_ENDPOINT_URL), as `make bench` starts them.
Each size works in a database of its own, `<name>_bench_scale_<count>`, dropped at the end
unless --keep; a kept one is reused when it holds the tenants (counted), topped up otherwise.

Tenants are made in bulk, not through onboarding (90 s for 1,000, 15 minutes for 10,000, for
nothing measured here): the rows (`active`, pool tiers in turn, their shuffle-shard queues) in
one INSERT a batch, and each schema as a copy of the template schema (tenants/schemas.py's
statements, one round trip a schema), as provisioning copies it. The data-plane items the
walks read are written to the moto server (in memory, so on every run): each tenant's TENANT
item (the reconciler then finds nothing to repair) and its counters for the last 7 minutes and
today's quota (what the activity job reads in its steady state).

Each size runs in a process of its own (the figures come back as JSON), the baseline before
and after the large size (their mean is printed: the load of a shared machine moves); the
figures, against the baseline's:

- onboarding p50 of --samples tenants through the service (Celery eager), with the tenants
  present (the onboarded ones are removed again);
- `manage.py migrate_schemas --noinput` with nothing to apply, over every schema;
- the activity job (`activity_refresh`) in its steady state: rows settled up to
  ACTIVITY_SETTLE_MINUTES ago, three runs a minute apart, p50 against its interval;
- the operator console's page of 100 (`/?per_page=100`): p50 and SQL queries;
- the reconciler's full pass (a reconcile job, `reconcile.run_job`), nothing to repair;
- a `/metrics` scrape, p50.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    ROOT,
    drop_database,
    ensure_dataplane_table,
    log_file,
    pct,
    setup_django,
    timed_gets,
)

PREFIX = "scale-"
BATCH = 10  # schemas a transaction: each copy takes ~150 relation locks until its commit
MAKERS = 2


def row(name, value, unit="", budget="", baseline="", ratio=""):
    print(f"{name:<52} {value:>10} {unit:<5} {budget:<20} {baseline:<28} {ratio}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=1000, help="tenants present (1,000)")
    parser.add_argument("--baseline", type=int, default=100, help="the baseline's tenants (100)")
    parser.add_argument("--samples", type=int, default=20, help="requests/onboardings per figure")
    parser.add_argument("--quick", action="store_true", help="300 tenants, 5 samples")
    parser.add_argument("--keep", action="store_true", help="keep (and reuse) the databases")
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)  # a size's run
    parser.add_argument(
        "--make-only",
        action="store_true",
        help="make (or top up) the kept tenants, measure nothing",
    )
    args = parser.parse_args()
    if args.quick:
        args.tenants, args.samples = 300, 5
    args.baseline = max(args.baseline, 100)  # a full page of 100
    if args.make_only:
        args.keep = True
    if args.one or args.make_only:
        measure_one(args)
        return
    began = time.perf_counter()
    print(
        f"# scale benchmark, {time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    # The baseline before and after the large size, averaged: the machine's load moves.
    before = run_size(args, args.baseline)
    full = run_size(args, args.tenants)
    after = run_size(args, args.baseline)
    base = {
        k: (v + after[k]) / 2 if isinstance(v, float) and k in after else v
        for k, v in before.items()
    }
    report(args, base, full)
    print(
        "# * the baseline is the mean of two runs, before and after the large one; "
        f"the whole run: {time.perf_counter() - began:.0f} s",
        flush=True,
    )


def run_size(args, count: int) -> dict:
    """One size in a process of its own (Django set up against that size's database)."""
    command = [sys.executable, __file__, "--one", "--tenants", str(count)]
    command += ["--samples", str(args.samples)] + (["--keep"] if args.keep else [])
    began = time.perf_counter()
    with log_file(f"scale_{count}") as stderr:
        done = subprocess.run(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=stderr, text=True)
    if done.returncode:
        sys.exit(f"the run at {count} tenants failed: see var/log/bench-scale_{count}.log")
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    figures["wall_s"] = time.perf_counter() - began
    return figures


def report(args, base: dict, full: dict) -> None:
    n, b = full["tenants"], base["tenants"]
    row("figure", "value", "unit", "budget", f"baseline: {b} tenants*", "ratio")
    made = full["created"]
    row(
        "tenants made for this run (bulk, template copies)",
        f"{made}",
        "",
        "",
        f"{full['reused']} reused (--keep)" if full["reused"] else "",
        f"{made / full['create_s']:.0f} tenants/s" if made else "",
    )
    row("  of which the time", f"{full['create_s']:.0f}", "s")
    row("data-plane items written (TENANT, counters)", f"{full['seed_s']:.0f}", "s")

    def line(label, key, unit, budget, fmt="{:.0f}"):
        value, ref = full[key], base[key]
        row(
            label,
            fmt.format(value),
            unit,
            budget,
            f"{fmt.format(ref)} {unit}",
            f"{value / ref:.2f}×" if ref else "",
        )

    line(f"onboarding p50, {n} tenants present", "onboard_p50_ms", "ms", "≤ 100 ms")
    line(f"onboarding p95, {n} tenants present", "onboard_p95_ms", "ms", "")
    line(
        f"migrate_schemas no-op, {full['schemas']} schemas",
        "migrate_s",
        "s",
        "≤ 60 s",
        "{:.1f}",
    )
    row(
        "  schemas visited (a migration to apply)",
        f"{full['migrate_visited']}",
        "",
        "0",
        f"{base['migrate_visited']}",
    )
    interval = full["activity_interval_s"]
    line(
        f"activity job, steady run over {n} tenants, p50",
        "activity_s",
        "s",
        f"≤ {interval / 2:.0f} s (½ interval)",
        "{:.1f}",
    )
    line(
        f"  its slowest shard's run ({full['activity_shards']} shards, one task each), p50",
        "activity_shard_s",
        "s",
        f"≤ {interval / 2:.0f} s",
        "{:.1f}",
    )
    row(
        "  DynamoDB keys / BatchGetItem calls per tenant",
        f"{full['activity_keys']:.1f}/{full['activity_calls']:.2f}",
        "",
        "",
        f"{base['activity_keys']:.1f}/{base['activity_calls']:.2f}",
    )
    row(
        "  first run (the whole hour read), per 100 tenants",
        f"{base['activity_first_per100_s']:.1f}",
        "s",
        f"≤ {full['activity_limit_s']:.0f} s limit",
        f"measured at {b} tenants",
        f"≈{base['activity_first_per100_s'] * n / 100:.0f} s at {n}",
    )
    line("console page of 100, p50", "page_p50_ms", "ms", "≤ 50 ms", "{:.1f}")
    line("console page of 100, p99", "page_p99_ms", "ms", "", "{:.1f}")
    row(
        "  SQL queries per page view",
        f"{full['page_queries']}",
        "",
        "= baseline",
        f"{base['page_queries']}",
        "same" if full["page_queries"] == base["page_queries"] else "DIFFERENT",
    )
    line("  request floor (GET /api/v1/tiers/) p50", "floor_p50_ms", "ms", "", "{:.1f}")
    line(
        f"reconciler full pass, {n} tenants",
        "reconcile_s",
        "s",
        f"≤ {full['reconcile_interval_s']:.0f} s interval",
        "{:.1f}",
    )
    line("  per tenant", "reconcile_per_tenant_ms", "ms", "", "{:.1f}")
    line("  of which the table's Scan (moto)", "reconcile_scan_s", "s", "", "{:.1f}")
    line(
        "  of which counting the objects (a query per 500 schemas)",
        "reconcile_count_s",
        "s",
        "",
        "{:.1f}",
    )
    row(
        "  Query calls (tenants read again)",
        f"{full['reconcile_queries']}",
        "",
        "0 when no drift",
        f"{base['reconcile_queries']:.0f}",
    )
    row("  drift found", f"{full['reconcile_drift']}", "", "0", f"{base['reconcile_drift']}")
    line("/metrics scrape p50", "metrics_p50_ms", "ms", "seconds", "{:.1f}")
    row(
        "wall time of each size's run",
        f"{full['wall_s']:.0f}",
        "s",
        "",
        f"{base['wall_s']:.0f} s",
    )


# --- one size, in its own process ---------------------------------------------------------


def measure_one(args) -> None:
    # Tables of its own per size: the reconciler's Scan reads only this size's items.
    url, name = setup_django(
        f"scale_{args.tenants}",
        {
            "CELERY_TASK_ALWAYS_EAGER": "1",
            "DYNAMODB_CONFIG_TABLE": f"bench-scale-{args.tenants}-config",
            "DATAPLANE_TABLE": f"bench-scale-{args.tenants}-dataplane",
            # moto's Scan costs milliseconds an item returned: small pages stay within the
            # client's 10-s read timeout with four segments in flight.
            "RECONCILE_SCAN_PAGE_SIZE": "100",
        },
        reuse=args.keep,
    )
    figures = {}
    try:
        figures.update(ensure_tenants(args.tenants))
        if args.make_only:
            log(f"made: {figures}")
            return
        for phase in (
            seed_dataplane,
            lambda: onboarding(args.samples),
            lambda: migrate_noop(url),
            activity,
            lambda: console(args.samples),
            reconciler,
            lambda: metrics(args.samples),
        ):
            began = time.perf_counter()
            result = phase()
            figures.update(result)
            log(f"{time.perf_counter() - began:.1f} s: {result}")
    finally:
        from django.db import connections

        connections.close_all()
        if not args.keep:
            drop_database(url, name)
    print(json.dumps(figures))


def log(message: str) -> None:
    print(f"[scale] {message}", file=sys.stderr, flush=True)


def _analyze_public() -> None:
    """What autovacuum does soon after a bulk load, on the shared tables only (a database-wide
    ANALYZE would visit every tenant's tables)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        for (table,) in cursor.fetchall():
            cursor.execute(f'ANALYZE public."{table}"')


def ensure_tenants(count: int) -> dict:
    from django.conf import settings
    from django.db import connection, transaction

    from core import aws
    from tenants.models import Domain, Tenant, TenantStatus, Tier
    from tenants.schemas import TEMPLATE, clone_statements, ensure_template
    from tenants.shuffle_shard import shard_for

    ensure_template()
    existing = Tenant.objects.filter(slug__startswith=PREFIX).count()
    began = time.perf_counter()
    tiers = list(Tier.objects.filter(deployment_model="pool").order_by("name"))
    # The pool's shared delivery queues and the central DLQ, as the data plane's stack makes
    # them.
    aws.sqs().create_queue(QueueName=aws.central_dlq_name())
    urls = [aws.delivery_queue_create(name=q) for q in aws.shared_delivery_queue_names()]
    # And the pool's FIFO queues of ordered subscriptions, which provisioning gives every tenant
    # (a tenant without them is given them by the reconciler's pass: not what is measured).
    aws.sqs().create_queue(QueueName=aws.central_fifo_dlq_name(), Attributes={"FifoQueue": "true"})
    ordered = [aws.ordered_queue_create(name=q) for q in aws.shared_ordered_queue_names()]
    # Tenants kept from a run before ordered delivery: given them too (one UPDATE).
    Tenant.objects.filter(slug__startswith=PREFIX, ordered_queues=[]).update(ordered_queues=ordered)
    k = min(settings.SHUFFLE_SHARD_SIZE, len(urls))
    placeholder = "scale_copy_target"
    with connection.cursor() as cursor:
        script = ";\n".join(clone_statements(cursor, placeholder))
    assert TEMPLATE not in script.replace(f'"{TEMPLATE}"', ""), "unquoted template name"

    def make(start):
        tenants = []
        for i in range(start, min(start + BATCH, count)):
            pk = uuid.uuid4()
            tenants.append(
                Tenant(
                    id=pk,
                    name=f"Scale {i}",
                    slug=f"{PREFIX}{i:05d}",
                    schema_name=f"t_scale_{i:05d}",
                    tier=tiers[i % len(tiers)],
                    status=TenantStatus.ACTIVE,
                    admin_email=f"admin@scale-{i}.test",
                    delivery_queues=[urls[j] for j in shard_for(pk, n=len(urls), k=k)],
                    ordered_queues=ordered,
                    version=1,
                    synced_version=1,
                )
            )
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                for tenant in tenants:
                    cursor.execute(script.replace(f'"{placeholder}"', f'"{tenant.schema_name}"'))
                Tenant.objects.bulk_create(tenants)
                Domain.objects.bulk_create(
                    Domain(
                        tenant=t, domain=f"{t.slug}.{settings.PORTAL_BASE_DOMAIN}", is_primary=True
                    )
                    for t in tenants
                )
        finally:
            connection.close()  # this thread's
        if (start // BATCH) % 50 == 0:
            log(f"tenants: {start + len(tenants)} of {count}, {time.perf_counter() - began:.0f} s")

    # Two connections at once (the copies are PostgreSQL's work, on two cores).
    with ThreadPoolExecutor(max_workers=MAKERS) as pool:
        list(pool.map(make, range(existing, count, BATCH)))
    took = time.perf_counter() - began
    _analyze_public()
    return {
        "tenants": Tenant.objects.filter(slug__startswith=PREFIX).count(),
        "created": max(count - existing, 0),
        "reused": min(existing, count),
        "create_s": took,
    }


def _live_tenants():
    from tenants.models import Tenant

    return list(
        Tenant.objects.select_related("tier")
        .exclude(schema_name="public")
        .filter(status="active")
        .order_by("pk")
    )


def seed_dataplane() -> dict:
    """Each live tenant's TENANT item, and its counters for the last 7 minutes and today's
    quota, written to the moto server (4 BatchWriteItem calls in flight)."""
    from boto3.dynamodb.types import TypeSerializer

    from broker.functions.shared import records
    from broker.sync import contract, dynamo
    from core import aws

    began = time.perf_counter()
    tenants = _live_tenants()
    dynamo.batch_write([contract.tenant_item(t) for t in tenants], workers=4)
    ser, ddb, table = TypeSerializer(), aws.dynamodb(), os.environ.get("DATAPLANE_TABLE")
    if not table:
        from django.conf import settings

        table = settings.DATAPLANE_TABLE
    ensure_dataplane_table(ddb, table)
    now = datetime.now(UTC)
    items = []
    for n, tenant in enumerate(tenants):
        for i in range(7):
            pk, sk = records.tenant_stats_key(
                str(tenant.pk), records.minute(now - timedelta(minutes=i))
            )
            items.append({"PK": pk, "SK": sk, "delivered": 20 + n % 7, "failed": n % 3, "dead": 0})
        pk, sk = records.quota_key(str(tenant.pk), records.day(now))
        items.append({"PK": pk, "SK": sk, "c": 1000 + n})

    def write(chunk):
        ddb.batch_write_item(
            RequestItems={
                table: [
                    {"PutRequest": {"Item": {k: ser.serialize(v) for k, v in item.items()}}}
                    for item in chunk
                ]
            }
        )

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(write, [items[i : i + 25] for i in range(0, len(items), 25)]))
    return {"seed_s": time.perf_counter() - began}


def onboarding(samples: int) -> dict:
    """Onboarding p50/p95 with the tenants present; the onboarded tenants are removed after."""
    from django.db import connection
    from django.test import TestCase

    from broker.sync import contract, dynamo
    from tenants import services
    from tenants.models import Tenant

    times, made = [], []
    tag = uuid.uuid4().hex[:6]
    for i in range(samples + 1):
        slug = f"onb-{tag}-{i}"
        began = time.perf_counter()
        with TestCase.captureOnCommitCallbacks(execute=True):
            tenant = services.tenant_onboard(
                name=slug.title(), slug=slug, tier="standard", admin_email=f"admin@{slug}.test"
            )
        status = Tenant.objects.values_list("status", flat=True).get(pk=tenant.pk)
        item = dynamo.get_item(contract.tenant_pk(tenant.pk), "TENANT")
        elapsed = time.perf_counter() - began
        assert status == "active" and item and item["status"] == "active", status
        made.append(tenant)
        if i:  # the first builds caches (and the template, on a new database)
            times.append(elapsed * 1000)
    connection.set_schema_to_public()
    for tenant in made:
        try:
            Tenant.objects.filter(pk=tenant.pk).delete()
            with connection.cursor() as cursor:
                cursor.execute(f'DROP SCHEMA IF EXISTS "{tenant.schema_name}" CASCADE')
        except Exception as exc:  # noqa: BLE001 (a leftover is harmless: not counted)
            log(f"could not remove {tenant.slug}: {exc}")
    return {
        "onboard_p50_ms": statistics.median(times),
        "onboard_p95_ms": pct(times, 95),
    }


def migrate_noop(url: str) -> dict:
    from tenants.models import Tenant

    env = {**os.environ, "DATABASE_URL": url}
    began = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "manage.py", "migrate_schemas", "--noinput", "-v", "1"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    took = time.perf_counter() - began
    log(done.stdout[-2000:])
    visited = sum(1 for line in done.stdout.splitlines() if "=== Starting migration" in line)
    # The public schema's own migrate counts once.
    return {
        "migrate_s": took,
        "migrate_visited": max(visited - 1, 0),
        "schemas": Tenant.objects.count(),
    }


class _BatchGets:
    """BatchGetItem calls and keys on the shared DynamoDB client."""

    def __init__(self):
        from core import aws

        self.calls = self.keys = 0
        aws.dynamodb().meta.events.register(
            "provide-client-params.dynamodb.BatchGetItem", self._count
        )

    def _count(self, params, **kwargs):
        self.calls += 1
        self.keys += sum(len(v["Keys"]) for v in params["RequestItems"].values())


class _Calls:
    """Calls of one DynamoDB operation on the shared client."""

    def __init__(self, operation: str):
        from core import aws

        self.calls = 0
        aws.dynamodb().meta.events.register(
            f"provide-client-params.dynamodb.{operation}", self._count
        )

    def _count(self, params, **kwargs):
        self.calls += 1


def activity() -> dict:
    """The job in its steady state: every row settled up to ACTIVITY_SETTLE_MINUTES before
    `now`, then three runs a minute apart. At the baseline size the first run (no rows: the
    whole hour read) is measured too."""
    from django.conf import settings
    from django.utils import timezone

    from broker.activity import services
    from broker.activity.models import TenantActivity
    from broker.activity.tasks import LOCK_SECONDS
    from broker.functions.shared import records
    from tenants.models import Tenant

    now = timezone.now()
    n = Tenant.objects.exclude(schema_name="public").exclude(status="deleted").count()
    figures = {
        "activity_interval_s": settings.CELERY_BEAT_SCHEDULE["activity-refresh"]["schedule"],
        "activity_limit_s": LOCK_SECONDS,
    }
    if n <= 500:
        TenantActivity.objects.all().delete()
        began = time.perf_counter()
        services.activity_refresh(now=now - timedelta(minutes=1))
        figures["activity_first_per100_s"] = (time.perf_counter() - began) * 100 / n
    settled = records.minute(now - timedelta(minutes=settings.ACTIVITY_SETTLE_MINUTES))
    TenantActivity.objects.all().delete()
    TenantActivity.objects.bulk_create(
        [
            TenantActivity(tenant_id=pk, settled_through=settled, minutes={}, measured_at=now)
            for pk in Tenant.objects.exclude(schema_name="public")
            .exclude(status="deleted")
            .values_list("pk", flat=True)
        ],
        batch_size=2000,
    )
    counter = _BatchGets()
    shards = settings.ACTIVITY_SHARDS
    runs, slowest = [], []
    for k in (1, 2, 3):
        each = []
        for shard in range(shards):
            began = time.perf_counter()
            result = services.activity_refresh(
                now=now + timedelta(minutes=k), shard=shard, shards=shards
            )
            each.append(time.perf_counter() - began)
            assert result.failed == 0, result
        runs.append(sum(each))
        slowest.append(max(each))
    figures.update(
        activity_s=statistics.median(runs),
        activity_shard_s=statistics.median(slowest),
        activity_shards=shards,
        activity_keys=counter.keys / 3 / n,
        activity_calls=counter.calls / 3 / n,
    )
    return figures


def console(samples: int) -> dict:
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from tenants.models import User

    _analyze_public()
    operator = User.objects.filter(email="operator@scale.test").first() or (
        User.objects.create_user(
            "operator@scale.test", "bench-pass-2026", platform_role="operator", is_staff=True
        )
    )
    client = Client(HTTP_HOST=os.environ.get("PORTAL_BASE_DOMAIN", "localhost"))
    client.force_login(operator)

    floor = timed_gets(client, "/api/v1/tiers/", samples)
    page = timed_gets(client, "/?per_page=100", samples)
    with CaptureQueriesContext(connection) as queries:
        body = client.get("/?per_page=100").content.decode()
    count = len(queries)
    assert body.count("data-tenant=") == 100, body.count("data-tenant=")
    return {
        "floor_p50_ms": statistics.median(floor),
        "page_p50_ms": statistics.median(page),
        "page_p99_ms": pct(page, 99),
        "page_queries": count,
    }


def reconciler() -> dict:
    from django.conf import settings

    from broker.sync import reconcile
    from broker.sync.models import SyncJobKind

    scan, count = {"s": 0.0}, {"s": 0.0}

    def timed(target, name):
        def call(*args, **kwargs):
            began = time.perf_counter()
            try:
                return target(*args, **kwargs)
            finally:
                name["s"] += time.perf_counter() - began

        return call

    queries = _Calls("Query")
    reconcile.dynamo.scan_all = timed(reconcile.dynamo.scan_all, scan)
    reconcile.count_objects = timed(reconcile.count_objects, count)
    job = reconcile.job_create(kind=SyncJobKind.RECONCILE)
    began = time.perf_counter()
    job = reconcile.run_job(job.pk)
    took = time.perf_counter() - began
    tenants = job.counts.get("tenants", 0)
    assert job.status == "done", (job.status, job.error[:500])
    return {
        "reconcile_s": took,
        "reconcile_per_tenant_ms": took * 1000 / max(tenants, 1),
        "reconcile_drift": job.counts.get("drift", 0),
        "reconcile_scan_s": scan["s"],
        "reconcile_count_s": count["s"],
        "reconcile_queries": queries.calls,
        "reconcile_interval_s": settings.CELERY_BEAT_SCHEDULE["reconcile-all"]["schedule"],
    }


def metrics(samples: int) -> dict:
    from django.test import Client

    client = Client(HTTP_HOST=os.environ.get("PORTAL_BASE_DOMAIN", "localhost"))
    assert client.get("/metrics").status_code == 200
    times = []
    for _ in range(samples):
        began = time.perf_counter()
        response = client.get("/metrics")
        times.append((time.perf_counter() - began) * 1000)
        assert response.status_code == 200
    return {"metrics_p50_ms": statistics.median(times)}


if __name__ == "__main__":
    main()
