from django.db import transaction

from broker.functions.shared import patterns
from broker.models import Consumer, Producer, Subscription
from broker.sync.contract import SUBSCRIPTION
from core.audit_actions import AuditAction
from core.errors import ApplicationError, reject_unknown_fields

from ._common import (
    bump,
    check_json_size,
    check_limit,
    delete_recorded,
    keys_of,
    lock,
    raise_if,
    record_change,
    snapshot,
)

FIELDS = ("consumer_id", "event_type", "producer_id", "filter", "enabled", "description")
UPDATABLE = ("consumer", "event_type", "producer", "filter", "enabled", "description")
# The filter rides in the route's DynamoDB item (400 KB at most): far below that.
MAX_FILTER_BYTES = 16 * 1024


def _validate(sub: Subscription, errors: dict) -> None:
    try:
        patterns.validate_event_type_pattern(sub.event_type or "")
    except patterns.PatternError as exc:
        errors.setdefault("event_type", []).append(str(exc))
    _validate_filter(sub.filter if sub.filter is not None else {}, errors)
    if sub.consumer_id is None:
        errors.setdefault("consumer", []).append("This field is required.")


def _validate_filter(value, errors: dict) -> None:
    check_json_size(
        field="filter",
        value=value,
        max_bytes=MAX_FILTER_BYTES,
        max_depth=patterns.MAX_DEPTH + 2,  # matcher lists and operator objects under a leaf
        errors=errors,
    )
    if "filter" in errors:
        return
    try:
        patterns.validate_filter(value)
    except patterns.PatternError as exc:
        path = ".".join(str(p) for p in getattr(exc, "path", []) or [])
        errors.setdefault("filter", []).append(f"{path}: {exc}" if path else str(exc))


def _check_refs(consumer, producer, errors: dict) -> None:
    # Objects come from the active schema only: an id of another tenant is simply unknown.
    if consumer is not None and not isinstance(consumer, Consumer):
        errors.setdefault("consumer", []).append("Unknown consumer.")
    if producer is not None and not isinstance(producer, Producer):
        errors.setdefault("producer", []).append("Unknown producer.")


@transaction.atomic
def subscription_create(
    *,
    actor,
    consumer: Consumer,
    event_type: str,
    producer: Producer | None = None,
    filter: dict | None = None,
    enabled: bool = True,
    description: str = "",
) -> Subscription:
    lock("subscription")
    check_limit(model=Subscription, quota="max_subscriptions", label="subscriptions")
    errors: dict = {}
    _check_refs(consumer, producer, errors)
    raise_if(errors)
    sub = Subscription(
        consumer=consumer,
        event_type=(event_type or "").strip(),
        producer=producer,
        filter=filter if filter is not None else {},
        enabled=enabled,
        description=description or "",
    )
    _validate(sub, errors)
    raise_if(errors)
    sub.save()
    record_change(
        actor=actor,
        action=AuditAction.SUBSCRIPTION_CREATE,
        object_type=SUBSCRIPTION,
        obj=sub,
        before=None,
        after=snapshot(sub, FIELDS),
    )
    return sub


@transaction.atomic
def subscription_update(*, actor, subscription: Subscription, **changes) -> Subscription:
    reject_unknown_fields(changes, UPDATABLE)
    sub = Subscription.objects.select_for_update().get(pk=subscription.pk)
    errors: dict = {}
    _check_refs(changes.get("consumer"), changes.get("producer"), errors)
    raise_if(errors)
    before = snapshot(sub, FIELDS)
    old_keys = keys_of(SUBSCRIPTION, sub)
    for name, value in changes.items():
        if name == "event_type":
            value = (value or "").strip()
        setattr(sub, name, value)
    after = snapshot(sub, FIELDS)
    if after == before:
        return sub
    _validate(sub, errors)
    raise_if(errors)
    bump(sub)
    sub.save()
    new_keys = keys_of(SUBSCRIPTION, sub)
    record_change(
        actor=actor,
        action=AuditAction.SUBSCRIPTION_UPDATE,
        object_type=SUBSCRIPTION,
        obj=sub,
        before=before,
        after=after,
        # A new event type moves the route to another key: the old one gets a tombstone.
        stale_keys=[k for k in old_keys if k not in new_keys],
    )
    return sub


@transaction.atomic
def subscription_delete(*, actor, subscription: Subscription) -> None:
    sub = Subscription.objects.select_for_update().get(pk=subscription.pk)
    delete_recorded(actor=actor, object_type=SUBSCRIPTION, obj=sub, before=snapshot(sub, FIELDS))


def subscription_filter_test(*, pattern, event: dict, event_type: str | None = None) -> dict:
    """Whether a sample event matches a filter (and an event type pattern), and why: each
    path of the filter with what the event holds there. Nothing is saved."""
    errors = {}
    try:
        patterns.validate_filter(pattern)
    except patterns.PatternError as exc:
        path = ".".join(str(p) for p in exc.path)
        errors["filter"] = [f"{path}: {exc}" if path else str(exc)]
    if event_type:
        try:
            patterns.validate_event_type_pattern(event_type)
        except patterns.PatternError as exc:
            errors["event_type"] = [str(exc)]
    if errors:
        raise ApplicationError("Invalid input.", fields=errors)
    result = patterns.explain(pattern, event)
    type_ok = None
    if event_type:
        type_ok = patterns.event_type_matches(event_type, str(event.get("type", "")))
    return {
        "matches": bool(result["matches"]) and type_ok is not False,
        "event_type_matches": type_ok,
        "filter_matches": bool(result["matches"]),
        "reasons": result["reasons"],
    }
