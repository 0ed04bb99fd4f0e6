from django.db import models

# The per-minute counters a snapshot keeps, in this order in `TenantActivity.minutes`.
COUNTERS = ("delivered", "failed", "dead", "ingested", "rejected")


class TenantActivity(models.Model):
    """A tenant's data-plane activity as the activity job last read it (services.py): one
    shared table so the operator console reads every row's figures in the query that lists
    the tenants, and a page view never calls DynamoDB."""

    tenant = models.OneToOneField(
        "tenants.Tenant",
        on_delete=models.CASCADE,
        related_name="activity_snapshot",
        primary_key=True,
    )
    # The last hour (the 60 minutes up to measured_at) and the UTC day `day`.
    delivered_1h = models.PositiveIntegerField(default=0)
    failed_1h = models.PositiveIntegerField(default=0)
    dead_1h = models.PositiveIntegerField(default=0)
    ingested_1h = models.PositiveIntegerField(default=0)
    rejected_1h = models.PositiveIntegerField(default=0)
    events_today = models.PositiveBigIntegerField(default=0)
    day = models.DateField(null=True, blank=True)
    # When the figures were read; null until a read succeeded.
    measured_at = models.DateTimeField(null=True, blank=True)
    # The last read that failed (cleared by the next one that succeeds): the figures above are
    # then older than the page would otherwise suggest.
    last_error = models.CharField(max_length=500, blank=True)
    failed_at = models.DateTimeField(null=True, blank=True)
    # What lets the next run read only new minutes: the last hour's non-zero minutes
    # ({"2026-12-01T10:42": [delivered, failed, dead, ingested, rejected]}) and the newest
    # minute read after it settled (never read again).
    minutes = models.JSONField(default=dict, blank=True)
    settled_through = models.CharField(max_length=16, blank=True)

    class Meta:
        verbose_name_plural = "tenant activity"

    def __str__(self):
        return f"activity of {self.tenant_id}"

    @property
    def success_rate_1h(self) -> float | None:
        """None when nothing was attempted: "no deliveries" is not "100 %"."""
        attempted = self.delivered_1h + self.failed_1h
        return None if attempted == 0 else self.delivered_1h / attempted
