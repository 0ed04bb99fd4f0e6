"""Load benchmark: concurrent API clients through the real gunicorn server, with the database
connections it opens counted.

    make bench ARGS="load"            (or: .venv/bin/python bench/load.py [--quick])

Needs PostgreSQL (DATABASE_URL), Redis (REDIS_URL) and the moto server (AWS_ENDPOINT_URL), as
`make bench` starts them. Works in its own database (`<name>_bench_load`, dropped at the end).

--clients (50) threads over --tenants (5) tenants, for --seconds (60; --quick: 15), each
with its tenant admin's token, send a mix of reads (lists of producers, consumers,
subscriptions, event types, audit events; `me`) and writes (PATCH a producer, create and
delete an event type) to gunicorn started with portal/gunicorn_conf.py (DEBUG off, as
`make run` starts it) and a real Celery worker relaying the changes. A poller counts the
connections in pg_stat_activity every 50 ms, per application (web, worker).

Pass: 0 errors (any status ≥ 400 or a failed request), and the web's peak connections ≤ the
configured bound WEB_WORKERS × WEB_THREADS ≤ WEB_DB_MAX_CONNECTIONS. Prints p50/p99.
"""

import argparse
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, admin_url, drop_database, log_file, pct, setup_django  # noqa: E402

PASSWORD = "Load-Bench-2026!"
READS = [
    "/api/v1/producers/",
    "/api/v1/consumers/",
    "/api/v1/subscriptions/",
    "/api/v1/event-types/",
    "/api/v1/audit-events/?page_size=20",
    "/api/v1/me/",
]


