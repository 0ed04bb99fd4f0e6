import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone


class SyncState(models.Model):
    """Where one control-plane object stands in DynamoDB.

    One shared table (not per schema) so that operators see every tenant's lag in one query.
    `version` is the newest version the relay has been told about; `synced_version` the newest
    one it has written (or found already there). `item_keys` are the keys last written, so a
    deleted object, or one whose key changed (a subscription's event type), gets its old items
    tombstoned.
    """

    tenant = models.ForeignKey(
        "tenants.Tenant", on_delete=models.CASCADE, related_name="sync_states"
    )
    object_type = models.CharField(max_length=16)
    object_id = models.CharField(max_length=64)
    version = models.PositiveBigIntegerField(default=0)
    synced_version = models.PositiveBigIntegerField(default=0)
    synced_at = models.DateTimeField(null=True, blank=True)
    item_keys = models.JSONField(default=list, blank=True)
    deleted = models.BooleanField(default=False)
    last_error = models.TextField(blank=True)
    attempts = models.PositiveIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "object_type", "object_id"], name="one_sync_state_per_object"
            )
        ]
        indexes = [models.Index(fields=["tenant", "object_type"])]

    def __str__(self):
        return f"{self.object_type}:{self.object_id} v{self.synced_version}/{self.version}"

    @property
    def status(self) -> str:
        if self.synced_version >= self.version:
            return "in_sync"
        return "failing" if self.last_error else "pending"


class SyncJobKind(models.TextChoices):
    RESYNC = "resync"
    RECONCILE = "reconcile"


class SyncJobStatus(models.TextChoices):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class SyncJob(models.Model):
    """A full resync or a reconcile run, of one tenant or of all, with progress and drift."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    kind = models.CharField(max_length=16, choices=SyncJobKind.choices)
    tenant = models.ForeignKey(
        "tenants.Tenant", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    status = models.CharField(
        max_length=16, choices=SyncJobStatus.choices, default=SyncJobStatus.QUEUED
    )
    total = models.PositiveIntegerField(default=0)
    done = models.PositiveIntegerField(default=0)
    # written / already_current / tombstoned / missing / stale / extra ...
    counts = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"{self.kind} {self.tenant_id or 'all'} {self.status}"


class OutboxEntry(models.Model):
    """A change to mirror into DynamoDB, written in the same transaction as the change.

    One shared table (public schema) so one relay drains every tenant. The row only names the
    object and its version: the relay builds the item from the object's current state, so a
    late relay writes the newest version, never a stale payload. `stale_keys` are the item
    keys that this change made obsolete (the object was deleted, or a subscription changed event
    type): the relay tombstones them at this version.
    """

    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, related_name="+")
    object_type = models.CharField(max_length=16)
    object_id = models.CharField(max_length=64)
    version = models.PositiveBigIntegerField()
    deleted = models.BooleanField(default=False)
    stale_keys = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    # Rows whose write failed wait until then (backoff), so they never block other rows.
    available_at = models.DateTimeField(default=timezone.now)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)

    class Meta:
        indexes = [models.Index(fields=["available_at", "id"], name="outbox_ready")]

    def __str__(self):
        return f"{self.tenant_id} {self.object_type}:{self.object_id} v{self.version}"


class QueueClaim(models.Model):
    """An SQS queue that a tenant's producer reads or consumer is sent to.

    Tenants live in separate schemas, so this one shared table is where a save finds out, in
    one indexed query, whether another tenant already uses a queue (`broker.services.queues`).
    A claim is written with its object and removed with it; a deleted tenant's claims no
    longer count."""

    queue_arn = models.CharField(max_length=256)
    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, related_name="+")
    object_type = models.CharField(max_length=16)  # producer | consumer
    object_id = models.CharField(max_length=64)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "object_type", "object_id"], name="one_queue_claim_per_object"
            )
        ]
        indexes = [models.Index(fields=["queue_arn"], name="queue_claim_arn")]

    def __str__(self):
        return f"{self.queue_arn} ← {self.tenant_id} {self.object_type}:{self.object_id}"
