"""What the Django benchmarks share: a database of their own, Django set up against it with
the shared schema migrated and the AWS resources bootstrapped, log lines in a file (stdout
holds the figures), percentiles and table rows."""

import logging
import os
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
# Where a benchmark's log lines go, its own and its worker's and web server's: `make bench`
# prints figures only (var/log holds the services' logs too).
LOG_DIR = Path(os.environ.get("BENCH_LOG_DIR") or ROOT / "var" / "log")


def log_file(name: str):
    """An open file for a process's output, var/log/bench-<name>.log (appended: the
    benchmarks of one `make bench` share nothing else)."""
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    return (LOG_DIR / f"bench-{name}.log").open("a", buffering=1)


def log_to_file(name: str) -> Path:
    """This process's log lines (Django's, Celery's, eager tasks') to var/log/bench-<name>.log
    instead of the terminal, in the configured format."""
    stream = log_file(name)
    root = logging.getLogger()
    for handler in root.handlers:
        if isinstance(handler, logging.StreamHandler) and not isinstance(
            handler, logging.FileHandler
        ):
            handler.setStream(stream)
    return Path(stream.name)


def bench_database_url(suffix: str) -> tuple[str, str]:
    """DATABASE_URL with the database `<name>_bench_<suffix>` (no query string)."""
    url = os.environ.get("DATABASE_URL")
    if not url:
        sys.exit("DATABASE_URL is not set (run through `make bench`)")
    parts = urlsplit(url)
    name = f"{parts.path.lstrip('/')}_bench_{suffix}"
    return urlunsplit(parts._replace(path="/" + name, query="")), name


def admin_url(url: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path="/postgres"))


def recreate_database(url: str, name: str) -> None:
    with psycopg.connect(admin_url(url), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def drop_database(url: str, name: str) -> None:
    with psycopg.connect(admin_url(url), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def ensure_database(url: str, name: str) -> bool:
    """Creates the database unless it exists; True when it existed (a kept one, reused)."""
    with psycopg.connect(admin_url(url), autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            return True
        conn.execute(f'CREATE DATABASE "{name}"')
    return False


def setup_django(
    suffix: str, env: dict[str, str] | None = None, *, reuse: bool = False
) -> tuple[str, str]:
    """A fresh bench database (with `reuse`, the kept one if it exists), `env` exported, Django set up with DEBUG off (as production
    serves; DEBUG would also keep every SQL query in memory), the shared schema migrated and
    `bootstrap_aws` run on the moto server. Returns (database url, name) for drop_database."""
    if not os.environ.get("AWS_ENDPOINT_URL"):
        sys.exit("AWS_ENDPOINT_URL must point at the moto server (run through `make bench`)")
    url, name = bench_database_url(suffix)
    if reuse:
        ensure_database(url, name)
    else:
        recreate_database(url, name)
    os.environ["DATABASE_URL"] = url
    os.environ.update(env or {})
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    os.environ.setdefault("DJANGO_SECRET_KEY", "bench-only-key")
    # Development-style settings (plain-http cookies, no SSL redirect), then DEBUG off.
    os.environ["DJANGO_DEBUG"] = "1"
    import django

    django.setup()
    path = log_to_file(suffix)
    print(f"# log lines: {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
    from django.conf import settings
    from django.core.management import call_command

    from portal.management.commands.bootstrap_aws import bootstrap_aws

    settings.DEBUG = False
    call_command("migrate_schemas", "--shared", verbosity=0)
    bootstrap_aws()
    return url, name


def pct(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def row(name, value, unit, budget="", baseline="", ratio=""):
    print(f"{name:<48} {value:>12} {unit:<8} {budget:<16} {baseline:<22} {ratio}")


def timed_gets(client, path: str, samples: int) -> list[float]:
    """Milliseconds of `samples` GETs of `path` by a Django test client, after one to warm;
    every answer must be 200."""
    assert client.get(path).status_code == 200  # warm
    times = []
    for _ in range(samples):
        began = time.perf_counter()
        response = client.get(path)
        times.append((time.perf_counter() - began) * 1000)
        assert response.status_code == 200, response.content[:300]
    return times


def ensure_dataplane_table(ddb, table: str) -> None:
    """The benchmark's own data-plane table, keys only, as deploy/template.yaml declares the
    stack's (the benchmarks write their items to a table of their own, not the stack's)."""
    try:
        ddb.create_table(
            TableName=table,
            KeySchema=[
                {"AttributeName": "PK", "KeyType": "HASH"},
                {"AttributeName": "SK", "KeyType": "RANGE"},
            ],
            AttributeDefinitions=[
                {"AttributeName": "PK", "AttributeType": "S"},
                {"AttributeName": "SK", "AttributeType": "S"},
            ],
            BillingMode="PAY_PER_REQUEST",
        )
    except ddb.exceptions.ResourceInUseException:
        pass
