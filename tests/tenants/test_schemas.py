"""A tenant schema copied from the template is the same as one built by migrations."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django_tenants.utils import schema_context

from tenants.models import Tenant
from tenants.schemas import TEMPLATE, clone_template, ensure_template

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def describe(schema: str) -> dict:
    def norm(text):
        return text.replace(f'"{schema}".', "S.").replace(f"{schema}.", "S.")

    with connection.cursor() as cursor:
        cursor.execute(
            """SELECT table_name, column_name, data_type, is_nullable, column_default,
                      is_identity, character_maximum_length
               FROM information_schema.columns WHERE table_schema = %s""",
            [schema],
        )
        columns = sorted(tuple(norm(str(v)) for v in row) for row in cursor.fetchall())
        cursor.execute(
            """SELECT t.relname, c.conname, c.contype, pg_get_constraintdef(c.oid)
               FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid
               JOIN pg_namespace n ON n.oid = t.relnamespace WHERE n.nspname = %s""",
            [schema],
        )
        constraints = sorted(tuple(norm(str(v)) for v in row) for row in cursor.fetchall())
        cursor.execute(
            "SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = %s",
            [schema],
        )
        indexes = sorted(tuple(norm(str(v)) for v in row) for row in cursor.fetchall())
        cursor.execute(f'SELECT app, name FROM "{schema}".django_migrations')  # noqa: S608
        migrations = sorted(cursor.fetchall())
    return {
        "columns": columns,
        "constraints": constraints,
        "indexes": indexes,
        "migrations": migrations,
    }


def test_a_copied_schema_equals_a_migrated_one_and_needs_no_migration():
    ensure_template()
    Tenant(schema_name="cmp_migrated").create_schema(check_if_exists=True, verbosity=0)
    connection.set_schema_to_public()
    clone_template("cmp_cloned")
    try:
        migrated, cloned = describe("cmp_migrated"), describe("cmp_cloned")
        assert migrated["columns"] and migrated["indexes"] and migrated["migrations"]
        for part in ("columns", "constraints", "indexes", "migrations"):
            assert cloned[part] == migrated[part], part
        with schema_context("cmp_cloned"):
            executor = MigrationExecutor(connection)
            assert executor.migration_plan(executor.loader.graph.leaf_nodes()) == []
    finally:
        connection.set_schema_to_public()
        with connection.cursor() as cursor:
            cursor.execute('DROP SCHEMA IF EXISTS "cmp_migrated" CASCADE')
            cursor.execute('DROP SCHEMA IF EXISTS "cmp_cloned" CASCADE')


def test_the_template_is_rebuilt_when_the_migrations_change(monkeypatch):
    from tenants import schemas

    ensure_template()
    with connection.cursor() as cursor:
        cursor.execute(f"COMMENT ON SCHEMA {TEMPLATE} IS 'stale'")
    ensure_template()
    with connection.cursor() as cursor:
        assert schemas._template_fingerprint(cursor) == schemas._fingerprint()
