"""Onboarding benchmark: a pool tenant end to end, with 0 and with 1,000 tenants present, and
`migrate_schemas` with nothing to do, standard vs multiprocessing executor.

    make bench ARGS="onboarding"        (or: .venv/bin/python bench/onboarding.py [--quick])

Needs PostgreSQL, Redis and the moto server (AWS_ENDPOINT_URL), as `make bench` starts them.
Works in its own database (`<name>_bench_onboarding`, dropped at the end unless --keep).

Onboarding = the service call (tenant row, domain, audit) then provisioning (schema copied
from the template, see tenants/schemas.py; queues; TENANT item written to DynamoDB; first admin
invited), until the tenant is active and its TENANT item is readable. Celery runs eagerly here so that the figure is the work, not the
queue. Baseline in the same run: plain django-tenants schema creation (`create_schema`).
Budgets (docs/design.md): onboarding p50 ≤ 250 ms, also with 1,000 tenants; migrate_schemas no-op
with 1,000 tenants ≤ 20 s (multiprocessing).
"""

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, drop_database, pct, setup_django  # noqa: E402


def row(name, value, unit="", budget="", baseline="", ratio=""):
    print(f"{name:<46} {value:>10} {unit:<4} {budget:<12} {baseline:<28} {ratio}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=1000, help="tenants present (1,000)")
    parser.add_argument("--samples", type=int, default=20, help="onboardings measured per case")
    parser.add_argument("--quick", action="store_true", help="50 tenants, 5 samples")
    parser.add_argument("--keep", action="store_true", help="keep the bench database")
    args = parser.parse_args()
    if args.quick:
        args.tenants, args.samples = 50, 5
    os.environ.setdefault("EMAIL_BACKEND", "django.core.mail.backends.locmem.EmailBackend")
    url, name = setup_django("onboarding", {"CELERY_TASK_ALWAYS_EAGER": "1"})
    try:
        run(args, url)
    finally:
        from django.db import connections

        connections.close_all()
        if not args.keep:
            drop_database(url, name)


def onboard(slug: str) -> float:
    """Seconds from the service call to an active tenant with its TENANT item readable."""
    from django.test import TestCase

    from broker.sync import contract, dynamo
    from tenants import services
    from tenants.models import Tenant

    start = time.perf_counter()
    with TestCase.captureOnCommitCallbacks(execute=True):
        tenant = services.tenant_onboard(
            name=slug.title(), slug=slug, tier="standard", admin_email=f"admin@{slug}.test"
        )
    status = Tenant.objects.values_list("status", flat=True).get(pk=tenant.pk)
    item = dynamo.get_item(contract.tenant_pk(tenant.pk), "TENANT")
    elapsed = time.perf_counter() - start
    assert status == "active" and item and item["status"] == "active", status
    return elapsed


def plain_schema(i: int) -> float:
    """Baseline: django-tenants creating and migrating one schema, nothing else."""
    from django.db import connection

    from tenants.models import Tenant

    bare = Tenant(schema_name=f"bench_plain_{i}")
    start = time.perf_counter()
    bare.create_schema(check_if_exists=True, verbosity=0)
    elapsed = time.perf_counter() - start
    with connection.cursor() as cursor:
        cursor.execute(f'DROP SCHEMA "bench_plain_{i}" CASCADE')
    return elapsed


def measure(label: str, samples: int, offset: int) -> list[float]:
    onboarding = [onboard(f"{label}-{offset + i}") * 1000 for i in range(samples)]
    baseline = [plain_schema(offset + i) * 1000 for i in range(samples)]
    p50, base = statistics.median(onboarding), statistics.median(baseline)
    present = label.split("-")[-1]
    row(
        f"onboarding p50, {present} tenants present",
        f"{p50:.0f}",
        "ms",
        "≤ 250 ms",
        f"plain schema p50 {base:.0f} ms",
        f"{p50 / base:.2f}×",
    )
    row(
        f"onboarding p95, {present} tenants present",
        f"{pct(onboarding, 95):.0f}",
        "ms",
        "",
        f"plain schema p95 {pct(baseline, 95):.0f} ms",
        f"{pct(onboarding, 95) / pct(baseline, 95):.2f}×",
    )
    return onboarding


def migrate(executor: str, url: str) -> float:
    env = {**os.environ, "DATABASE_URL": url}
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "manage.py", "migrate_schemas", f"--executor={executor}", "-v", "0"],
        cwd=ROOT,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return time.perf_counter() - start


def run(args, url: str) -> None:
    from tenants.models import Tenant
    from tenants.schemas import ensure_template

    print(f"# onboarding benchmark, {time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} CPUs")
    row("figure", "value", "unit", "budget", "baseline (same run)", "ratio")
    start = time.perf_counter()
    ensure_template()  # once per code version (the first onboarding would do it)
    row("building the tenant template schema (once)", f"{time.perf_counter() - start:.1f}", "s")
    measure("empty-0", args.samples, 0)
    existing = Tenant.objects.exclude(schema_name="public").count()
    start = time.perf_counter()
    filler = [onboard(f"filler-{i}") for i in range(args.tenants - existing)]
    took = time.perf_counter() - start
    present = Tenant.objects.exclude(schema_name="public").count()
    row(
        f"creating {len(filler)} more tenants (same service)",
        f"{took:.0f}",
        "s",
        "",
        f"{len(filler) / took:.1f} tenants/s",
        "",
    )
    measure(f"full-{present}", args.samples, 10_000)
    standard = migrate("standard", url)
    parallel = migrate("multiprocessing", url)
    total = Tenant.objects.count()
    row(
        f"migrate_schemas no-op, {total} schemas, multiproc.",
        f"{parallel:.1f}",
        "s",
        "≤ 20 s",
        f"standard executor {standard:.1f} s",
        f"{parallel / standard:.2f}×",
    )


if __name__ == "__main__":
    main()
