"""DeadLetter and ReplayJob live in each tenant's schema (imported by broker.models, so they
belong to the `broker` app and its migrations)."""

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone


class LetterStatus(models.TextChoices):
    PENDING = "pending"
    REPLAYING = "replaying"  # selected by an active replay job (see DeadLetter.last_job)
    REPLAYED = "replayed"
    DISCARDED = "discarded"


# Failure kind of a delivery message that SQS itself moved to the DLQ (redrive policy of a
# delivery queue: the egress failed to process it too often). It never carries a `failure`.
ERROR_REDRIVEN = "redriven"


class DeadLetter(models.Model):
    """One failed delivery, keyed by its delivery id: a replay that fails again comes back to
    the same row (replay_count and history grow)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    delivery_id = models.CharField(max_length=64, unique=True)
    # Ids, not foreign keys: deleting a consumer must not delete its dead letters.
    consumer_id = models.CharField(max_length=64, db_index=True)
    subscription_id = models.CharField(max_length=64, blank=True)
    producer_id = models.CharField(max_length=64, blank=True, db_index=True)
    event_id = models.CharField(max_length=200)
    event_type = models.CharField(max_length=200, db_index=True)
    # The event as consumers receive it ({id, type, time, data, source_id}), JSON encrypted
    # with the tenant's data key (broker.secrets); decrypted only to show or replay it.
    payload_encrypted = models.TextField()
    payload_bytes = models.PositiveIntegerField(default=0)
    # The message's delivery envelope as received (ids, first attempt, test flag).
    metadata = models.JSONField(default=dict, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    last_status = models.PositiveIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    error_kind = models.CharField(max_length=32, blank=True)
    first_attempt_at = models.DateTimeField(null=True, blank=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    dead_lettered_at = models.DateTimeField(default=timezone.now)
    status = models.CharField(
        max_length=16, choices=LetterStatus.choices, default=LetterStatus.PENDING
    )
    # The replay number of the life that dead-lettered last (0 = the first delivery).
    life_replay = models.PositiveIntegerField(default=0)
    # How many replays were sent. The next replay's number is fixed (and saved) before the
    # send in `replay_number`, so a resend after a crash carries the same number and the
    # egress idempotency on (delivery_id, replay, attempt) absorbs it.
    replay_count = models.PositiveIntegerField(default=0)
    replay_number = models.PositiveIntegerField(null=True, blank=True)
    # [{"at", "event": "dead_lettered"|"replayed"|"discarded", ...}] oldest first.
    history = models.JSONField(default=list, blank=True)
    last_job = models.ForeignKey(
        "broker.ReplayJob",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="letters",
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        app_label = "broker"
        ordering = ["-dead_lettered_at", "-id"]
        indexes = [
            models.Index(fields=["status", "dead_lettered_at"], name="dl_status_time"),
            models.Index(fields=["consumer_id", "status"], name="dl_consumer_status"),
            models.Index(fields=["last_job", "status", "id"], name="dl_job_status_id"),
            # The list's order: a page is an index range, not a sort of every letter.
            models.Index(fields=["-dead_lettered_at", "-id"], name="dl_time_id"),
            # The groups: an index-only scan of the pending letters.
            models.Index(
                fields=["status", "consumer_id", "last_status", "error_kind", "event_type"],
                include=["dead_lettered_at"],
                name="dl_groups",
            ),
        ]

    def __str__(self):
        return self.delivery_id

    def replay_floor(self) -> int:
        """The highest replay number this letter knows of (its lives and its replays)."""
        return max(self.replay_count, self.life_replay, self.replay_number or 0)


class ReplayCounter(models.Model):
    """The last replay number handed out for one delivery id. Replay jobs and the delivery
    resend both take their numbers here (broker.deadletters.numbers), so no two sends of one
    delivery ever carry the same number: the egress would drop the second as a duplicate."""

    delivery_id = models.CharField(max_length=64, primary_key=True)
    last = models.PositiveIntegerField(default=0)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        app_label = "broker"

    def __str__(self):
        return f"{self.delivery_id}: {self.last}"


class JobStatus(models.TextChoices):
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    FAILED = "failed"


ACTIVE_JOB_STATUSES = (JobStatus.QUEUED, JobStatus.RUNNING)


class ReplayJob(models.Model):
    """Replays the letters it froze (status `replaying`, `last_job` = this job) to one
    consumer's current delivery queue, in batches of 10, saving progress after each batch."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    consumer_id = models.CharField(max_length=64)
    consumer_name = models.CharField(max_length=100, blank=True)
    status = models.CharField(max_length=16, choices=JobStatus.choices, default=JobStatus.QUEUED)
    # What was asked ({"ids": [...]} or {"filter": {...}}) and when it was resolved.
    selection = models.JSONField(default=dict, blank=True)
    # The last letter id handled (letters are sent in id order).
    cursor = models.CharField(max_length=64, blank=True)
    total = models.PositiveIntegerField(default=0)
    sent = models.PositiveIntegerField(default=0)
    skipped = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    rate_per_second = models.PositiveIntegerField(default=50)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        db_constraint=False,  # the user lives in the public schema
        related_name="+",
    )
    created_by_email = models.CharField(max_length=254, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        app_label = "broker"
        ordering = ["-created_at", "-id"]
        constraints = [
            # One active job per consumer (the service answers 409 before this ever fires).
            models.UniqueConstraint(
                fields=["consumer_id"],
                # Two equalities, not IN: PostgreSQL prints this predicate back identically,
                # so a cloned tenant schema compares equal to a migrated one.
                condition=models.Q(status="queued") | models.Q(status="running"),
                name="one_active_replay_per_consumer",
            )
        ]

    def __str__(self):
        return f"replay {self.pk} ({self.status})"

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_JOB_STATUSES

    @property
    def done(self) -> int:
        return self.sent + self.skipped + self.failed

    @property
    def eta_seconds(self) -> float | None:
        if not self.is_active:
            return None
        remaining = max(self.total - self.done, 0)
        return round(remaining / max(self.rate_per_second, 1), 1)
