"""DLQ ingest (docs/design.md, flow 6): central DLQs → DeadLetter rows in the tenants' schemas.

Both central DLQs are read: the standard one and the FIFO one of ordered subscriptions
(`<prefix>-dlq.fifo`: a FIFO queue redrives only to a FIFO queue), whose letters carry their
ordering key and group in `metadata` (`ordering_key`, `group_id`), for replay in key order.

At-least-once in, exactly-once rows: a batch of up to 10 messages is received (long poll),
each tenant's letters are upserted by delivery id in one transaction, and only then are the
messages deleted from SQS. A crash between the commit and the delete brings the same messages
back; the upsert sees the same delivery id and the same replay number and changes nothing.

Whatever cannot be placed in a tenant (not our format, a tenant that does not exist or is
leaving, attributes that disagree with the body) goes to the public quarantine, keyed by the
SQS message id: never lost, never crashing the job.
"""

import json
import logging
import uuid
from dataclasses import dataclass, field
from datetime import UTC

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django_tenants.utils import schema_context

from broker import secrets
from broker.dlq.models import QuarantinedMessage
from broker.functions.shared import messages
from core import aws, locks
from core.handled import handled
from tenants.models import Tenant, TenantStatus

from .models import ERROR_REDRIVEN, DeadLetter, LetterStatus

logger = logging.getLogger(__name__)

BATCH = 10
HISTORY_ERROR_CHARS = 300
# Tenants whose letters are placed; the others' go to the quarantine.
PLACEABLE = (TenantStatus.ACTIVE, TenantStatus.SUSPENDED)


@dataclass
class IngestResult:
    received: int = 0
    stored: int = 0  # new rows and letters that came back
    duplicates: int = 0
    quarantined: int = 0
    deleted: int = 0
    batches: int = 0
    more: bool = False  # the last batch was full: more is probably waiting
    tenants: set = field(default_factory=set)


def _single_ingest():
    """One ingest at a time (the beat and the self-kick may overlap): the row upsert then needs
    no conflict handling. A session advisory lock dies with its connection (a killed worker)."""
    return locks.try_session_lock("dlq-ingest")


def dlq_url() -> str:
    return aws.queue_url(aws.central_dlq_name())


def dlq_urls() -> list[str]:
    """The central DLQ, and the FIFO one when the data plane's stack has it."""
    urls = [dlq_url()]
    try:
        urls.append(aws.queue_url(aws.central_fifo_dlq_name()))
    except aws.sqs().exceptions.QueueDoesNotExist:
        logger.warning(
            "no FIFO DLQ (%s): a stack from before ordered delivery", aws.central_fifo_dlq_name()
        )
    return urls


def run(*, max_batches: int = 1, wait_seconds: int | None = None) -> IngestResult:
    """Receives and places up to `max_batches` batches of each DLQ (stops at the first one not
    full); `more` when the last batch of either was full."""
    connection.set_schema_to_public()
    result = IngestResult()
    wait = settings.DLQ_RECEIVE_WAIT_SECONDS if wait_seconds is None else wait_seconds
    with _single_ingest() as mine:
        if not mine:
            return result
        more = False
        for url in dlq_urls():
            for _ in range(max_batches):
                full = ingest_batch(queue_url=url, wait_seconds=wait, result=result)
                if not full:
                    break
            else:
                more = True
            # One long poll per run: the FIFO DLQ gets a short one (the job runs again soon).
            wait = 0
        result.more = more
    return result


def ingest_batch(*, queue_url: str, wait_seconds: int, result: IngestResult) -> bool:
    sqs = aws.sqs()
    response = sqs.receive_message(
        QueueUrl=queue_url,
        MaxNumberOfMessages=BATCH,
        WaitTimeSeconds=wait_seconds,
        MessageAttributeNames=["All"],
        AttributeNames=["All"],
    )
    received = response.get("Messages", [])
    result.batches += 1
    result.received += len(received)
    if not received:
        return False
    done = place(received, result=result)
    if done:
        for start in range(0, len(done), BATCH):
            chunk = done[start : start + BATCH]
            answer = sqs.delete_message_batch(
                QueueUrl=queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": h} for i, h in enumerate(chunk)],
            )
            result.deleted += len(answer.get("Successful", []))
    return len(received) == BATCH


# --- placing a batch ----------------------------------------------------------------------


