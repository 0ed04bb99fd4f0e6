"""Dead-letter pages: tenant host (dead letters, replay jobs) and operator console (DLQ backlog
per tenant, quarantine). The same services and selectors as the API."""

import json

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from broker import secrets
from broker.deadletters import alerts, quarantine, selectors, services
from broker.deadletters.api import _consumer_names
from broker.deadletters.models import DeadLetter, LetterStatus, ReplayJob
from broker.dlq.models import QuarantinedMessage, QuarantineStatus, TenantDlqState
from core.errors import ApplicationError
from portal.pages.views import role_required
from tenants import roles
from tenants.models import Tenant

PAGE = 50
LIST_FILTERS = (
    "consumer",
    "producer",
    "event_type",
    "status",
    "error",
    "error_kind",
    "since",
    "until",
)


def _can_write(request) -> bool:
    return roles.resolve_role(request) in roles.TENANT_WRITE_ROLES


def _filters_from(data) -> tuple[dict, dict]:
    """(clean filter, raw values to show) from a GET or POST; errors become an empty list."""
    raw = {k: data.get(k, "").strip() for k in LIST_FILTERS if data.get(k, "").strip()}
    try:
        return selectors.clean_filter(raw, field=""), raw
    except ApplicationError:
        return {"delivery_id": "\x00invalid"}, raw


def _tenant(request) -> Tenant:
    return Tenant.objects.select_related("tier").get(pk=request.tenant.pk)


@role_required(*roles.TENANT_READ_ROLES)
def dead_letters_page(request):
    filters, raw = _filters_from(request.GET)
    if "status" not in raw:
        filters["status"] = [LetterStatus.PENDING]
    qs = selectors.letters_filtered(
        filters, DeadLetter.objects.defer("payload_encrypted", "history")
    ).order_by("-dead_lettered_at", "-id")
    page = Paginator(qs, PAGE).get_page(request.GET.get("page"))
    groups = selectors.letter_groups(limit=50)
    names = _consumer_names([g["consumer_id"] for g in groups] + [x.consumer_id for x in page])
    for group in groups:
        group["consumer_name"] = names.get(group["consumer_id"], "")
    tenant = _tenant(request)
    return render(
        request,
        "deadletters/list.html",
        {
            "page": page,
            "letters": [(x, names.get(x.consumer_id, "")) for x in page],
            "groups": groups,
            "raw": raw,
            "query": "&".join(f"{k}={v}" for k, v in raw.items()),
            "statuses": LetterStatus.values,
            "can_write": _can_write(request),
            "is_admin": roles.resolve_role(request) == roles.ADMIN,
            "alert": alerts.banner(tenant),
            "thresholds": alerts.thresholds(
                tenant, TenantDlqState.objects.filter(tenant=tenant).first()
            ),
        },
    )


@role_required(*roles.TENANT_READ_ROLES)
def dead_letter_detail(request, letter_id):
    letter = DeadLetter.objects.filter(pk=letter_id).first()
    if letter is None:
        raise Http404
    try:
        payload = json.dumps(
            json.loads(
                secrets.decrypt(tenant_id=str(request.tenant.pk), token=letter.payload_encrypted)
            ),
            indent=2,
            sort_keys=True,
        )
    except secrets.SecretError:
        payload = None
    return render(
        request,
        "deadletters/detail.html",
        {
            "letter": letter,
            "consumer_name": _consumer_names([letter.consumer_id]).get(letter.consumer_id, ""),
            "payload": payload,
            "history": list(reversed(letter.history)),
            "can_write": _can_write(request),
        },
    )


def _selection(request) -> dict:
    ids = request.POST.getlist("ids")
    if ids:
        return {"ids": ids}
    filters, raw = _filters_from(request.POST)
    return {"filter": raw}