def row(name, value, unit="", budget=""):
    print(f"{name:<52} {value:>12} {unit:<6} {budget}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def setup(tenant_count: int) -> list[dict]:
    """Tenants with an admin each, two producers and a consumer (services, Celery eager)."""
    from django.test import TestCase
    from django_tenants.utils import tenant_context

    from broker import services as broker_services
    from portal.celery import app
    from tenants import services
    from tenants.models import QUOTA_FIELDS, Membership, Tenant, User

    app.conf.task_always_eager = True
    out = []
    for n in range(tenant_count):
        slug = f"load-{n}"
        with TestCase.captureOnCommitCallbacks(execute=True):
            tenant = services.tenant_onboard(name=slug, slug=slug, tier="standard")
        tenant = Tenant.objects.select_related("tier").get(pk=tenant.pk)
        assert tenant.status == "active", tenant.provisioning_error
        # A benchmark measures the server, not the plan: budgets out of the way.
        big = {"api_requests_per_minute": 10**7, "max_event_types": 10**6}
        Tenant.objects.filter(pk=tenant.pk).update(
            quota_overrides={k: v for k, v in big.items() if k in QUOTA_FIELDS}
        )
        user = User.objects.create_user(f"admin@{slug}.test", PASSWORD)
        Membership.objects.create(user=user, tenant=tenant, role="admin")
        tenant = Tenant.objects.select_related("tier").get(pk=tenant.pk)
        with tenant_context(tenant), TestCase.captureOnCommitCallbacks(execute=True):
            producers = [
                broker_services.producer_create(actor=user, name=f"p{i}", kind="https")[0]
                for i in range(2)
            ]
            broker_services.consumer_create(
                actor=user,
                name="c",
                kind="sqs",
                queue_arn=f"arn:aws:sqs:eu-west-1:123456789012:load-sink-{n}",  # one a tenant
            )
        out.append({"slug": slug, "email": user.email, "producers": [str(p.pk) for p in producers]})
    app.conf.task_always_eager = False
    return out


class Server:
    """gunicorn (portal/gunicorn_conf.py) and a Celery worker, on the bench database."""

    def __init__(self, url: str, port: int, workers: int, threads: int, bound: int):
        self.port = port
        base = {
            **os.environ,
            "DJANGO_DEBUG": "0",
            "DJANGO_SECRET_KEY": "bench-only-key-not-secret-at-least-32-bytes",
            "DJANGO_SECURE_SSL_REDIRECT": "0",
            "DJANGO_SECURE_HSTS_SECONDS": "0",
            "DJANGO_SECURE_COOKIES": "0",
            "PORTAL_URL_SCHEME": "http",
        }
        self.logs = {n: log_file(f"load-{n}") for n in ("web", "worker")}  # noqa: SIM115
        web_env = {
            **base,
            "DATABASE_URL": url + "?application_name=bench-web",
            "WEB_HOST": "127.0.0.1",
            "WEB_PORT": str(port),
            "WEB_WORKERS": str(workers),
            "WEB_THREADS": str(threads),
            "WEB_DB_MAX_CONNECTIONS": str(bound),
            "WEB_ACCESS_LOG": "/dev/null",
        }
        worker_env = {**base, "DATABASE_URL": url + "?application_name=bench-worker"}
        venv = Path(sys.executable).parent
        self.web = subprocess.Popen(
            [str(venv / "gunicorn"), "-c", "python:portal.gunicorn_conf", "portal.wsgi"],
            cwd=ROOT,
            env=web_env,
            stdout=self.logs["web"],
            stderr=subprocess.STDOUT,
        )
        self.worker = subprocess.Popen(
            [str(venv / "celery"), "-A", "portal", "worker", "-l", "warning", "--concurrency", "2"],
            cwd=ROOT,
            env=worker_env,
            stdout=self.logs["worker"],
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self, http) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.web.poll() is not None:
                sys.exit(f"gunicorn exited: see {self.logs['web'].name}")
            try:
                r = http.request(
                    "GET",
                    f"http://127.0.0.1:{self.port}/healthz",
                    headers={"Host": "localhost"},
                    retries=False,
                )
                if r.status == 200:
                    return
            except Exception:  # noqa: BLE001 (not up yet)
                pass
            time.sleep(0.2)
        sys.exit(f"gunicorn did not answer /healthz within 60 s: see {self.logs['web'].name}")

    def stop(self) -> None:
        for proc in (self.web, self.worker):
            proc.terminate()
        for proc in (self.web, self.worker):
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        for log in self.logs.values():
            log.close()


class ConnectionPoller(threading.Thread):
    """Peak connections to the bench database, per application_name, every 50 ms."""

    def __init__(self, url: str, name: str):
        super().__init__(daemon=True)
        self.url, self.name = url, name
        self.peak: Counter = Counter()
        self.peak_total = 0
        self.stopping = threading.Event()

    def run(self) -> None:
        import psycopg

        with psycopg.connect(admin_url(self.url), autocommit=True) as conn:
            while not self.stopping.is_set():
                rows = conn.execute(
                    "SELECT application_name, count(*) FROM pg_stat_activity "
                    "WHERE datname = %s GROUP BY 1",
                    [self.name],
                ).fetchall()
                for app_name, count in rows:
                    self.peak[app_name] = max(self.peak[app_name], count)
                self.peak_total = max(self.peak_total, sum(c for _, c in rows))
                time.sleep(0.05)


def token(http, port: int, tenant: dict) -> str:
    r = http.request(
        "POST",
        f"http://127.0.0.1:{port}/api/v1/auth/token/",
        body=json.dumps({"email": tenant["email"], "password": PASSWORD}),
        headers={"Host": f"{tenant['slug']}.localhost", "Content-Type": "application/json"},
    )
    assert r.status == 200, (r.status, r.data[:300])
    return json.loads(r.data)["access"]


def client(n, http, port, tenant, access, deadline, results, errors) -> None:
    rng = random.Random(n)  # noqa: S311
    base = f"http://127.0.0.1:{port}"
    headers = {
        "Host": f"{tenant['slug']}.localhost",
        "Authorization": f"Bearer {access}",
        "Content-Type": "application/json",
    }
    created = None
    seq = 0
    while time.monotonic() < deadline:
        seq += 1
        roll = rng.random()
        if roll < 0.75:
            kind, method, path, body = "read", "GET", rng.choice(READS), None
        elif roll < 0.85:
            producer = rng.choice(tenant["producers"])
            kind, method, path = "write", "PATCH", f"/api/v1/producers/{producer}/"
            body = json.dumps({"description": f"client {n} request {seq}"})
        elif created is None:
            kind, method, path = "write", "POST", "/api/v1/event-types/"
            body = json.dumps({"name": f"load.c{n}.e{seq}"})
        else:
            kind, method, path, body = "write", "DELETE", f"/api/v1/event-types/{created}/", None
        started = time.perf_counter()
        try:
            r = http.request(method, base + path, body=body, headers=headers, retries=False)
            status, data = r.status, r.data
        except Exception as exc:  # noqa: BLE001 (counted as an error)
            status, data = 0, repr(exc).encode()
        elapsed = time.perf_counter() - started
        results.append((kind, elapsed))
        if status >= 400 or status == 0:
            errors.append((method, path, status, data[:200]))
        elif method == "POST":
            created = json.loads(data)["id"]
        elif method == "DELETE":
            created = None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--tenants", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--workers", type=int, default=int(os.environ.get("WEB_WORKERS", 3)))
    parser.add_argument("--threads", type=int, default=int(os.environ.get("WEB_THREADS", 4)))
    parser.add_argument(
        "--bound", type=int, default=int(os.environ.get("WEB_DB_MAX_CONNECTIONS", 16))
    )
    parser.add_argument("--quick", action="store_true", help="15 s instead of 60")
    parser.add_argument("--keep", action="store_true", help="keep the bench database")
    args = parser.parse_args()
    if args.quick:
        args.seconds = 15
    url, name = setup_django("load")
    import urllib3
    from django.db import connections

    server = None
    poller = ConnectionPoller(url, name)
    try:
        tenants = setup(args.tenants)
        connections.close_all()
        port = free_port()
        server = Server(url, port, args.workers, args.threads, args.bound)
        http = urllib3.PoolManager(maxsize=args.clients + 4, timeout=urllib3.Timeout(30))
        server.wait_ready(http)
        tokens = [token(http, port, t) for t in tenants]
        poller.start()
        results, errors = [], []
        deadline = time.monotonic() + args.seconds
        threads = [
            threading.Thread(
                target=client,
                args=(n, http, port, tenants[n % len(tenants)], tokens[n % len(tenants)]),
                kwargs={"deadline": deadline, "results": results, "errors": errors},
            )
            for n in range(args.clients)
        ]
        started = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.monotonic() - started
        time.sleep(0.2)
        poller.stopping.set()
        poller.join(timeout=5)
        report(args, results, errors, poller, wall)
        failed = bool(errors) or poller.peak["bench-web"] > args.workers * args.threads
    finally:
        poller.stopping.set()
        if server is not None:
            server.stop()
        connections.close_all()
        if not args.keep:
            drop_database(url, name)
    sys.exit(1 if failed else 0)


