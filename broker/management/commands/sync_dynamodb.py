"""Rewrite (or reconcile) the DynamoDB table from PostgreSQL, now, in this process.

    manage.py sync_dynamodb                 resync every live tenant
    manage.py sync_dynamodb --reconcile     read, compare and repair (counts drift)
    manage.py sync_dynamodb --tenant acme   one tenant (slug)

`make run` calls it after starting a fresh moto server (whose tables start empty). In
production the same jobs run from the operator API (`POST /api/v1/sync/resync/`) or beat.
"""

from django.core.management.base import BaseCommand, CommandError

from broker.sync import reconcile
from broker.sync.models import SyncJob, SyncJobKind


class Command(BaseCommand):
    help = "Resync (or reconcile) the DynamoDB config table from PostgreSQL."

    def add_arguments(self, parser):
        parser.add_argument("--reconcile", action="store_true")
        parser.add_argument("--tenant", help="slug of one tenant (default: every live tenant)")

    def handle(self, *args, **options):
        from tenants.models import Tenant

        tenant = None
        if options["tenant"]:
            tenant = Tenant.objects.filter(slug=options["tenant"]).first()
            if tenant is None:
                raise CommandError(f"no tenant {options['tenant']!r}")
        kind = SyncJobKind.RECONCILE if options["reconcile"] else SyncJobKind.RESYNC
        job = reconcile.run_job(SyncJob.objects.create(kind=kind, tenant=tenant).pk)
        self.stdout.write(f"{job.kind} {job.status}: {job.counts}")
        if job.status != "done":
            raise CommandError(job.error)
