"""Reads of dead letters: the one filter (list, replay and discard share it) and the groups."""

from django.db.models import Count, Max, Min, Q, QuerySet
from django.utils.dateparse import parse_datetime

from core.errors import ApplicationError
from core.filters import MAX_UTC_OFFSET

from .models import DeadLetter, LetterStatus

FILTERS = (
    "consumer",
    "producer",
    "event_type",
    "status",
    "error",
    "error_kind",
    "delivery_id",
    "since",
    "until",
)


def _datetime(name: str, value, errors: dict):
    parsed = None
    try:
        parsed = parse_datetime(str(value))
    except ValueError:
        pass
    if parsed is None or parsed.tzinfo is None:
        errors[name] = ["An ISO 8601 date-time with a time zone (2026-11-30T12:00:00Z)."]
    elif abs(parsed.utcoffset()) > MAX_UTC_OFFSET:
        errors[name] = ["The UTC offset must be between -15:59 and +15:59."]
    return parsed


def clean_filter(raw, *, field: str = "filter") -> dict:
    """Validates a filter (a body's `filter` or the list's query parameters); unknown keys
    are an error, not ignored."""
    if not isinstance(raw, dict):
        raise ApplicationError("Invalid input.", fields={field: ["Expected an object."]})
    errors: dict = {}
    out: dict = {}
    for key, value in raw.items():
        if key not in FILTERS:
            errors[key] = [f"Unknown filter. Filters: {', '.join(FILTERS)}."]
            continue
        if value is None or value == "":
            continue
        if key in ("since", "until"):
            out[key] = _datetime(key, value, errors)
        elif key == "status":
            values = value if isinstance(value, list) else str(value).split(",")
            bad = [v for v in values if v not in LetterStatus.values]
            if bad:
                errors[key] = [f"Unknown status. Statuses: {', '.join(LetterStatus.values)}."]
            out[key] = list(values)
        elif not isinstance(value, str) or len(value) > 1000:
            errors[key] = ["A string of at most 1000 characters."]
        else:
            out[key] = value
    if errors:
        raise ApplicationError("Invalid filter.", fields={field: errors} if field else errors)
    return out


def letters_filtered(filters: dict, qs: QuerySet | None = None) -> QuerySet:
    qs = DeadLetter.objects.all() if qs is None else qs
    if "consumer" in filters:
        qs = qs.filter(consumer_id=filters["consumer"])
    if "producer" in filters:
        qs = qs.filter(producer_id=filters["producer"])
    if "event_type" in filters:
        qs = qs.filter(event_type=filters["event_type"])
    if "status" in filters:
        qs = qs.filter(status__in=filters["status"])
    if "error" in filters:
        qs = qs.filter(last_error__icontains=filters["error"])
    if "error_kind" in filters:
        failure = filters["error_kind"]
        # A group's failure is an HTTP status ("503") or an error kind ("timeout").
        if failure.isdigit():
            qs = qs.filter(last_status=int(failure))
        else:
            qs = qs.filter(error_kind=failure)
    if "delivery_id" in filters:
        qs = qs.filter(delivery_id=filters["delivery_id"])
    if "since" in filters:
        qs = qs.filter(dead_lettered_at__gte=filters["since"])
    if "until" in filters:
        qs = qs.filter(dead_lettered_at__lt=filters["until"])
    return qs


def letter_groups(*, statuses=(LetterStatus.PENDING,), limit: int = 200) -> list[dict]:
    """Counts by consumer × failure (HTTP status, else error kind) × event type, with the
    oldest and newest; one query."""
    rows = (
        DeadLetter.objects.filter(status__in=statuses)
        .values("consumer_id", "last_status", "error_kind", "event_type")
        .annotate(
            count=Count("id"),
            oldest=Min("dead_lettered_at"),
            newest=Max("dead_lettered_at"),
        )
        .order_by("-count", "consumer_id", "event_type")[:limit]
    )
    out = []
    for row in rows:
        failure = str(row["last_status"]) if row["last_status"] else row["error_kind"]
        out.append(
            {
                "consumer_id": row["consumer_id"],
                "failure": failure,
                "last_status": row["last_status"],
                "error_kind": row["error_kind"],
                "event_type": row["event_type"],
                "count": row["count"],
                "oldest": row["oldest"],
                "newest": row["newest"],
            }
        )
    return out


def backlog() -> tuple[int, object]:
    """(pending letters, dead_lettered_at of the oldest one) in the active schema."""
    agg = DeadLetter.objects.filter(status=LetterStatus.PENDING).aggregate(
        n=Count("id"), oldest=Min("dead_lettered_at")
    )
    return agg["n"], agg["oldest"]


def pending_q() -> Q:
    return Q(status=LetterStatus.PENDING)