def report(args, results, errors, poller, wall) -> None:
    by_kind = defaultdict(list)
    for kind, elapsed in results:
        by_kind[kind].append(elapsed * 1000)
    every = [e for values in by_kind.values() for e in values]
    bound = args.workers * args.threads
    print(f"# load benchmark, {time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} CPUs")
    row("figure", "value", "unit", "budget")
    row("clients / tenants / seconds", f"{args.clients}/{args.tenants}/{wall:.0f}")
    row("gunicorn workers × threads (the bound)", f"{args.workers}×{args.threads}={bound}")
    row("WEB_DB_MAX_CONNECTIONS", args.bound)
    row("requests", len(results), "", f"{len(results) / wall:.0f} req/s")
    row("errors", len(errors), "", "= 0")
    for method, path, status, body in errors[:10]:
        print(f"    {status} {method} {path} {body!r}")
    if errors:
        print(f"    by status: {dict(Counter(e[2] for e in errors))}")
    row("p50 (all)", f"{statistics.median(every):.1f}", "ms")
    row("p99 (all)", f"{pct(every, 99):.1f}", "ms")
    for kind in ("read", "write"):
        values = by_kind.get(kind) or [0]
        row(
            f"p50 / p99 ({kind}s, {len(by_kind.get(kind, []))})",
            f"{statistics.median(values):.1f}/{pct(values, 99):.1f}",
            "ms",
        )
    row("peak PostgreSQL connections, web", poller.peak["bench-web"], "", f"≤ {bound}")
    row("peak PostgreSQL connections, Celery worker", poller.peak["bench-worker"])
    row("peak PostgreSQL connections, all (bench db)", poller.peak_total)


if __name__ == "__main__":
    main()
