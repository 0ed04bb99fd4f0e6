"""What offboarding does to a tenant's dead letters (registered in DlqConfig.ready())."""

from django_tenants.utils import schema_context, schema_exists

from broker.deadletters.models import DeadLetter, ReplayJob

from .models import QuarantinedMessage, TenantDlqState


def offboard_dead_letters(tenant) -> dict:
    """Deletes the tenant's dead letters (payloads included) before the export is written, so
    the export carries none of them, and its quarantined messages and DLQ state."""
    letters = 0
    if schema_exists(tenant.schema_name):
        with schema_context(tenant.schema_name):
            letters = DeadLetter.objects.all().delete()[0]
            ReplayJob.objects.filter(status__in=["queued", "running"]).update(status="cancelled")
    quarantined = QuarantinedMessage.objects.filter(tenant_hint=str(tenant.pk)).delete()[0]
    TenantDlqState.objects.filter(tenant=tenant).delete()
    return {"dead_letters_purged": letters, "quarantined_purged": quarantined}