@require_POST
@role_required(*roles.TENANT_WRITE_ROLES)
def dead_letters_action(request, action):
    """Replay or discard: a first POST shows what would happen; a confirmed one does it."""
    if action not in ("replay", "discard"):
        raise Http404
    selection = _selection(request)
    confirmed = request.POST.get("confirm") == "yes"
    try:
        if action == "replay" and not confirmed:
            outcome = services.replay_preview(**selection)
            return render(
                request,
                "deadletters/confirm.html",
                {"action": action, "selection": selection, "outcome": outcome},
            )
        if action == "discard" and not confirmed:
            # The same selection rules; a discard takes every consumer's letters.
            outcome = services.replay_preview(**selection)
            outcome.count = sum(c["count"] for c in outcome.by_consumer.values())
            return render(
                request,
                "deadletters/confirm.html",
                {"action": action, "selection": selection, "outcome": outcome},
            )
        if action == "replay":
            outcome = services.replay_start(
                tenant=_tenant(request), actor=request.user, **selection
            )
            messages.success(
                request,
                f"{outcome.count} dead letters queued for replay in {len(outcome.jobs)} job(s)."
                + (
                    f" {sum(s['count'] for s in outcome.skipped.values())} skipped (consumer deleted or disabled)."
                    if outcome.skipped
                    else ""
                ),
            )
            return redirect("/replay-jobs/")
        count = services.letters_discard(actor=request.user, **selection)
        messages.success(request, f"{count} dead letters discarded.")
    except ApplicationError as exc:
        messages.error(request, exc.message)
    return redirect("/dead-letters/")


@require_POST
@role_required(roles.ADMIN)
def dlq_alerts_update(request):
    def number(name):
        value = request.POST.get(name, "").strip()
        if not value:
            return None
        if not value.isdigit() or int(value) < 1:
            raise ApplicationError(f"{name}: a positive whole number, or empty for the default.")
        return int(value)

    try:
        alerts.settings_update(
            tenant=_tenant(request),
            actor=request.user,
            backlog=number("backlog"),
            age_minutes=number("age_minutes"),
            emails_enabled=request.POST.get("emails_enabled") == "on",
        )
        alerts.evaluate(tenant=_tenant(request))
        messages.success(request, "Alert thresholds saved.")
    except ApplicationError as exc:
        messages.error(request, exc.message)
    return redirect("/dead-letters/")


@role_required(*roles.TENANT_READ_ROLES)
def replay_jobs_page(request):
    jobs = list(ReplayJob.objects.order_by("-created_at")[:100])
    return render(
        request,
        "deadletters/jobs.html",
        {
            "jobs": jobs,
            "can_write": _can_write(request),
            "any_active": any(j.is_active for j in jobs),
        },
    )


@require_POST
@role_required(*roles.TENANT_WRITE_ROLES)
def replay_job_cancel(request, job_id):
    job = ReplayJob.objects.filter(pk=job_id).first()
    if job is None:
        raise Http404
    try:
        services.replay_job_cancel(actor=request.user, job=job)
        messages.success(request, "Replay job cancelled.")
    except ApplicationError as exc:
        messages.error(request, exc.message)
    return redirect("/replay-jobs/")


# --- operator console (public host) -------------------------------------------------------


@role_required(roles.OPERATOR, roles.SUPPORT)
def console_dlq(request):
    states = TenantDlqState.objects.select_related("tenant").order_by("-backlog", "tenant__slug")[
        :200
    ]
    status = request.GET.get("status") or QuarantineStatus.OPEN
    entries = Paginator(
        QuarantinedMessage.objects.filter(status=status).order_by("-received_at"), PAGE
    ).get_page(request.GET.get("page"))
    return render(
        request,
        "deadletters/console_dlq.html",
        {
            "states": states,
            "entries": entries,
            "status": status,
            "statuses": QuarantineStatus.values,
            "is_operator": roles.resolve_role(request) == roles.OPERATOR,
            "tenants": Tenant.objects.filter(
                status__in=["active", "suspended"], tier__isnull=False
            ).order_by("slug"),
        },
    )


@require_POST
@role_required(roles.OPERATOR)
def console_quarantine_action(request, entry_id, action):
    entry = QuarantinedMessage.objects.filter(pk=entry_id).first()
    if entry is None or action not in ("discard", "assign"):
        raise Http404
    try:
        if action == "discard":
            quarantine.quarantine_discard(entry=entry, actor=request.user)
            messages.success(request, "Quarantined message discarded.")
        else:
            tenant = Tenant.objects.filter(slug=request.POST.get("tenant", "")).first()
            if tenant is None:
                raise ApplicationError("Choose a tenant.")
            quarantine.quarantine_assign(entry=entry, tenant=tenant, actor=request.user)
            messages.success(request, f"Placed in the dead letters of {tenant.slug}.")
    except ApplicationError as exc:
        messages.error(request, exc.message)
    return redirect("/console/dlq/")
