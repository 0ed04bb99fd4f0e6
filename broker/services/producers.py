import hashlib
import secrets
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from broker.audit import audit_record
from broker.functions.shared import patterns
from broker.models import ApiKey, Kind, Producer
from broker.sync.contract import APIKEY, PRODUCER
from core.audit_actions import AuditAction
from core.errors import ApplicationError

from . import queues
from ._common import (
    Config,
    Rule,
    arn_problem,
    at_most,
    begin_write,
    bump,
    check,
    create,
    delete_recorded,
    quotas,
    record_change,
    snapshot,
    unique_name,
    update,
)

FIELDS = (
    "name",
    "kind",
    "enabled",
    "allowed_event_types",
    "ingest_rate_per_second",
    "ingest_burst",
    "source_queue_arn",
    "description",
)
KEY_PREFIX = "ebk_"
# The start of a key kept in clear, so that a key can be told apart in lists and audit.
API_KEY_PREFIX_LENGTH = 12
# Each pattern rides in the producer's DynamoDB item: bounded, as every field of it is.
MAX_ALLOWED_EVENT_TYPES = 100
# Keys valid at once per producer (the current one and those still in their rotation grace
# period): rotating in a loop cannot pile up keys (and APIKEY items) without end.
MAX_API_KEYS_PER_PRODUCER = 10


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


PRODUCERS = Config(
    model=Producer,
    object_type=PRODUCER,
    fields=FIELDS,
    plural="producers",
    quota="max_producers",
    taken="A producer with this name already exists.",
    fixed={"kind": "The kind of a producer cannot change."},
)


def _validate(producer: Producer, errors: dict, before: dict | None = None) -> None:
    """`before`: the stored values on an update (a plan limit then applies only to raising)."""
    before = before or {}
    limits = (
        quotas()
        if producer.ingest_rate_per_second is not None or producer.ingest_burst is not None
        else None
    )
    check(
        [
            *unique_name(Producer, producer, taken=PRODUCERS.taken),
            ("kind", producer.kind not in Kind.values, f"One of: {', '.join(Kind.values)}."),
            ("allowed_event_types", True, lambda: _pattern_problems(producer.allowed_event_types)),
            *[
                at_most(
                    field=name,
                    value=getattr(producer, name),
                    quota=name,
                    limits=limits,
                    previous=before.get(name),
                )
                for name in ("ingest_rate_per_second", "ingest_burst")
            ],
            *_source_queue_rules(producer),
        ],
        errors,
    )


def _pattern_problems(types) -> list[str]:
    """What is wrong with a producer's allowed event type patterns (nothing: [])."""
    if not isinstance(types, list) or not all(isinstance(t, str) for t in types):
        return ["A list of event type patterns."]
    if len(types) > MAX_ALLOWED_EVENT_TYPES:
        return [f"At most {MAX_ALLOWED_EVENT_TYPES} patterns."]
    problems = []
    for value in types:
        try:
            patterns.validate_event_type_pattern(value)
        except patterns.PatternError as exc:
            problems.append(f"{value!r}: {exc}")
    return problems


def _source_queue_rules(producer: Producer) -> list[Rule]:
    """An sqs producer names its own source queue; an https producer has none."""
    field, queue_arn = "source_queue_arn", producer.source_queue_arn
    if producer.kind != Kind.SQS:
        return [(field, bool(queue_arn), "Only sqs producers have a source queue.")]
    return [
        (field, not queue_arn, "Required for an sqs producer."),
        (field, bool(queue_arn), lambda: arn_problem(queue_arn)),
        (
            field,
            bool(queue_arn),
            lambda: queues.queue_arn_problem(queue_arn, role=queues.PRODUCER, obj=producer),
        ),
    ]


def _new_key(*, producer: Producer, actor) -> tuple[ApiKey, str]:
    raw = KEY_PREFIX + secrets.token_urlsafe(32)
    key = ApiKey.objects.create(
        producer=producer, prefix=raw[:API_KEY_PREFIX_LENGTH], key_hash=hash_key(raw)
    )
    record_change(
        actor=actor,
        action=AuditAction.APIKEY_CREATE,
        object_type=APIKEY,
        obj=key,
        before=None,
        after={"producer": str(producer.pk), "prefix": key.prefix},
        audit=False,  # the producer's action is the audit event
    )
    return key, raw


@transaction.atomic
def producer_create(
    *,
    actor,
    name: str,
    kind: str,
    enabled: bool = True,
    allowed_event_types=None,
    ingest_rate_per_second: int | None = None,
    ingest_burst: int | None = None,
    source_queue_arn: str = "",
    description: str = "",
) -> tuple[Producer, str | None]:
    """Creates a producer; an https producer gets its first API key, returned once."""
    producer = create(
        PRODUCERS,
        actor=actor,
        build=lambda: Producer(
            name=(name or "").strip(),
            kind=kind,
            enabled=enabled,
            allowed_event_types=allowed_event_types if allowed_event_types is not None else [],
            ingest_rate_per_second=ingest_rate_per_second,
            ingest_burst=ingest_burst,
            source_queue_arn=(source_queue_arn or "").strip(),
            description=description or "",
        ),
        validate=_validate,
        after_save=_claim_queue,
    )
    raw = None
    if producer.kind == Kind.HTTPS:
        _, raw = _new_key(producer=producer, actor=actor)
    return producer, raw


