"""Tenant schema creation by copying a template schema.

django-tenants creates a schema by running `migrate` in it, which replays every app's
migrations (54 here, most of them state-only for shared apps): 0.5-0.7 s per tenant on the
benchmark machine, almost all of it Django rebuilding migration state. The tables a tenant
needs are the same for every tenant of a given code version, so they are built once, in the
schema `tenant_template` (by that same `migrate`), and each new tenant gets a copy:
`CREATE TABLE … (LIKE … INCLUDING ALL)` per table, the foreign keys, and the template's
`django_migrations` rows, so `migrate_schemas` sees the copy as fully migrated.

The template carries a fingerprint of the migration graph (its schema comment); when the code's
migrations change, the next creation rebuilds it first. A test checks that a copied schema and
a migrated one are identical (tables, columns, indexes, constraints, applied migrations).
"""

import functools
import hashlib

from django.db import connection, transaction
from django.db.migrations.loader import MigrationLoader
from django_tenants.utils import schema_exists

from .models import Tenant

TEMPLATE = "tenant_template"


@functools.cache
def _fingerprint() -> str:
    # The code's migration graph: fixed for the life of a process.
    loader = MigrationLoader(None, ignore_no_migrations=True)
    nodes = sorted(f"{app}.{name}" for app, name in loader.graph.nodes)
    return hashlib.sha256("\n".join(nodes).encode()).hexdigest()[:32]


def _lock(cursor) -> None:
    cursor.execute("SELECT pg_advisory_xact_lock(hashtext('tenant-template'))")


def _template_fingerprint(cursor) -> str | None:
    cursor.execute(
        "SELECT obj_description(oid, 'pg_namespace') FROM pg_namespace WHERE nspname = %s",
        [TEMPLATE],
    )
    row = cursor.fetchone()
    return row[0] if row else None


def ensure_template() -> None:
    """Builds (or rebuilds) the template schema when it is missing or out of date.

    Holds the template lock while building, so a concurrent copy never sees half a template."""
    wanted = _fingerprint()
    connection.set_schema_to_public()
    with connection.cursor() as cursor:
        if _template_fingerprint(cursor) == wanted:
            return
        cursor.execute("SELECT pg_advisory_lock(hashtext('tenant-template'))")
    try:
        with connection.cursor() as cursor:
            if _template_fingerprint(cursor) == wanted:
                return
            cursor.execute(f'DROP SCHEMA IF EXISTS "{TEMPLATE}" CASCADE')
        Tenant(schema_name=TEMPLATE).create_schema(check_if_exists=False, verbosity=0)
        connection.set_schema_to_public()
        with connection.cursor() as cursor:
            cursor.execute(f"COMMENT ON SCHEMA \"{TEMPLATE}\" IS '{wanted}'")
    finally:
        connection.set_schema_to_public()
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(hashtext('tenant-template'))")


# The copy's statements per template fingerprint, with a placeholder for the schema's name:
# reading them from the catalog (pg_tables, pg_indexes, pg_constraint filtered by schema) scans
# every relation of the database, ~170 ms with 1,400 tenants and growing with each one.
_PLACEHOLDER = "tenant_copy_target"
_SCRIPTS: dict[str, str] = {}


def clone_template(schema: str) -> None:
    """Creates `schema` as a copy of the template: tables, constraints and indexes under their
    original names (later migrations find them by name), and the migration records. One
    round trip: the statements are read from the template once per process."""
    connection.set_schema_to_public()
    with transaction.atomic(), connection.cursor() as cursor:
        _lock(cursor)
        key = _template_fingerprint(cursor) or ""
        script = _SCRIPTS.get(key)
        if script is None:
            script = ";\n".join(clone_statements(cursor, _PLACEHOLDER))
            if key:
                _SCRIPTS[key] = script
        cursor.execute(script.replace(f'"{_PLACEHOLDER}"', f'"{schema}"'))


def clone_statements(cursor, schema: str) -> list[str]:
    """The statements that make `schema` a copy of the template, read from its catalog (run
    them under the template lock, as clone_template does)."""
    cursor.execute(
        "SELECT tablename FROM pg_tables WHERE schemaname = %s ORDER BY tablename", [TEMPLATE]
    )
    tables = [r[0] for r in cursor.fetchall()]
    statements = [f'CREATE SCHEMA "{schema}"']
    for table in tables:
        # Columns, NOT NULL, defaults and identities; keys and indexes come below, named.
        statements.append(
            f'CREATE TABLE "{schema}"."{table}" (LIKE "{TEMPLATE}"."{table}" '
            "INCLUDING DEFAULTS INCLUDING IDENTITY INCLUDING GENERATED INCLUDING STORAGE)"
        )
    statements.append(
        f'INSERT INTO "{schema}".django_migrations (app, name, applied) '  # noqa: S608
        f'SELECT app, name, applied FROM "{TEMPLATE}".django_migrations'
    )
    # Primary keys, unique and check constraints first, foreign keys last.
    cursor.execute(
        """
        SELECT c.conname, t.relname, pg_get_constraintdef(c.oid)
        FROM pg_constraint c
        JOIN pg_class t ON t.oid = c.conrelid
        JOIN pg_namespace n ON n.oid = t.relnamespace
        WHERE n.nspname = %s
        ORDER BY c.contype = 'f', c.conname
        """,
        [TEMPLATE],
    )
    constraints = cursor.fetchall()
    for name, table, definition in constraints:
        definition = definition.replace(f"{TEMPLATE}.", f'"{schema}".')
        statements.append(f'ALTER TABLE "{schema}"."{table}" ADD CONSTRAINT "{name}" {definition}')
    # Indexes that no constraint created.
    cursor.execute("SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = %s", [TEMPLATE])
    named = {name for name, _, _ in constraints}
    for name, definition in cursor.fetchall():
        if name not in named:
            statements.append(definition.replace(f" {TEMPLATE}.", f' "{schema}".'))
    return statements


def create_tenant_schema(tenant) -> None:
    """Creates the tenant's schema (idempotent: an existing schema is left as it is)."""
    if schema_exists(tenant.schema_name):
        return
    ensure_template()
    clone_template(tenant.schema_name)