def _attr(message: dict, name: str) -> str:
    value = (message.get("MessageAttributes") or {}).get(name) or {}
    return value.get("StringValue") or ""


def _uuid_or_none(value: str):
    try:
        return uuid.UUID(str(value))
    except (TypeError, ValueError):
        return None


def place(received: list[dict], *, result: IngestResult) -> list[str]:
    """Commits each message's row (a letter or a quarantine entry); returns the receipt handles
    that may now be deleted. A tenant whose transaction failed keeps its messages in SQS."""
    quarantine: list[tuple[dict, str, str]] = []  # (sqs message, reason, tenant hint)
    by_tenant: dict[str, list[tuple[dict, messages.Message]]] = {}
    for raw in received:
        body = raw.get("Body", "")
        try:
            message = messages.parse(body)
        except messages.MessageError as exc:
            quarantine.append((raw, f"malformed message: {exc}", _attr(raw, "tenant_id")))
            continue
        tenant_id = message.delivery.tenant_id
        attr_tenant = _attr(raw, "tenant_id")
        if attr_tenant and attr_tenant != tenant_id:
            reason = "the tenant_id attribute disagrees with the body"
            quarantine.append((raw, reason, tenant_id))
            continue
        by_tenant.setdefault(tenant_id, []).append((raw, message))

    ids = [t for t in by_tenant if _uuid_or_none(t)]
    tenants = {
        str(t.pk): t
        for t in Tenant.objects.filter(pk__in=ids).only("id", "schema_name", "status", "slug")
    }
    handles: list[str] = []
    for tenant_id, items in by_tenant.items():
        tenant = tenants.get(tenant_id)
        if tenant is None or tenant.status not in PLACEABLE:
            reason = (
                "unknown tenant"
                if tenant is None
                else f"tenant is {tenant.status}: its dead letters are not kept"
            )
            quarantine.extend((raw, reason, tenant_id) for raw, _ in items)
            continue
        try:
            with schema_context(tenant.schema_name), transaction.atomic():
                stored, duplicates = upsert_letters(tenant_id=tenant_id, items=items)
        except Exception:
            # This tenant's messages stay in SQS and come back after the visibility timeout.
            handled(logger, "dlq_ingest_tenant", "dead letters of tenant %s not stored", tenant_id)
            continue
        result.stored += stored
        result.duplicates += duplicates
        result.tenants.add(tenant_id)
        handles.extend(raw["ReceiptHandle"] for raw, _ in items)

    if quarantine:
        with transaction.atomic():
            QuarantinedMessage.objects.bulk_create(
                [_quarantine_row(raw, reason, hint) for raw, reason, hint in quarantine],
                ignore_conflicts=True,
            )
        result.quarantined += len(quarantine)
        handles.extend(raw["ReceiptHandle"] for raw, _, _ in quarantine)
        for raw, reason, _hint in quarantine:
            logger.warning("DLQ message %s quarantined: %s", raw.get("MessageId"), reason)
    return handles


def _quarantine_row(raw: dict, reason: str, hint: str) -> QuarantinedMessage:
    attributes = {
        name: value.get("StringValue", value.get("DataType", ""))
        for name, value in (raw.get("MessageAttributes") or {}).items()
    }
    attributes["sqs"] = raw.get("Attributes") or {}
    return QuarantinedMessage(
        message_id=raw.get("MessageId") or uuid.uuid4().hex,
        body=raw.get("Body", ""),
        attributes=attributes,
        reason=reason[:500],
        tenant_hint=(hint or "")[:64],
    )


# --- the upsert ---------------------------------------------------------------------------


def _when(value):
    if not value:
        return None
    try:
        parsed = parse_datetime(str(value))
    except ValueError:
        return None
    if parsed is not None and timezone.is_naive(parsed):
        parsed = timezone.make_aware(parsed, UTC)
    return parsed