@transaction.atomic
def producer_update(*, actor, producer: Producer, **changes) -> Producer:
    """Changes any of FIELDS except `kind` (an https producer cannot become an sqs one)."""
    return update(
        PRODUCERS,
        producer,
        actor=actor,
        changes=changes,
        clean=_clean,
        validate=_validate,
        after_save=_claim_queue,
    )


def _clean(name: str, value):
    if name in ("name", "source_queue_arn") and value is not None:
        return value.strip()
    return value


def _claim_queue(producer: Producer) -> None:
    queues.claim(role=queues.PRODUCER, obj=producer, queue_arn=producer.source_queue_arn)


@transaction.atomic
def producer_delete(*, actor, producer: Producer) -> None:
    """Deletes the producer and its keys; refused while subscriptions are restricted to it."""
    begin_write()
    producer = Producer.objects.select_for_update().get(pk=producer.pk)
    restricted = producer.subscriptions.count()
    if restricted:
        raise ApplicationError(
            f"{restricted} subscription(s) are restricted to this producer; change or delete "
            "them first.",
            code="in_use",
        )
    for key in producer.api_keys.select_for_update():
        delete_recorded(actor=actor, object_type=APIKEY, obj=key, audit=False)
    queues.release(role=queues.PRODUCER, obj=producer)
    delete_recorded(
        actor=actor, object_type=PRODUCER, obj=producer, before=snapshot(producer, FIELDS)
    )


def _require_https(producer: Producer) -> None:
    if producer.kind != Kind.HTTPS:
        raise ApplicationError(
            "Only https producers have API keys; sqs producers read from their queue.",
            code="not_applicable",
        )


@transaction.atomic
def producer_rotate_key(
    *, actor, producer: Producer, grace_seconds: int | None = None
) -> tuple[ApiKey, str]:
    """Issues a new key; the keys in use stay valid for the grace period, then expire."""
    producer = Producer.objects.select_for_update().get(pk=producer.pk)
    _require_https(producer)
    grace = timedelta(
        seconds=settings.API_KEY_ROTATION_GRACE_SECONDS if grace_seconds is None else grace_seconds
    )
    now = timezone.now()
    expires = now + grace
    valid = [k for k in producer.api_keys.select_for_update() if k.is_valid(now)]
    if len(valid) >= MAX_API_KEYS_PER_PRODUCER:
        raise ApplicationError(
            f"At most {MAX_API_KEYS_PER_PRODUCER} valid API keys per producer: revoke one of "
            "the keys still in their grace period first.",
            code="limit_exceeded",
        )
    for old in producer.api_keys.select_for_update().filter(revoked_at__isnull=True):
        if old.expires_at is not None and old.expires_at <= expires:
            continue  # already on its way out, sooner
        old.expires_at = expires
        bump(old)
        old.save(update_fields=["expires_at", "version", "updated_at"])
        record_change(
            actor=actor,
            action=AuditAction.APIKEY_EXPIRE,
            object_type=APIKEY,
            obj=old,
            before=None,
            after=None,
            audit=False,
        )
    key, raw = _new_key(producer=producer, actor=actor)
    audit_record(
        actor=actor,
        action=AuditAction.PRODUCER_ROTATE_KEY,
        object_type=PRODUCER,
        object_id=producer.pk,
        before=None,
        after={"new_key": key.prefix, "old_keys_expire_at": expires.isoformat()},
    )
    return key, raw


@transaction.atomic
def producer_revoke_key(*, actor, producer: Producer, key_id) -> ApiKey:
    """Ends a key at once (no grace period)."""
    _require_https(producer)
    key = producer.api_keys.select_for_update().filter(pk=key_id).first()
    if key is None:
        raise ApplicationError(
            "Invalid input.", fields={"key_id": ["No such key for this producer."]}
        )
    if key.revoked_at is not None:
        return key
    key.revoked_at = timezone.now()
    bump(key)
    key.save(update_fields=["revoked_at", "version", "updated_at"])
    record_change(
        actor=actor,
        action=AuditAction.PRODUCER_REVOKE_KEY,
        object_type=APIKEY,
        obj=key,
        before={"status": "active"},
        after={"status": "revoked", "prefix": key.prefix, "producer": str(producer.pk)},
    )
    return key


@transaction.atomic
def api_keys_expire(*, now=None) -> int:
    """Removes the active tenant's keys whose grace period ended; their items get tombstones.

    The ingress also refuses a key past its `expires_at`, so correctness does not depend on
    how soon this runs."""
    now = now or timezone.now()
    expired = list(
        ApiKey.objects.select_for_update(skip_locked=True).filter(
            expires_at__lte=now, revoked_at__isnull=True
        )
    )
    for key in expired:
        delete_recorded(
            actor=None,
            action=AuditAction.APIKEY_EXPIRE,
            object_type=APIKEY,
            obj=key,
            before={"prefix": key.prefix, "producer": str(key.producer_id)},
        )
    return len(expired)
