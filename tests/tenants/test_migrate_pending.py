"""`migrate_schemas` visits only the tenant schemas with a migration to apply
(tenants/migrate.py): one query finds them, the others are left untouched."""

import io

import pytest
from django.core.management import call_command
from django.db import connection
from django_tenants.signals import schema_migrated, schema_pre_migration

from tenants.migrate import pending_schemas
from tenants.models import Tenant, Tier
from tenants.schemas import clone_template, ensure_template

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

LAST = ("broker", "0009_subscription_name_unique")
BEFORE = "0008_subscription_name_config_revisions"


def _unique_name_constraints(schema: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            """SELECT count(*) FROM pg_constraint c
               JOIN pg_class t ON t.oid = c.conrelid
               JOIN pg_namespace n ON n.oid = t.relnamespace
               JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = ANY (c.conkey)
               WHERE n.nspname = %s AND t.relname = 'broker_subscription'
                 AND c.contype = 'u' AND a.attname = 'name'""",
            [schema],
        )
        return cursor.fetchone()[0]


def _applied(schema: str) -> set:
    with connection.cursor() as cursor:
        cursor.execute(f'SELECT app, name FROM "{schema}".django_migrations')  # noqa: S608
        return set(cursor.fetchall())


@pytest.fixture
def two_schemas():
    """Two tenants whose schemas are copies of the template (fully migrated)."""
    ensure_template()
    tier = Tier.objects.get(name="standard")
    made = []
    for slug in ("mig-current", "mig-behind"):
        schema = "t_" + slug.replace("-", "_")
        clone_template(schema)
        made.append(Tenant.objects.create(name=slug, slug=slug, schema_name=schema, tier=tier))
    yield made
    connection.set_schema_to_public()
    Tenant.objects.filter(pk__in=[t.pk for t in made]).delete()
    with connection.cursor() as cursor:
        for tenant in made:
            cursor.execute(f'DROP SCHEMA IF EXISTS "{tenant.schema_name}" CASCADE')


def test_only_the_schema_missing_a_migration_is_migrated(two_schemas):
    current, behind = two_schemas
    # `behind` really runs an older code version: its last broker migration unapplied.
    call_command(
        "migrate_schemas",
        "broker",
        BEFORE,
        schema_name=behind.schema_name,
        interactive=False,
        verbosity=0,
    )
    connection.set_schema_to_public()
    assert LAST not in _applied(behind.schema_name)
    assert _unique_name_constraints(behind.schema_name) == 0
    tenant_schemas = set(
        Tenant.objects.exclude(schema_name="public").values_list("schema_name", flat=True)
    )
    assert pending_schemas(sorted(tenant_schemas)) == [behind.schema_name]

    visited = []

    def seen(sender, schema_name, **kwargs):
        visited.append(schema_name)

    schema_pre_migration.connect(seen)
    out = io.StringIO()
    try:
        call_command("migrate_schemas", tenant=True, interactive=False, verbosity=1, stdout=out)
    finally:
        schema_pre_migration.disconnect(seen)
    connection.set_schema_to_public()

    assert visited == [behind.schema_name]
    assert LAST in _applied(behind.schema_name)
    assert _unique_name_constraints(behind.schema_name) == 1
    assert _unique_name_constraints(current.schema_name) == 1
    assert pending_schemas(sorted(tenant_schemas)) == []


def test_a_run_with_nothing_to_apply_visits_no_tenant_schema(two_schemas):
    visited = []

    def seen(sender, schema_name, **kwargs):
        visited.append(schema_name)

    schema_migrated.connect(seen)
    try:
        call_command("migrate_schemas", tenant=True, interactive=False, verbosity=0)
    finally:
        schema_migrated.disconnect(seen)
    assert visited == []


def test_a_schema_without_migration_table_or_missing_is_pending(two_schemas, monkeypatch):
    monkeypatch.setattr("tenants.migrate.CHUNK_SCHEMAS", 1)  # one statement per schema
    current, behind = two_schemas
    with connection.cursor() as cursor:
        cursor.execute(f'DROP TABLE "{behind.schema_name}".django_migrations')
    assert pending_schemas([current.schema_name, behind.schema_name, "t_no_such_schema"]) == [
        behind.schema_name,
        "t_no_such_schema",
    ]


def test_a_targeted_run_still_visits_every_schema(two_schemas):
    """Named app or migration, --fake, --plan…: django-tenants' own walk, every schema."""
    visited = []

    def seen(sender, schema_name, **kwargs):
        visited.append(schema_name)

    schema_migrated.connect(seen)
    try:
        call_command("migrate_schemas", "broker", tenant=True, interactive=False, verbosity=0)
    finally:
        schema_migrated.disconnect(seen)
    assert {t.schema_name for t in two_schemas} <= set(visited)