def _failure(raw: dict, message: messages.Message) -> dict:
    """The failure fields of a letter; a delivery message that SQS redrove has none."""
    f = message.failure
    if f is not None:
        return {
            "attempts": int(f.attempts or 0),
            "last_status": f.last_status if isinstance(f.last_status, int) else None,
            "last_error": (f.last_error or "")[: messages.LAST_ERROR_MAX_CHARS],
            "error_kind": (f.error_kind or "")[:32],
            "first_attempt_at": _when(f.first_attempt_at),
            "last_attempt_at": _when(f.last_attempt_at),
            "dead_lettered_at": _when(f.dead_lettered_at) or timezone.now(),
        }
    receives = (raw.get("Attributes") or {}).get("ApproximateReceiveCount", "?")
    return {
        "attempts": int(message.delivery.attempt or 0),
        "last_status": None,
        "last_error": f"SQS moved the delivery to the DLQ after {receives} receives",
        "error_kind": ERROR_REDRIVEN,
        "first_attempt_at": _when(message.delivery.first_attempt_at),
        "last_attempt_at": None,
        "dead_lettered_at": timezone.now(),
    }


def _history_entry(failure: dict, replay: int) -> dict:
    return {
        "event": "dead_lettered",
        "at": failure["dead_lettered_at"].isoformat(),
        "replay": replay,
        "attempts": failure["attempts"],
        "last_status": failure["last_status"],
        "error_kind": failure["error_kind"],
        "last_error": failure["last_error"][:HISTORY_ERROR_CHARS],
    }


def upsert_letters(*, tenant_id: str, items: list[tuple[dict, messages.Message]]):
    """Inside the tenant's schema and a transaction. Returns (stored, duplicates)."""
    # The newest life of each delivery in this batch.
    latest: dict[str, tuple[dict, messages.Message]] = {}
    for raw, message in items:
        key = message.delivery.delivery_id
        if key not in latest or message.delivery.replay > latest[key][1].delivery.replay:
            latest[key] = (raw, message)
    duplicates = len(items) - len(latest)
    existing = {
        d.delivery_id: d
        for d in DeadLetter.objects.select_for_update().filter(delivery_id__in=list(latest))
    }
    now = timezone.now()
    new, changed = [], []
    for delivery_id, (raw, message) in latest.items():
        d = message.delivery
        failure = _failure(raw, message)
        letter = existing.get(delivery_id)
        if letter is None:
            payload = json.dumps(message.event, separators=(",", ":"))
            new.append(
                DeadLetter(
                    delivery_id=delivery_id[:64],
                    consumer_id=d.consumer_id[:64],
                    subscription_id=(d.subscription_id or "")[:64],
                    producer_id=(d.producer_id or "")[:64],
                    event_id=str(d.event_id)[:200],
                    event_type=str(d.event_type)[:200],
                    payload_encrypted=secrets.encrypt(tenant_id=tenant_id, plaintext=payload),
                    payload_bytes=len(payload.encode()),
                    metadata={
                        "subscription_id": d.subscription_id,
                        "producer_id": d.producer_id,
                        "first_attempt_at": d.first_attempt_at,
                        "test": bool(d.test),
                        "kind": message.kind,
                        "sqs_message_id": raw.get("MessageId"),
                        # Ordered subscriptions: the key and its message group (replay order).
                        **(
                            {"ordering_key": d.ordering_key, "group_id": d.group_id}
                            if d.group_id
                            else {}
                        ),
                    },
                    life_replay=d.replay,
                    replay_count=d.replay,
                    history=[_history_entry(failure, d.replay)],
                    created_at=now,
                    updated_at=now,
                    **failure,
                )
            )
            continue
        if d.replay <= letter.life_replay:
            # The same life again (a redelivered DLQ message) or an older one: nothing new.
            duplicates += 1
            continue
        # A replay that failed again: the same row, one more life.
        for name, value in failure.items():
            setattr(letter, name, value)
        letter.life_replay = d.replay
        letter.replay_count = max(letter.replay_count, d.replay)
        if letter.replay_number is not None and letter.replay_number <= d.replay:
            letter.replay_number = None
        if letter.status != LetterStatus.REPLAYING:
            letter.status = LetterStatus.PENDING
        letter.history = [*letter.history, _history_entry(failure, d.replay)]
        letter.updated_at = now
        changed.append(letter)
    if new:
        DeadLetter.objects.bulk_create(new)
    if changed:
        DeadLetter.objects.bulk_update(
            changed,
            [
                "attempts",
                "last_status",
                "last_error",
                "error_kind",
                "first_attempt_at",
                "last_attempt_at",
                "dead_lettered_at",
                "life_replay",
                "replay_count",
                "replay_number",
                "status",
                "history",
                "updated_at",
            ],
        )
    return len(new) + len(changed), duplicates
