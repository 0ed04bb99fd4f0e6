"""Rewrite (or reconcile) the DynamoDB table from PostgreSQL, now, in this process.

    manage.py sync_dynamodb                 resync every live tenant
    manage.py sync_dynamodb --reconcile     read, compare and repair (counts drift)
    manage.py sync_dynamodb --tenant acme   one tenant (slug)

`make run` calls it after starting a fresh moto server (whose tables start empty). In
production the same jobs run from the operator API (`POST /api/v1/sync/resync/`) or beat.

A tenant whose sync fails is reported (on stderr, with its error) and the others are synced
all the same: one tenant's bad data must not keep the product from starting. The command
then exits 0, unless `--fail-on-error` is given (for scripts that must notice).
"""

from django.core.management.base import BaseCommand, CommandError

from broker.sync import reconcile
from broker.sync.models import SyncJobKind
from tenants.models import Tenant


class Command(BaseCommand):
    help = "Resync (or reconcile) the DynamoDB config table from PostgreSQL."

    def add_arguments(self, parser):
        parser.add_argument("--reconcile", action="store_true")
        parser.add_argument("--tenant", help="slug of one tenant (default: every live tenant)")
        parser.add_argument(
            "--fail-on-error",
            action="store_true",
            help="exit non-zero when any tenant failed (default: report it and carry on)",
        )

    def handle(self, *args, **options):
        tenant = None
        if options["tenant"]:
            tenant = Tenant.objects.filter(slug=options["tenant"]).first()
            if tenant is None:
                raise CommandError(f"no tenant {options['tenant']!r}")
        kind = SyncJobKind.RECONCILE if options["reconcile"] else SyncJobKind.RESYNC
        job = reconcile.run_job(reconcile.job_create(kind=kind, tenant=tenant).pk)
        self.stdout.write(f"{job.kind} {job.status}: {job.counts}")
        if job.status == "done":
            return
        failed = job.counts.get("failed_tenants", 0)
        self.stderr.write(
            f"{failed} of {job.counts.get('tenants', 0)} tenant(s) failed to sync "
            "(the others were synced):"
        )
        for line in job.error.splitlines():
            self.stderr.write(f"  FAILED {line}")
        if options["fail_on_error"] or not failed:
            raise CommandError(job.error or f"{job.kind} {job.status}")
