"""Tiers: their quotas, and the re-sync of every tenant on a tier whose quotas change."""

import logging

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from core.audit_actions import AuditAction
from core.errors import ApplicationError

from .. import hooks
from ..models import Tenant, Tier
from ._common import S, platform_audit, validate_quota_overrides

logger = logging.getLogger(__name__)


def tier_get(name: str) -> Tier:
    try:
        return Tier.objects.get(name=name)
    except Tier.DoesNotExist:
        known = ", ".join(Tier.objects.values_list("name", flat=True))
        raise ApplicationError(
            f"Unknown tier {name!r}.", fields={"tier": [f"Unknown tier. Known tiers: {known}."]}
        )


@transaction.atomic
def tier_update(*, tier: Tier, quotas: dict, actor=None) -> Tier:
    """Changes a tier's quotas and re-syncs every tenant on it whose quotas changed."""
    validate_quota_overrides(quotas)
    if any(v is None for v in quotas.values()):
        raise ApplicationError(
            "A tier quota cannot be removed.",
            fields={k: ["A tier quota cannot be null."] for k, v in quotas.items() if v is None},
        )
    tier = Tier.objects.select_for_update().get(pk=tier.pk)
    before = tier.quotas()
    for name, value in quotas.items():
        setattr(tier, name, value)
    tier.full_clean()
    tier.save()
    if tier.quotas() != before:
        platform_audit(
            actor=actor,
            action=AuditAction.TIER_UPDATE,
            object_type="tier",
            object_id=tier.name,
            before=before,
            after=tier.quotas(),
        )
        live = Tenant.objects.filter(tier=tier, status__in=[S.ACTIVE, S.SUSPENDED])
        ids = list(live.values_list("pk", flat=True))
        live.update(version=F("version") + 1, updated_at=timezone.now())
        for tenant in Tenant.objects.select_related("tier").filter(pk__in=ids):
            hooks.tenant_changed(tenant, quotas_changed=True)
    return tier
