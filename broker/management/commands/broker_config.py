"""Configuration as code from CI, with the API's shapes (docs/config-as-code.md).

    manage.py broker_config export --tenant acme [--format yaml] > broker.yaml
    manage.py broker_config plan   --tenant acme broker.yaml           # the plan, as JSON
    manage.py broker_config apply  --tenant acme broker.yaml --plan <hash> [--actor e-mail]

A document is read as YAML (JSON is YAML too), from a file or `-` (stdin). A refused document
exits 1 with the error's fields (paths), a stale plan exits 2: plan again.
"""

import json
import sys

import yaml
from django.core.management.base import BaseCommand, CommandError
from django_tenants.utils import tenant_context

from broker.configcode import document, plan
from core.errors import ApplicationError
from tenants.models import Tenant, User


class Command(BaseCommand):
    help = "Export, plan or apply a tenant's broker configuration document."

    def add_arguments(self, parser):
        parser.add_argument("action", choices=["export", "plan", "apply"])
        parser.add_argument("file", nargs="?", help="the document (plan, apply); - for stdin")
        parser.add_argument("--tenant", required=True, help="the tenant's slug")
        parser.add_argument("--format", choices=["json", "yaml"], default="json")
        parser.add_argument("--plan", dest="plan_hash", help="apply: the plan's hash")
        parser.add_argument("--actor", help="apply: the e-mail of the user the audit names")

    def handle(self, *args, **options):
        tenant = Tenant.objects.filter(slug=options["tenant"]).first()
        if tenant is None:
            raise CommandError(f"no tenant {options['tenant']!r}")
        action = options["action"]
        doc = None
        if action != "export":
            if not options["file"]:
                raise CommandError(f"{action} needs a document (a file, or - for stdin)")
            doc = self._read(options["file"])
        if action == "apply" and not options["plan_hash"]:
            raise CommandError("apply needs --plan <hash> (from `broker_config plan`)")
        actor = None
        if options["actor"]:
            actor = User.objects.filter(email__iexact=options["actor"]).first()
            if actor is None:
                raise CommandError(f"no user {options['actor']!r}")
        with tenant_context(tenant):
            try:
                if action == "export":
                    result = document.export_document()
                elif action == "plan":
                    result = plan.make_plan(doc)
                else:
                    result = plan.apply(doc, plan=options["plan_hash"], actor=actor)
            except ApplicationError as exc:
                detail = json.dumps(
                    {"code": exc.code, "message": exc.message, "fields": exc.fields}
                )
                raise CommandError(detail, returncode=2 if exc.code == "conflict" else 1)
        self._write(result, options["format"])

    def _read(self, path: str):
        try:
            text = sys.stdin.read() if path == "-" else open(path, encoding="utf-8").read()  # noqa: SIM115
            return yaml.safe_load(text)
        except (OSError, yaml.YAMLError) as exc:
            raise CommandError(f"cannot read {path}: {exc}")

    def _write(self, result, fmt: str) -> None:
        if fmt == "yaml":
            text = yaml.safe_dump(result, sort_keys=False, allow_unicode=True)
        else:
            text = json.dumps(result, indent=2, ensure_ascii=False) + "\n"
        self.stdout.write(text, ending="")
