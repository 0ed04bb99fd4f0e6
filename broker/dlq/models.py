from django.db import models
from django.utils import timezone


class QuarantineStatus(models.TextChoices):
    OPEN = "open"
    ASSIGNED = "assigned"  # placed in a tenant's dead letters by an operator
    DISCARDED = "discarded"


class QuarantinedMessage(models.Model):
    """A message of the central DLQ that could not be placed in a tenant (unknown, deleted or
    offboarding tenant, malformed body): kept as received, for operators."""

    # SQS MessageId: the same message received twice (a crash before the delete) is one row.
    message_id = models.CharField(max_length=128, unique=True)
    body = models.TextField()
    attributes = models.JSONField(default=dict, blank=True)
    reason = models.CharField(max_length=500)
    # What the body or the attributes claim, when they say (may name no existing tenant).
    tenant_hint = models.CharField(max_length=64, blank=True, db_index=True)
    status = models.CharField(
        max_length=16, choices=QuarantineStatus.choices, default=QuarantineStatus.OPEN
    )
    received_at = models.DateTimeField(default=timezone.now, db_index=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by_email = models.CharField(max_length=254, blank=True)
    assigned_tenant = models.ForeignKey(
        "tenants.Tenant", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-received_at", "-id"]
        indexes = [models.Index(fields=["status", "received_at"], name="quarantine_status_time")]

    def __str__(self):
        return f"{self.message_id} ({self.status})"


class TenantDlqState(models.Model):
    """A tenant's DLQ backlog as last measured, its alert thresholds and alert state: one shared
    table so the operator console shows every tenant in one query."""

    tenant = models.OneToOneField(
        "tenants.Tenant", on_delete=models.CASCADE, related_name="dlq_state", primary_key=True
    )
    backlog = models.PositiveIntegerField(default=0)
    oldest_at = models.DateTimeField(null=True, blank=True)
    # Null: the tier's quota (dlq_alert_backlog, dlq_alert_age_minutes).
    alert_backlog = models.PositiveIntegerField(null=True, blank=True)
    alert_age_minutes = models.PositiveIntegerField(null=True, blank=True)
    alert_emails_enabled = models.BooleanField(default=True)
    alerting = models.BooleanField(default=False)
    alert_reason = models.CharField(max_length=200, blank=True)
    alert_changed_at = models.DateTimeField(null=True, blank=True)
    measured_at = models.DateTimeField(null=True, blank=True)
    # The tenant's replay jobs by active status (ReplayJob lives in the tenant's schema),
    # recounted by every job state change and the minutely alert check, so /metrics sums
    # them over all tenants in one query (broker/deadletters/replay_counts.py).
    replay_jobs_queued = models.PositiveIntegerField(default=0)
    replay_jobs_running = models.PositiveIntegerField(default=0)

    def __str__(self):
        return f"dlq state of {self.tenant_id}"
