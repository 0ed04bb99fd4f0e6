"""DLQ alerts: per tenant thresholds (backlog of pending letters, age of the oldest), e-mail to
the tenant's admins once when crossed and once when cleared, and a banner in the portal."""

import logging

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.utils import timezone
from django_tenants.utils import schema_context

from broker.audit import audit_record
from broker.dlq.models import TenantDlqState
from core.audit_actions import AuditAction
from tenants.models import Membership, Tenant, TenantRole

from . import replay_counts, selectors

logger = logging.getLogger(__name__)


def thresholds(tenant: Tenant, state: TenantDlqState | None) -> dict:
    quotas = tenant.effective_quotas()
    backlog = state.alert_backlog if state and state.alert_backlog else None
    age = state.alert_age_minutes if state and state.alert_age_minutes else None
    return {
        "backlog": backlog or quotas.get("dlq_alert_backlog") or 100,
        "age_minutes": age or quotas.get("dlq_alert_age_minutes") or 60,
        "emails_enabled": state.alert_emails_enabled if state else True,
    }


def _reason(backlog: int, oldest, limits: dict, now) -> str:
    reasons = []
    if backlog >= limits["backlog"]:
        reasons.append(f"{backlog} pending dead letters (threshold {limits['backlog']})")
    if oldest is not None:
        age = (now - oldest).total_seconds() / 60
        if age >= limits["age_minutes"]:
            reasons.append(
                f"oldest pending letter {int(age)} min old (threshold {limits['age_minutes']})"
            )
    return "; ".join(reasons)


def evaluate(*, tenant: Tenant) -> TenantDlqState:
    """Measures the tenant's backlog, stores it, and e-mails its admins on a state change.
    Recounts its active replay jobs too (normally kept by each job change; this heals)."""
    with schema_context(tenant.schema_name):
        backlog, oldest = selectors.backlog()
        replay_counts.replay_jobs_recount(tenant_id=tenant.pk)
    now = timezone.now()
    with transaction.atomic():
        state, _ = TenantDlqState.objects.select_for_update().get_or_create(tenant=tenant)
        limits = thresholds(tenant, state)
        reason = _reason(backlog, oldest, limits, now)
        was = state.alerting
        state.backlog, state.oldest_at, state.measured_at = backlog, oldest, now
        state.alerting = bool(reason)
        state.alert_reason = reason[:200]
        if state.alerting != was:
            state.alert_changed_at = now
            if limits["emails_enabled"]:
                _notify(tenant, crossed=state.alerting, reason=reason, backlog=backlog)
        state.save()
    return state


def _notify(tenant: Tenant, *, crossed: bool, reason: str, backlog: int) -> None:
    emails = list(
        Membership.objects.filter(tenant=tenant, role=TenantRole.ADMIN, user__is_active=True)
        .values_list("user__email", flat=True)
        .order_by("user__email")
    )
    if not emails:
        return
    if crossed:
        subject = f"[{tenant.slug}] Dead letters need attention"
        body = (
            f"The dead-letter queue of {tenant.name} crossed its alert threshold: {reason}.\n\n"
            "Open the portal's Dead letters page to see why deliveries failed and replay them "
            "once the consumer is fixed.\n"
        )
    else:
        subject = f"[{tenant.slug}] Dead letters back under the threshold"
        body = f"The dead-letter backlog of {tenant.name} is back under its thresholds ({backlog} pending).\n"
    transaction.on_commit(
        lambda: send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, emails, fail_silently=True)
    )


def settings_update(
    *, tenant: Tenant, actor, backlog=..., age_minutes=..., emails_enabled=...
) -> TenantDlqState:
    # The audit row goes to the tenant's own log; the state row is in the public schema.
    with schema_context(tenant.schema_name), transaction.atomic():
        state, _ = TenantDlqState.objects.select_for_update().get_or_create(tenant=tenant)
        before = {
            "alert_backlog": state.alert_backlog,
            "alert_age_minutes": state.alert_age_minutes,
            "alert_emails_enabled": state.alert_emails_enabled,
        }
        if backlog is not ...:
            state.alert_backlog = backlog
        if age_minutes is not ...:
            state.alert_age_minutes = age_minutes
        if emails_enabled is not ...:
            state.alert_emails_enabled = emails_enabled
        state.save()
        audit_record(
            actor=actor,
            action=AuditAction.DLQ_ALERTS_UPDATE,
            object_type="dlq_alerts",
            object_id=tenant.pk,
            before=before,
            after={
                "alert_backlog": state.alert_backlog,
                "alert_age_minutes": state.alert_age_minutes,
                "alert_emails_enabled": state.alert_emails_enabled,
            },
        )
    return state


def banner(tenant: Tenant) -> TenantDlqState | None:
    """The alert to show in the portal, if the tenant's DLQ is alerting."""
    return TenantDlqState.objects.filter(tenant=tenant, alerting=True).first()
