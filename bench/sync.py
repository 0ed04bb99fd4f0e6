"""Sync benchmark: config save → item visible in DynamoDB, and the full resync's throughput.

    make bench ARGS="sync"            (or: .venv/bin/python bench/sync.py [--quick])

Needs PostgreSQL (DATABASE_URL), Redis (REDIS_URL) and the moto server (AWS_ENDPOINT_URL), as
`make bench` starts them. Works in its own database (`<name>_bench_sync`, dropped at the end).

1. Propagation: a real Celery worker (its own process) relays; this process saves a change
   through the service and polls GetItem until the new version is there. p50 / p99 over
   --changes (500) changes. Budget: p50 ≤ 25 ms, p99 ≤ 100 ms.
2. Full resync of --items (20,000) items of one tenant into an empty partition, against, on the
   same moto server in the same run: unconditional BatchWriteItem of the same items (the
   emulator's ceiling), and sequential conditional PutItem. Budget: resync ≥ 0.8× batch,
   ≥ 10× sequential.
"""

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, drop_database, log_file, pct, row, setup_django  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--changes", type=int, default=500)
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--sequential-sample", type=int, default=3_000)
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--keep", action="store_true", help="keep the bench database")
    args = parser.parse_args()
    if args.quick:
        args.changes, args.items, args.sequential_sample = 50, 2_000, 500
    url, name = setup_django("sync")
    worker = None
    try:
        tenant, actor = setup_tenant()
        print(f"# sync benchmark, {time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} CPUs")
        row("figure", "value", "unit", "budget", "baseline (same run)", "ratio")
        worker = start_worker(url)
        propagation(tenant, actor, args.changes)
        stop_worker(worker)
        worker = None
        resync(tenant, args.items, args.sequential_sample)
    finally:
        if worker is not None:
            stop_worker(worker)
        from django.db import connections

        connections.close_all()
        if not args.keep:
            drop_database(url, name)


def setup_tenant():
    from django.test import TestCase

    from portal.celery import app
    from tenants import services
    from tenants.models import Tenant, User

    app.conf.task_always_eager = True
    with TestCase.captureOnCommitCallbacks(execute=True):
        tenant = services.tenant_onboard(
            name="Bench", slug="bench", tier="dedicated", admin_email="admin@bench.test"
        )
    tenant = Tenant.objects.select_related("tier").get(pk=tenant.pk)
    assert tenant.status == "active", tenant.provisioning_error
    # The documented maximum (tenants.models.QUOTA_RANGES): --items / 3 of each kind fit.
    services.tenant_update_quotas(
        tenant=tenant, overrides={"max_producers": 10_000, "max_consumers": 10_000}
    )
    tenant = Tenant.objects.select_related("tier").get(pk=tenant.pk)
    actor = User.objects.create_user("bench@bench.test", "bench-pass-2026")
    app.conf.task_always_eager = False
    return tenant, actor


def start_worker(url):
    env = {**os.environ, "DATABASE_URL": url, "CELERY_TASK_ALWAYS_EAGER": "0"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "portal",
            "worker",
            "--pool=solo",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            f"--loglevel={os.environ.get('BENCH_WORKER_LOGLEVEL', 'WARNING')}",
        ],
        cwd=ROOT,
        env=env,
        start_new_session=True,
        stdout=log_file("sync-worker"),
        stderr=subprocess.STDOUT,
    )
    from portal.celery import app

    app.control.purge()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if app.control.ping(timeout=0.5):
            return proc
    raise RuntimeError("the Celery worker did not start")


def stop_worker(proc) -> None:
    import signal

    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)


def propagation(tenant, actor, changes: int) -> None:
    from django_tenants.utils import tenant_context

    from broker import services
    from broker.sync import dynamo

    with tenant_context(tenant):
        producer, _ = services.producer_create(actor=actor, name="hot", kind="https")
    pk, sk = f"TENANT#{tenant.pk}", f"PRODUCER#{producer.pk}"
    wait_version(pk, sk, producer.version, timeout=30)
    latencies, saves = [], []
    for i in range(changes):
        with tenant_context(tenant):
            start = time.perf_counter()
            producer = services.producer_update(
                actor=actor, producer=producer, description=f"change {i}"
            )
            saves.append((time.perf_counter() - start) * 1000)
        wait_version(pk, sk, producer.version, timeout=10)
        latencies.append((time.perf_counter() - start) * 1000)
    # The same GetItem loop without a change: what polling alone costs.
    polls = []
    for _ in range(50):
        start = time.perf_counter()
        dynamo.get_item(pk, sk)
        polls.append((time.perf_counter() - start) * 1000)
    poll = statistics.median(polls)
    p50, p99 = statistics.median(latencies), pct(latencies, 99)
    row(
        "propagation p50 (save → visible)",
        f"{p50:.1f}",
        "ms",
        "≤ 25 ms",
        f"GetItem {poll:.1f} ms",
        f"{p50 / poll:.1f}×",
    )
    row("propagation p99", f"{pct(latencies, 99):.1f}", "ms", "≤ 100 ms", "", "")
    row("propagation max", f"{max(latencies):.1f}", "ms", "", "", "")
    row("  of which the save (service, commit, kick)", f"{statistics.median(saves):.1f}", "ms")
    row("  changes measured", len(latencies), "", "", "", "")
    _ = p99


