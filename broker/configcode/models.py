"""Revisions live in each tenant's schema (imported by broker.models, so they belong to the
`broker` app and its migrations)."""

from django.conf import settings
from django.db import models
from django.utils import timezone


class ConfigRevision(models.Model):
    """One committed configuration change: a service call, an apply or a rollback."""

    number = models.PositiveBigIntegerField(unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        db_constraint=False,  # the user lives in the public schema and may be deleted
        related_name="+",
    )
    actor_email = models.CharField(max_length=254, blank=True)
    # "consumer.update orders-api, subscription.delete …" (the first few, then a count).
    summary = models.CharField(max_length=500, blank=True)
    objects_changed = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-number"]

    def __str__(self):
        return f"revision {self.number}"


class ConfigRevisionEntry(models.Model):
    """An object's document entry as a revision left it (`body` null: deleted). A revision
    holds only the objects it changed; the document at revision n is, for each object, its
    latest entry at or before n. Subscriptions keep their consumer and producer by id, so that
    renaming a consumer needs no entry for each of its subscriptions."""

    revision = models.ForeignKey(ConfigRevision, on_delete=models.CASCADE, related_name="entries")
    object_type = models.CharField(max_length=32)
    object_id = models.CharField(max_length=64)
    body = models.JSONField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["revision", "object_type", "object_id"], name="config_entry_once"
            )
        ]
        indexes = [
            models.Index(
                fields=["object_type", "object_id", "revision"], name="broker_conf_object__idx"
            )
        ]

    def __str__(self):
        return f"{self.object_type}:{self.object_id}@{self.revision_id}"
