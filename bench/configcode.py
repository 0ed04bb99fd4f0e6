"""Configuration as code benchmark: export, plan and rollback at the dedicated tier's limits.

    make bench ARGS="configcode"        (or: .venv/bin/python bench/configcode.py [--quick])

Needs PostgreSQL (DATABASE_URL), Redis (REDIS_URL) and the moto server (AWS_ENDPOINT_URL), as
`make bench` starts them. Works in its own database (`<name>_bench_configcode`, dropped at
the end).

One dedicated tenant is configured by one apply of a generated document: --producers (500),
--consumers (500), --subscriptions (2,000, each with a filter) and 50 event types. Then,
medians of --samples runs: the export; the plan of the same document with one filter changed;
a one-object change through the service (and the revision storage it added); the rollback's
dry run and the rollback itself over that change. Baseline: one `SELECT` of every
subscription row (the floor of reading the configuration at all).
"""

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import drop_database, row, setup_django  # noqa: E402


def document(producers: int, consumers: int, subscriptions: int) -> dict:
    per = max(1, subscriptions // consumers)
    return {
        "producers": [{"name": f"p{i:04}", "kind": "https"} for i in range(producers)],
        "consumers": [
            {"name": f"c{i:04}", "kind": "https", "url": f"https://93.184.215.14/hooks/{i}"}
            for i in range(consumers)
        ],
        "subscriptions": [
            {
                "name": f"s{i:05}",
                "consumer": f"c{i // per % consumers:04}",
                "producer": f"p{i % producers:04}",
                "event_type": f"order.e{i % 50}",
                "filter": {"data": {"total": [{"numeric": [">", i % 1000]}]}},
            }
            for i in range(subscriptions)
        ],
        "event_types": [{"name": f"order.e{i}"} for i in range(50)],
    }


def timed(fn, samples: int):
    times, result = [], None
    for _ in range(samples):
        start = time.perf_counter()
        result = fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--producers", type=int, default=500)
    parser.add_argument("--consumers", type=int, default=500)
    parser.add_argument("--subscriptions", type=int, default=2000)
    parser.add_argument("--samples", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--keep", action="store_true", help="keep the bench database")
    args = parser.parse_args()
    if args.quick:
        args.producers, args.consumers, args.subscriptions, args.samples = 50, 50, 200, 3
    url, name = setup_django("configcode", {"SQS_QUEUE_PREFIX": f"bench-cc-{os.getpid()}"})
    try:
        run(args)
    finally:
        if not args.keep:
            from django.db import connections

            connections.close_all()
            drop_database(url, name)


def run(args) -> None:
    from django.db import connection
    from django.test import TestCase
    from django_tenants.utils import tenant_context

    from broker import services as broker_services
    from broker.configcode import document as config_document
    from broker.configcode import plan, revisions
    from broker.models import Subscription
    from portal.celery import app
    from tenants import services
    from tenants.models import Tenant, User

    app.conf.task_always_eager = True
    with TestCase.captureOnCommitCallbacks(execute=True):
        tenant = services.tenant_onboard(
            name="Bench", slug="bench-cc", tier="dedicated", admin_email="admin@bench.test"
        )
    tenant = Tenant.objects.select_related("tier").get(pk=tenant.pk)
    app.conf.task_always_eager = False  # the relay's kicks queue up; nothing drains them
    actor = User.objects.create_user("bench-cc@bench.test", "bench-pass-2026")
    doc = document(args.producers, args.consumers, args.subscriptions)
    print(f"# configcode benchmark, {time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} CPUs")
    row("figure", "value", "unit", "budget", "baseline (same run)", "ratio")
    with tenant_context(tenant):
        start = time.perf_counter()
        made = plan.make_plan(doc)
        applied = plan.apply(doc, plan=made["hash"], actor=actor)
        row(
            f"apply of {applied['changes']} creates (one revision)",
            f"{time.perf_counter() - start:.1f}",
            "s",
        )
        floor, _ = timed(lambda: list(Subscription.objects.values_list("id", "filter")), 5)
        export_ms, exported = timed(config_document.export_document, args.samples)
        row(
            "export",
            f"{export_ms:.0f}",
            "ms",
            "",
            f"SELECT subs {floor:.0f} ms",
            f"{export_ms / floor:.1f}×",
        )
        changed = config_document.by_name(exported)
        changed[("subscription", "s00000")]["filter"] = {"data": {"total": [{"numeric": [">", 5]}]}}
        plan_ms, planned = timed(lambda: plan.make_plan(exported), args.samples)
        row("plan, one filter changed", f"{plan_ms:.0f}", "ms", "", "", f"{plan_ms / floor:.1f}×")
        assert len(planned["changes"]) == 1, planned["changes"]

        good = revisions.head()
        sub = Subscription.objects.get(name="s00001")
        with connection.cursor() as cursor:
            size = "SELECT pg_total_relation_size('broker_configrevision') + pg_total_relation_size('broker_configrevisionentry')"
            cursor.execute(size)
            before = cursor.fetchone()[0]
            for i in range(200):
                broker_services.subscription_update(
                    actor=actor, subscription=sub, filter={"data": {"n": [i]}}
                )
            cursor.execute(size)
            after = cursor.fetchone()[0]
        row(
            "revision storage per one-object change",
            f"{(after - before) / 200:.0f}",
            "B",
            "",
            "tables + indexes, 200 changes",
        )
        dry_ms, dry = timed(
            lambda: plan.rollback(revision=good, dry_run=True, actor=actor), args.samples
        )
        row("rollback dry run (plan)", f"{dry_ms:.0f}", "ms")
        start = time.perf_counter()
        done = plan.rollback(revision=good, dry_run=False, actor=actor)
        row(
            f"rollback ({done['changes']} change)",
            f"{(time.perf_counter() - start) * 1000:.0f}",
            "ms",
        )
        diff = plan.diff_revisions(good, revisions.head())
        assert diff == {"added": [], "removed": [], "changed": []}, diff


if __name__ == "__main__":
    main()
