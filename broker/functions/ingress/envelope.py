"""The event envelope producers send, checked before anything is routed.

    {"type": "order.created", "id"?: "<producer's id>", "time"?: RFC 3339, "data": <JSON>,
     "ordering_key"?: "<key>"}

`type` is a lowercase dotted name, `id` (at most 128 characters) is the producer's own id,
used for de-duplication and passed on as `source_id`; `time` defaults to the time of receipt.
`ordering_key` (a non-empty string of at most 128 characters) is the key of ordered
subscriptions whose `ordering_key_path` is empty (docs/data-plane.md, "Ordering"); it is not
part of the event consumers receive. Unknown fields are an error, as in the portal's API.

The body is parsed by `jsontext.loads` (UTF-8 RFC 8259 JSON that every later reader can read,
nesting at most 64). An event's size is its JSON as consumers receive it
(`{id, type, time, data, source_id?}`, `jsontext.dumps`, UTF-8 bytes): the unit SQS counts.
"""

import hashlib
import json
import re
import threading
import uuid
from datetime import datetime

import jsonschema
from jsonschema.exceptions import best_match
from referencing import Registry
from referencing.exceptions import Unresolvable

from broker.functions.shared import jsontext, messages, patterns

from .errors import IngressError

MAX_BATCH_EVENTS = 100
MAX_BODY_BYTES = 1024 * 1024  # a whole request, batch or not
MAX_EVENT_BYTES = 256 * 1024  # no tier may raise an event's size above this
MAX_SOURCE_ID = 128
MAX_ORDERING_KEY = 128
FIELDS = frozenset({"type", "id", "time", "data", "ordering_key"})
RFC3339_RE = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$"
)


# Every event id has this length: an event's size can be measured before its id is chosen.
_ID_PLACEHOLDER = "evt_" + "0" * 32


def new_event_id(tenant_id: str, producer_id: str, source_id: str | None) -> str:
    """`evt_` + 32 hex. Derived from the producer's own id when it gave one, so its retries
    (after a 503, a released or taken-over claim, or past the 24 h de-duplication window)
    keep the event id, and with it the delivery ids (`messages.delivery_id_for`)."""
    if source_id is None:
        return "evt_" + uuid.uuid4().hex
    key = json.dumps([str(tenant_id), str(producer_id), source_id])
    return "evt_" + hashlib.sha256(key.encode()).hexdigest()[:32]


def parse_json(body: bytes | str):
    try:
        return jsontext.loads(body)
    except jsontext.JSONError as exc:
        raise IngressError("parse_error", f"The body is not valid JSON: {exc}") from None


def max_event_bytes(tenant: dict, producer: dict) -> int:
    quota = producer.get("max_event_size_bytes") or tenant.get("quotas", {}).get(
        "max_event_size_bytes"
    )
    return min(int(quota or MAX_EVENT_BYTES), MAX_EVENT_BYTES)


def _valid_time(value) -> bool:
    if not isinstance(value, str) or not RFC3339_RE.match(value):
        return False
    try:
        datetime.fromisoformat(value.replace("z", "Z").replace("t", "T"))
    except ValueError:
        return False
    return True


def _check_size(checked: dict, limit: int) -> None:
    event = messages.event_body(
        event_id=_ID_PLACEHOLDER,
        type_=checked["type"],
        time=checked["time"],
        data=checked["data"],
        source_id=checked["source_id"],
    )
    size = jsontext.size(event)
    if size > limit:
        raise IngressError(
            "too_large", f"The event is {size} bytes; at most {limit} bytes are accepted."
        )
    if size > messages.max_event_bytes():
        # Only with a limit near 256 KiB: the delivery message (and the dead letter it may
        # become) must fit in SQS's MaximumMessageSize with its envelope.
        raise IngressError(
            "too_large",
            f"The event is {size} bytes; with its delivery envelope it would not fit in a "
            f"queue message of {messages.MAX_BODY_BYTES} bytes (at most "
            f"{messages.max_event_bytes()} bytes).",
        )


def validate(raw, *, limit: int) -> dict:
    """The checked event: {type, source_id, time, data, ordering_key}. Raises IngressError. The size is
    that of the event as consumers receive it, in UTF-8 bytes (module docstring)."""
    if not isinstance(raw, dict):
        raise IngressError("invalid", "An event is a JSON object.")
    errors: dict = {}
    for name in sorted(set(raw) - FIELDS):
        errors[name] = ["Unknown field."]
    type_ = raw.get("type")
    if type_ is None:
        errors["type"] = ["This field is required."]
    else:
        try:
            patterns.validate_event_type_name(type_)
        except patterns.PatternError as exc:
            errors["type"] = [str(exc)]
    source_id = raw.get("id")
    if source_id is not None and (
        not isinstance(source_id, str) or not source_id or len(source_id) > MAX_SOURCE_ID
    ):
        errors["id"] = [f"A non-empty string of at most {MAX_SOURCE_ID} characters."]
    time_ = raw.get("time")
    if time_ is not None and not _valid_time(time_):
        errors["time"] = ["An RFC 3339 date-time with a time zone (2026-01-31T12:00:00Z)."]
    if "data" not in raw:
        errors["data"] = ["This field is required."]
    ordering_key = raw.get("ordering_key")
    if ordering_key is not None and (
        not isinstance(ordering_key, str)
        or not ordering_key
        or len(ordering_key) > MAX_ORDERING_KEY
    ):
        errors["ordering_key"] = [f"A non-empty string of at most {MAX_ORDERING_KEY} characters."]
    if errors:
        raise IngressError("invalid", "The event is not valid.", fields=errors)
    checked = {
        "type": type_,
        "source_id": source_id,
        "time": time_ or messages.now_iso(),
        "data": raw["data"],
        "ordering_key": ordering_key,
    }
    _check_size(checked, limit)
    return checked


# --- JSON Schemas of event types -----------------------------------------------------------

_validators: dict[tuple, object] = {}
_lock = threading.Lock()


def _validator(tenant_id: str, item: dict):
    """A compiled validator per (tenant, event type, version): schemas are parsed once."""
    key = (str(tenant_id), item.get("name"), item.get("version"))
    with _lock:
        found = _validators.get(key)
    if found is None:
        schema = json.loads(item["schema_json"])
        # An empty registry: a `$ref` outside the schema is never fetched (the portal refuses
        # such schemas; one saved before that fails below instead of making a request).
        found = jsonschema.validators.validator_for(schema)(schema, registry=Registry())
        with _lock:
            if len(_validators) > 10_000:  # bounded: old versions fall out
                _validators.clear()
            _validators[key] = found
    return found


def check_schema(tenant_id: str, event_type_item: dict | None, data) -> None:
    """400 schema_mismatch when the event type has a JSON Schema and `data` does not fit it."""
    if not event_type_item or not event_type_item.get("schema_json"):
        return
    validator = _validator(tenant_id, event_type_item)
    try:
        if validator.is_valid(data):  # the common case, without collecting errors
            return
        error = best_match(validator.iter_errors(data))
    except Unresolvable as exc:
        raise IngressError(
            "schema_mismatch",
            f"The schema of {event_type_item.get('name')} refers to something outside it "
            "and cannot be used; fix the event type in the portal.",
            fields={"data": [f"Unresolvable reference: {str(exc)[:200]}"]},
        ) from None
    if error is None:
        return
    where = "data" + "".join(f"[{p!r}]" for p in error.absolute_path)
    raise IngressError(
        "schema_mismatch",
        f"The data does not match the schema of {event_type_item.get('name')}.",
        fields={"data": [f"{where}: {error.message}"]},
    )
