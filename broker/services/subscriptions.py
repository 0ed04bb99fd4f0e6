from django.db import transaction

from broker.functions.shared import patterns
from broker.models import Consumer, Producer, Subscription
from broker.sync.contract import SUBSCRIPTION
from core.errors import ApplicationError

from ._common import (
    Config,
    begin_write,
    check,
    create,
    delete_recorded,
    json_size,
    problem,
    raise_if,
    snapshot,
    unique_name,
    update,
)

FIELDS = ("name", "consumer_id", "event_type", "producer_id", "filter", "enabled", "description")
UPDATABLE = ("name", "consumer", "event_type", "producer", "filter", "enabled", "description")
# The filter rides in the route's DynamoDB item (400 KB at most): far below that.
MAX_FILTER_BYTES = 16 * 1024


SUBSCRIPTIONS = Config(
    model=Subscription,
    object_type=SUBSCRIPTION,
    fields=FIELDS,
    plural="subscriptions",
    quota="max_subscriptions",
    updatable=UPDATABLE,
    taken="A subscription with this name already exists.",
)


def _validate(sub: Subscription, errors: dict, before: dict | None = None) -> None:
    value = sub.filter if sub.filter is not None else {}
    check(
        [
            *unique_name(Subscription, sub, taken=SUBSCRIPTIONS.taken),
            (
                "event_type",
                True,
                lambda: problem(
                    patterns.validate_event_type_pattern,
                    sub.event_type or "",
                    refused=patterns.PatternError,
                ),
            ),
            json_size(
                field="filter",
                value=value,
                max_bytes=MAX_FILTER_BYTES,
                max_depth=patterns.MAX_DEPTH + 2,  # matcher lists and operator objects under a leaf
            ),
            ("filter", True, lambda: _filter_problem(value)),
            ("consumer", sub.consumer_id is None, "This field is required."),
        ],
        errors,
    )


def _filter_problem(value) -> str | None:
    try:
        patterns.validate_filter(value)
    except patterns.PatternError as exc:
        path = ".".join(str(p) for p in getattr(exc, "path", []) or [])
        return f"{path}: {exc}" if path else str(exc)
    return None


def _check_refs(consumer, producer) -> None:
    # Objects come from the active schema only: an id of another tenant is simply unknown.
    errors: dict = {}
    check(
        [
            (
                "consumer",
                consumer is not None,
                not isinstance(consumer, Consumer) and "Unknown consumer.",
            ),
            (
                "producer",
                producer is not None,
                not isinstance(producer, Producer) and "Unknown producer.",
            ),
        ],
        errors,
    )
    raise_if(errors)


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
    name: str = "",
) -> Subscription:
    """`name` (unique in the tenant) defaults to `<consumer>.<event type>`, numbered when
    taken."""

    def build() -> Subscription:
        _check_refs(consumer, producer)
        return Subscription(
            name=(name or "").strip() or _default_name(consumer, event_type),
            consumer=consumer,
            event_type=(event_type or "").strip(),
            producer=producer,
            filter=filter if filter is not None else {},
            enabled=enabled,
            description=description or "",
        )

    return create(SUBSCRIPTIONS, actor=actor, build=build, validate=_validate)


def _default_name(consumer: Consumer, event_type: str) -> str:
    base = f"{consumer.name}.{(event_type or '').strip()}"[:96]
    taken = set(Subscription.objects.filter(name__startswith=base).values_list("name", flat=True))
    name, n = base, 1
    while name in taken:
        n += 1
        name = f"{base}-{n}"
    return name


@transaction.atomic
def subscription_update(*, actor, subscription: Subscription, **changes) -> Subscription:
    _check_refs(changes.get("consumer"), changes.get("producer"))
    return update(
        SUBSCRIPTIONS,
        subscription,
        actor=actor,
        changes=changes,
        clean=lambda name, value: (
            (value or "").strip() if name in ("event_type", "name") else value
        ),
        validate=_validate,
    )


@transaction.atomic
def subscription_delete(*, actor, subscription: Subscription) -> None:
    begin_write()
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
