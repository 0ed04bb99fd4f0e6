"""Retention: letters older than the tier's `dlq_retention_days` are deleted in batches."""

from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from tenants.models import Tenant

from .models import DeadLetter, LetterStatus

BATCH = 1000


def purge(*, tenant: Tenant, batch: int = BATCH) -> int:
    """In the active tenant schema. Letters held by an active replay job are kept."""
    days = tenant.effective_quotas().get("dlq_retention_days") or 14
    cutoff = timezone.now() - timedelta(days=days)
    total = 0
    while True:
        with transaction.atomic():
            ids = list(
                DeadLetter.objects.filter(dead_lettered_at__lt=cutoff)
                .exclude(status=LetterStatus.REPLAYING)
                .values_list("pk", flat=True)[:batch]
            )
            if not ids:
                return total
            total += DeadLetter.objects.filter(pk__in=ids).delete()[0]
