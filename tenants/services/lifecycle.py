"""Suspend, resume and quota overrides. Each change bumps the tenant's version and queues
its TENANT item (and, for quotas, every item carrying quotas) for the relay (tenants/hooks.py)."""

from datetime import timedelta

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from core.audit_actions import AuditAction
from core.context import current_request_id
from core.errors import ApplicationError

from .. import hooks
from ..models import Tenant, TenantEvent
from ._common import S, _actor, _locked, _transition, validate_quota_overrides


def _status_change(tenant: Tenant, to: str, *, action: str, actor) -> Tenant:
    with transaction.atomic():
        tenant = _locked(tenant.pk)
        _transition(tenant, to, action=action, actor=actor)
        tenant.version += 1
        tenant.save()
        hooks.tenant_changed(tenant)
    return tenant


def tenants_stalled(*, idle_seconds: float) -> list[Tenant]:
    """Tenants whose provisioning or offboarding has not moved for `idle_seconds`, except an
    offboarding stopped after its last attempt (it waits for an operator)."""
    cutoff = timezone.now() - timedelta(seconds=idle_seconds)
    return list(
        Tenant.objects.filter(status__in=[S.PROVISIONING, S.OFFBOARDING], updated_at__lt=cutoff)
        .filter(~Q(offboarding_report__has_key="stopped"))
        .order_by("updated_at")
    )


def tenant_suspend(*, tenant: Tenant, actor=None) -> Tenant:
    return _status_change(tenant, S.SUSPENDED, action=AuditAction.SUSPEND, actor=actor)


def tenant_resume(*, tenant: Tenant, actor=None) -> Tenant:
    return _status_change(tenant, S.ACTIVE, action=AuditAction.RESUME, actor=actor)


@transaction.atomic
def tenant_update_quotas(*, tenant: Tenant, overrides: dict, actor=None) -> Tenant:
    """Merges quota overrides; a null value removes that override."""
    try:
        validate_quota_overrides(overrides)
    except ApplicationError as exc:
        raise ApplicationError(exc.message, fields={"quota_overrides": exc.fields})
    tenant = _locked(tenant.pk)
    merged = dict(tenant.quota_overrides)
    for name, value in overrides.items():
        if value is None:
            merged.pop(name, None)
        else:
            merged[name] = value
    if merged != tenant.quota_overrides:
        TenantEvent.objects.create(
            tenant=tenant,
            action=AuditAction.UPDATE_QUOTAS,
            from_status=tenant.status,
            to_status=tenant.status,
            actor=_actor(actor),
            detail={"before": tenant.quota_overrides, "after": merged},
            request_id=current_request_id() or "",
        )
        tenant.quota_overrides = merged
        tenant.version += 1
        tenant.save()
        if tenant.status in (S.ACTIVE, S.SUSPENDED):
            hooks.tenant_changed(tenant, quotas_changed=True)
    return tenant
