"""Operator actions on the quarantine (public schema): discard, or assign to a tenant once the
cause is known (the message is placed in that tenant's dead letters)."""

from dataclasses import replace

from django.db import transaction
from django.utils import timezone
from django_tenants.utils import schema_context

from broker.dlq.models import QuarantinedMessage, QuarantineStatus
from broker.functions.shared import messages
from core.errors import ApplicationError
from tenants.models import Tenant

from .ingest import PLACEABLE, upsert_letters


def _open(entry: QuarantinedMessage) -> QuarantinedMessage:
    entry = QuarantinedMessage.objects.select_for_update().get(pk=entry.pk)
    if entry.status != QuarantineStatus.OPEN:
        raise ApplicationError(
            f"This entry is already {entry.status}.", code="invalid_status", status_code=409
        )
    return entry


@transaction.atomic
def quarantine_discard(*, entry: QuarantinedMessage, actor) -> QuarantinedMessage:
    entry = _open(entry)
    entry.status = QuarantineStatus.DISCARDED
    entry.resolved_at = timezone.now()
    entry.resolved_by_email = getattr(actor, "email", "") or ""
    entry.save()
    return entry


@transaction.atomic
def quarantine_assign(*, entry: QuarantinedMessage, tenant: Tenant, actor) -> QuarantinedMessage:
    """Places a quarantined dead letter in `tenant`'s dead letters (the body's tenant id is
    replaced by the operator's choice). Only a body of the dead-letter format can be placed."""
    entry = _open(entry)
    if tenant.status not in PLACEABLE or tenant.tier_id is None:
        raise ApplicationError(
            f"Tenant {tenant.slug} is {tenant.status}.",
            fields={"tenant": ["Only an active or suspended tenant can take dead letters."]},
        )
    try:
        message = messages.parse(entry.body)
    except messages.MessageError as exc:
        raise ApplicationError(
            "This message is not a dead letter of the broker's format; discard it instead.",
            code="not_a_dead_letter",
            fields={"body": [str(exc)]},
        ) from None
    message = replace(message, delivery=replace(message.delivery, tenant_id=str(tenant.pk)))
    raw = {"MessageId": entry.message_id, "Attributes": entry.attributes.get("sqs", {})}
    with schema_context(tenant.schema_name):
        upsert_letters(tenant_id=str(tenant.pk), items=[(raw, message)])
    entry.status = QuarantineStatus.ASSIGNED
    entry.assigned_tenant = tenant
    entry.resolved_at = timezone.now()
    entry.resolved_by_email = getattr(actor, "email", "") or ""
    entry.save()
    return entry
