import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone


class AuditEvent(models.Model):
    """One row per control-plane change inside a tenant, written in the same transaction."""

    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        db_constraint=False,  # the user lives in the public schema and may be deleted
        related_name="+",
    )
    actor_email = models.CharField(max_length=254, blank=True)
    action = models.CharField(max_length=64)
    object_type = models.CharField(max_length=64)
    object_id = models.CharField(max_length=64)
    # {"field": [before, after]}; secrets are masked before they get here.
    diff = models.JSONField(default=dict, blank=True)
    request_id = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"{self.action} {self.object_type}:{self.object_id}"


class Kind(models.TextChoices):
    HTTPS = "https"
    SQS = "sqs"


class VersionedModel(models.Model):
    """A configuration object mirrored to DynamoDB.

    `version` is bumped by the service on every change (and on delete, for the tombstone), in
    the same transaction as the audit row and the outbox row.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    version = models.PositiveBigIntegerField(default=1)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        abstract = True


class Producer(VersionedModel):
    name = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=8, choices=Kind.choices)
    enabled = models.BooleanField(default=True)
    # Event type patterns this producer may publish (`order.*`); empty means any type.
    allowed_event_types = models.JSONField(default=list, blank=True)
    # Null means "the tier's value"; never above it.
    ingest_rate_per_second = models.PositiveIntegerField(null=True, blank=True)
    ingest_burst = models.PositiveIntegerField(null=True, blank=True)
    source_queue_arn = models.CharField(max_length=256, blank=True)
    description = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


class ApiKey(VersionedModel):
    """A producer's API key. Only the SHA-256 of the key and a short prefix are stored."""

    producer = models.ForeignKey(Producer, on_delete=models.CASCADE, related_name="api_keys")
    prefix = models.CharField(max_length=16)
    key_hash = models.CharField(max_length=64, unique=True)
    # Set when a rotation replaced the key: valid until then (grace period).
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"{self.prefix}…"

    def is_valid(self, now=None) -> bool:
        now = now or timezone.now()
        if self.revoked_at is not None:
            return False
        return self.expires_at is None or self.expires_at > now

    @property
    def status(self) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is None:
            return "active"
        return "expiring" if self.expires_at > timezone.now() else "expired"


class ConsumerAuth(models.TextChoices):
    NONE = "none"
    HEADER = "header"
    BASIC = "basic"
    BEARER = "bearer"


class Consumer(VersionedModel):
    name = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=8, choices=Kind.choices)
    url = models.URLField(max_length=2048, blank=True)
    queue_arn = models.CharField(max_length=256, blank=True)
    enabled = models.BooleanField(default=True)
    description = models.CharField(max_length=500, blank=True)
    auth_type = models.CharField(max_length=8, choices=ConsumerAuth.choices, default="none")
    # header name (auth `header`) or user name (auth `basic`); not a secret.
    auth_username = models.CharField(max_length=256, blank=True)
    # The header value, password or bearer token, encrypted (broker.secrets).
    auth_secret_encrypted = models.TextField(blank=True)
    # Current signing secret (encrypted) and the one it replaced, valid until its expiry.
    signing_secret_encrypted = models.TextField(blank=True)
    previous_signing_secret_encrypted = models.TextField(blank=True)
    previous_signing_secret_expires_at = models.DateTimeField(null=True, blank=True)
    timeout_ms = models.PositiveIntegerField(default=10_000)
    # Null means "the tier's delivery concurrency".
    delivery_concurrency = models.PositiveIntegerField(null=True, blank=True)
    # {"strategy": "exponential", "base_seconds", "cap_seconds", "jitter", "max_attempts"}
    # or {"strategy": "schedule", "schedule": [seconds, ...]} (attempts = len + 1).
    retry_policy = models.JSONField(default=dict, blank=True)
    # Set when the platform disabled the consumer (endpoint auto-disable); cleared when it is
    # enabled again. Shown on its page.
    disabled_reason = models.CharField(max_length=300, blank=True)
    auto_disabled_at = models.DateTimeField(null=True, blank=True)
    # Deliveries per second the egress sends it at most, across all its instances; null means
    # no limit. Never above the tier's `max_consumer_rate_per_second`.
    rate_limit_per_second = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


class OnHeadFailure(models.TextChoices):
    """What an ordered subscription does when the head event of a key fails for good."""

    SKIP = "skip"  # dead-letter it; the key's next event flows
    HOLD = "hold"  # hold the key: its later events wait until the tenant retries or skips


class Subscription(VersionedModel):
    # Unique per tenant: the identity of a subscription in the configuration document.
    name = models.CharField(max_length=100, unique=True)
    consumer = models.ForeignKey(Consumer, on_delete=models.CASCADE, related_name="subscriptions")
    event_type = models.CharField(max_length=200)
    producer = models.ForeignKey(
        Producer, null=True, blank=True, on_delete=models.CASCADE, related_name="subscriptions"
    )
    # EventBridge-style content filter (broker.functions.shared.patterns); {} matches every event.
    filter = models.JSONField(default=dict, blank=True)
    enabled = models.BooleanField(default=True)
    description = models.CharField(max_length=500, blank=True)
    # Ordered delivery per key (docs/data-plane.md, "Ordered delivery"): the events of one
    # key reach the consumer one at a time, in the order the ingress accepted them.
    ordered = models.BooleanField(default=False)
    # A dotted path into the event as the consumer receives it (`data.order_id`); blank: the
    # envelope's `ordering_key`. Kept, with `on_head_failure`, when `ordered` is off.
    ordering_key_path = models.CharField(max_length=200, blank=True)
    on_head_failure = models.CharField(
        max_length=8, choices=OnHeadFailure.choices, default=OnHeadFailure.SKIP
    )

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self):
        return f"{self.event_type} → {self.consumer_id}"


class EventType(VersionedModel):
    name = models.CharField(max_length=200, unique=True)
    description = models.CharField(max_length=500, blank=True)
    # Optional JSON Schema of the event's `data`; the ingress may validate against it.
    schema = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


# Dead letters, replay jobs and configuration revisions are broker models too (tenant schema),
# defined in their packages.
from .configcode.models import ConfigRevision, ConfigRevisionEntry  # noqa: E402, F401
from .deadletters.models import DeadLetter, ReplayCounter, ReplayJob  # noqa: E402, F401
