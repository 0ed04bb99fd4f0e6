"""Configuration as code pages (tenant host, `/config/revisions/`, `/config/as-code/`):
revisions with their diffs side by side, a rollback that shows its plan and asks for
confirmation, and the export and plan of a pasted document. The same functions as the API
(broker/configcode); the same roles: every member reads revisions, developers export and
plan, admins apply and roll back."""

import json

import yaml
from django.http import Http404
from django.shortcuts import render

from broker.configcode import document, plan, revisions
from broker.configcode.models import ConfigRevision
from core.errors import ApplicationError
from portal.pages.views import role_required
from tenants import roles

MEMBERS = (roles.ADMIN, roles.DEVELOPER, roles.VIEWER)
PAGE = 50


def _rows(changes: list[dict]) -> list[dict]:
    """Each change with its fields as (field, before, after) as compact JSON, for a table."""

    def text(value) -> str:
        return "" if value is None else json.dumps(value, sort_keys=True, ensure_ascii=False)

    return [
        {**c, "rows": [(k, text(b), text(a)) for k, (b, a) in c["fields"].items()]} for c in changes
    ]


@role_required(*MEMBERS)
def revisions_page(request):
    """The newest revisions; `?show=n`: what revision n changed, before and after."""
    listed = list(ConfigRevision.objects.order_by("-number")[:PAGE])
    shown = None
    raw = request.GET.get("show", "")
    if raw.isdigit() and ConfigRevision.objects.filter(number=int(raw)).exists():
        n = int(raw)
        changes = plan.changes_between(
            revisions.document_at(n - 1), revisions.document_at(n), renames=False
        )
        shown = {"number": n, "changes": _rows(changes)}
    return render(
        request,
        "portal/config_revisions.html",
        {
            "revisions": listed,
            "shown": shown,
            "can_roll_back": roles.resolve_role(request) == roles.ADMIN,
        },
    )


@role_required(roles.ADMIN)
def rollback_page(request, number: int):
    """GET: the plan back to revision `number`, and a confirmation; POST: the rollback, if
    the configuration has not changed since that plan (else the new plan, to confirm again)."""
    if not ConfigRevision.objects.filter(number=number).exists():
        raise Http404
    context = {"number": number}
    try:
        if request.method == "POST":
            context["result"] = plan.rollback(
                revision=number,
                dry_run=False,
                plan=request.POST.get("plan", ""),
                actor=request.user,
            )
            return render(request, "portal/config_rollback.html", context)
    except ApplicationError as exc:
        context["error"] = exc.message
    dry = plan.rollback(revision=number, dry_run=True, actor=request.user)
    context["plan"] = {**dry, "changes": _rows(dry["changes"])}
    return render(request, "portal/config_rollback.html", context)


@role_required(roles.ADMIN, roles.DEVELOPER)
def as_code_page(request):
    """The export (YAML), and a pasted document's plan; admins then apply it."""
    exported = yaml.safe_dump(document.export_document(), sort_keys=False, allow_unicode=True)
    context = {"exported": exported, "text": request.POST.get("document", "")}
    if request.method == "POST":
        try:
            doc = yaml.safe_load(context["text"] or "{}")
            if request.POST.get("apply") and roles.resolve_role(request) == roles.ADMIN:
                context["applied"] = plan.apply(
                    doc, plan=request.POST.get("plan", ""), actor=request.user
                )
                context["exported"] = yaml.safe_dump(
                    document.export_document(), sort_keys=False, allow_unicode=True
                )
            else:
                made = plan.make_plan(doc)
                context["plan"] = {**made, "changes": _rows(made["changes"])}
        except yaml.YAMLError as exc:
            context["error"] = f"Not YAML or JSON: {exc}"
        except ApplicationError as exc:
            context["error"] = exc.message
            context["fields"] = sorted(exc.fields.items())
    context["can_apply"] = roles.resolve_role(request) == roles.ADMIN
    return render(request, "portal/config_as_code.html", context)
