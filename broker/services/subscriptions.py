import re

from django.db import transaction

from broker.functions.shared import patterns
from broker.models import Consumer, OnHeadFailure, Producer, Subscription
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

ORDERING_FIELDS = ("ordered", "ordering_key_path", "on_head_failure")
FIELDS = (
    "name",
    "consumer_id",
    "event_type",
    "producer_id",
    "filter",
    "enabled",
    "description",
    *ORDERING_FIELDS,
)
UPDATABLE = (
    "name",
    "consumer",
    "event_type",
    "producer",
    "filter",
    "enabled",
    "description",
    *ORDERING_FIELDS,
)
# A dotted path into the event as the consumer receives it: `data.order_id`, `subject`.
# Segments of letters, digits, `_` and `-` (no array indexes: a key is one scalar).
ORDERING_KEY_PATH_RE = re.compile(r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*")
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
            *_ordering_rules(sub),
        ],
        errors,
    )


def _ordering_rules(sub: Subscription) -> list:
    """`ordering_key_path` and `on_head_failure` are kept when `ordered` is off (they take
    effect when it is turned on), so they are checked whatever `ordered` says."""
    path = sub.ordering_key_path
    max_path = Subscription._meta.get_field("ordering_key_path").max_length
    return [
        ("ordered", not isinstance(sub.ordered, bool), "Expected true or false."),
        ("ordering_key_path", not isinstance(path, str), "Expected a string."),
        (
            "ordering_key_path",
            isinstance(path, str) and len(path) > max_path,
            f"At most {max_path} characters.",
        ),
        (
            "ordering_key_path",
            isinstance(path, str) and bool(path) and not ORDERING_KEY_PATH_RE.fullmatch(path),
            "A dotted path of letters, digits, '_' and '-' (data.order_id); "
            "empty: the event's ordering_key.",
        ),
        (
            "on_head_failure",
            sub.on_head_failure not in OnHeadFailure.values,
            f"One of: {', '.join(OnHeadFailure.values)}.",
        ),
    ]


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
    ordered: bool = False,
    ordering_key_path: str = "",
    on_head_failure: str = OnHeadFailure.SKIP,
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
            ordered=ordered,
            ordering_key_path=_strip(ordering_key_path),
            on_head_failure=on_head_failure,
        )

    return create(SUBSCRIPTIONS, actor=actor, build=build, validate=_validate)


def _strip(value):
    if value is None:
        return ""
    return value.strip() if isinstance(value, str) else value


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
            _strip(value) if name in ("event_type", "name", "ordering_key_path") else value
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