def wait_version(pk, sk, version, *, timeout):
    from broker.sync import dynamo

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        item = dynamo.get_item(pk, sk)
        if item and int(item["version"]) >= version:
            return
        time.sleep(0.002)  # a tight loop would take the emulator's CPU from the worker
    raise TimeoutError(f"{sk} v{version} did not reach DynamoDB in {timeout} s")


def create_objects(tenant, items: int):
    """items objects (producers, consumers, event types) inserted in bulk."""
    from django_tenants.utils import tenant_context

    from broker.models import Consumer, EventType, Producer

    third = items // 3
    with tenant_context(tenant):
        Producer.objects.bulk_create(
            [Producer(name=f"p{i}", kind="https") for i in range(third)], batch_size=2000
        )
        Consumer.objects.bulk_create(
            [
                Consumer(
                    name=f"c{i}",
                    kind="sqs",
                    queue_arn=f"arn:aws:sqs:eu-west-1:123456789012:q{i}",
                    retry_policy={"strategy": "schedule", "schedule": [5, 60], "max_attempts": 3},
                )
                for i in range(third)
            ],
            batch_size=2000,
        )
        EventType.objects.bulk_create(
            [EventType(name=f"bench.t{i}") for i in range(items - 2 * third)], batch_size=2000
        )


def built_items(tenant):
    from django_tenants.utils import tenant_context

    from broker.sync import contract
    from broker.sync.registry import MODELS

    out = []
    with tenant_context(tenant):
        for object_type, model in MODELS.items():
            builder = contract.BUILDERS[object_type]
            out.extend(builder(obj, tenant=tenant) for obj in model.objects.iterator())
    return out


def resync(tenant, items: int, sample: int) -> None:
    from broker.sync import dynamo, reconcile

    # Existing items (the hot producer, its key) go too: the partition starts empty.
    create_objects(tenant, items)
    base = built_items(tenant)
    n = len(base)

    # Baseline 1: unconditional BatchWriteItem of the same items, other partition keys.
    # Copies under other keys, without the index attribute (they belong to no tenant).
    copies = [{**i, "PK": i["PK"] + "#batch", "apikey_tenant_id": None} for i in base]
    start = time.perf_counter()
    dynamo.batch_write(copies)
    batch_rate = n / (time.perf_counter() - start)
    del copies

    # Baseline 2: sequential conditional PutItem (a sample; items/s is what is compared).
    copies = [{**i, "PK": i["PK"] + "#seq", "apikey_tenant_id": None} for i in base[:sample]]
    start = time.perf_counter()
    for item in copies:
        dynamo.put_versioned(item)
    seq_rate = len(copies) / (time.perf_counter() - start)
    del copies, base

    from django.conf import settings

    client = dynamo.aws.dynamodb()
    for stored in dynamo.query_partition(f"TENANT#{tenant.pk}"):
        if stored["SK"] != "TENANT":
            client.delete_item(
                TableName=settings.DYNAMODB_CONFIG_TABLE,
                Key={"PK": {"S": stored["PK"]}, "SK": {"S": stored["SK"]}},
            )
    start = time.perf_counter()
    counts = reconcile.sync_tenant(tenant, resync=True)
    elapsed = time.perf_counter() - start
    resync_rate = counts["written"] / elapsed
    row(
        f"full resync ({counts['written']} items written)",
        f"{resync_rate:,.0f}",
        "items/s",
        "≥ 0.8× batch",
        f"BatchWriteItem {batch_rate:,.0f}/s",
        f"{resync_rate / batch_rate:.2f}×",
    )
    row(
        "full resync vs sequential PutItem",
        f"{resync_rate:,.0f}",
        "items/s",
        "≥ 10× sequential",
        f"PutItem {seq_rate:,.0f}/s",
        f"{resync_rate / seq_rate:.1f}×",
    )
    # Memory on a second, traced run (tracing slows Python down: not during the timed one).
    import tracemalloc

    tracemalloc.start()
    reconcile.sync_tenant(tenant, resync=True)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    row("full resync peak Python memory", f"{peak / 2**20:.1f}", "MiB", "bounded", "", "")
    start = time.perf_counter()
    again = reconcile.sync_tenant(tenant)
    took = time.perf_counter() - start
    row(
        "reconcile (read, compare; nothing to repair)",
        f"{again['objects'] / took:,.0f}",
        "items/s",
        "",
        f"drift {again['drift']}",
        "",
    )


if __name__ == "__main__":
    main()
