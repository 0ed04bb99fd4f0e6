"""What the Django benchmarks share: a database of their own, Django set up against it with
the shared schema migrated and the AWS resources bootstrapped, percentiles and table rows."""

import os
import sys
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


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


def setup_django(suffix: str, env: dict[str, str] | None = None) -> tuple[str, str]:
    """A fresh bench database, `env` exported, Django set up with DEBUG off (as production
    serves; DEBUG would also keep every SQL query in memory), the shared schema migrated and
    `bootstrap_aws` run on the moto server. Returns (database url, name) for drop_database."""
    if not os.environ.get("AWS_ENDPOINT_URL"):
        sys.exit("AWS_ENDPOINT_URL must point at the moto server (run through `make bench`)")
    url, name = bench_database_url(suffix)
    recreate_database(url, name)
    os.environ["DATABASE_URL"] = url
    os.environ.update(env or {})
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    os.environ.setdefault("DJANGO_SECRET_KEY", "bench-only-key")
    # Development-style settings (plain-http cookies, no SSL redirect), then DEBUG off.
    os.environ["DJANGO_DEBUG"] = "1"
    import django

    django.setup()
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
