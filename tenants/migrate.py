"""`migrate_schemas` over thousands of schemas: only the schemas with something to migrate.

Two layers, both keeping `migrate_schemas`' options and meaning:

- The executor (GET_EXECUTOR_FUNCTION = `tenants.migrate.get_executor`, wrapping django-tenants'
  standard and multiprocessing executors). django-tenants visits every tenant schema: it
  reconnects, makes sure the schema has its `django_migrations` table and runs `migrate` there,
  ~17 ms a schema on the benchmark machine even when there is nothing to apply (20.6 s over
  1,021 schemas, ~200 s at 10,000). A plain run over the tenant schemas first asks PostgreSQL,
  in one query, which schemas lack a migration of the graph (or their `django_migrations`
  table, or the schema itself), and hands only those to the executor; the others are left
  untouched (no connection, no signal, no output but the count). Targeted or special runs
  (an app or migration named, `--fake`, `--fake-initial`, `--plan`, `--prune`, `--check`,
  `--run-syncdb`) visit every schema as django-tenants does.
- The per-schema `migrate` (TENANT_BASE_MIGRATE_COMMAND = `tenants.migrate.Command`). Django's
  migrate, when it has nothing to apply, still runs the system checks, renders the whole
  project state to warn about unmigrated model changes and sends post_migrate: ~70 ms a schema
  here. In a tenant schema that already records every migration of the graph, this answers
  "No migrations to apply." after one query instead. Anything else (the public schema, a
  schema missing a migration, a targeted or fake migration) is Django's migrate, unchanged.
"""

import functools

from django.core.management.commands.migrate import Command as MigrateCommand
from django.db import connections
from django.db.migrations.loader import MigrationLoader
from django_tenants.migration_executors import get_executor as tenants_get_executor
from django_tenants.utils import get_public_schema_name, get_tenant_database_alias

CHUNK_SCHEMAS = 2000
_SPECIAL = (
    "app_label",
    "migration_name",
    "fake",
    "fake_initial",
    "plan",
    "prune",
    "check_unapplied",
    "run_syncdb",
)


@functools.lru_cache(maxsize=1)
def _graph_nodes() -> frozenset:
    return frozenset(MigrationLoader(None, ignore_no_migrations=True).graph.nodes)


def _plain(options) -> bool:
    return not any(options.get(name) for name in _SPECIAL)


# One statement for every schema: query_to_xml runs the count inside each schema's own
# django_migrations (a name only known per row), so no function needs creating.
_PENDING_SQL = """
SELECT s.name
FROM unnest(%(schemas)s::text[]) AS s(name)
LEFT JOIN pg_namespace n ON n.nspname = s.name
WHERE n.oid IS NULL
   OR to_regclass(format('%%I.django_migrations', s.name)) IS NULL
   OR (xpath('/row/c/text()', query_to_xml(format(
        'SELECT count(DISTINCT (app, name)) AS c FROM %%I.django_migrations '
        'WHERE (app, name) IN (SELECT * FROM unnest(%%L::text[], %%L::text[]))',
        s.name, %(apps)s::text[], %(names)s::text[]), false, true, '')))[1]::text::int
      < %(wanted)s
ORDER BY s.name
"""


def pending_schemas(schemas, *, database: str | None = None) -> list[str]:
    """The schemas among `schemas` that miss a migration of the code's graph (or their
    migration table, or do not exist), in one query per 2,000 schemas; the order of
    `schemas` is kept."""
    schemas = list(schemas)
    if not schemas:
        return []
    nodes = sorted(_graph_nodes())
    connection = connections[database or get_tenant_database_alias()]
    connection.set_schema_to_public()
    pending = set()
    with connection.cursor() as cursor:
        # A statement locks every django_migrations it read until it ends: in chunks, within
        # the lock table (max_locks_per_transaction × max_connections, 12,800 here).
        for start in range(0, len(schemas), CHUNK_SCHEMAS):
            cursor.execute(
                _PENDING_SQL,
                {
                    "schemas": schemas[start : start + CHUNK_SCHEMAS],
                    "apps": [app for app, _ in nodes],
                    "names": [name for _, name in nodes],
                    "wanted": len(nodes),
                },
            )
            pending.update(row[0] for row in cursor.fetchall())
    return [s for s in schemas if s in pending]


class _PendingOnly:
    """Mixed into a django-tenants executor: a plain run skips the up-to-date schemas."""

    def run_migrations(self, tenants=None):
        tenants = list(tenants or [])
        public = self.PUBLIC_SCHEMA_NAME
        others = [t for t in tenants if t != public]
        if others and _plain(self.options):
            pending = pending_schemas(others, database=self.options.get("database"))
            if int(self.options.get("verbosity", 1)) >= 1:
                print(
                    f"[{self.codename}] {len(others) - len(pending)} of {len(others)} tenant "
                    f"schema(s) up to date; migrating {len(pending)}",
                    flush=True,
                )
            tenants = ([public] if public in tenants else []) + pending
            if not tenants:
                return None
        return super().run_migrations(tenants=tenants)


@functools.cache
def get_executor(codename=None):
    """django-tenants' executor of that codename, with the pending-only filter."""
    base = tenants_get_executor(codename=codename)
    return type(base.__name__, (_PendingOnly, base), {"__module__": __name__})


class Command(MigrateCommand):
    def handle(self, *args, **options):
        connection = connections[options["database"]]
        plain = _plain(options)
        if plain and connection.schema_name != get_public_schema_name():
            # migrate_schemas has just made sure the schema has its django_migrations table;
            # reading it directly spares a catalog scan (slow with thousands of schemas).
            with connection.cursor() as cursor:
                cursor.execute("SELECT app, name FROM django_migrations")
                applied = set(cursor.fetchall())
            if _graph_nodes() <= applied:
                if options["verbosity"] >= 1:
                    self.stdout.write("No migrations to apply.")
                return
        return super().handle(*args, **options)
