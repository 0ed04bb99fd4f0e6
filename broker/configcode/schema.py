"""The document's format as a JSON Schema: checked before a plan is made, and published in
the API's OpenAPI document (the plan and apply request bodies)."""

from jsonschema import Draft202012Validator

from broker.models import (
    Consumer,
    ConsumerAuth,
    EventType,
    Kind,
    OnHeadFailure,
    Producer,
    Subscription,
)


def _max(model, field: str) -> int:
    return model._meta.get_field(field).max_length


def _string(model, field: str, **extra) -> dict:
    return {"type": "string", "maxLength": _max(model, field), **extra}


def _nullable(schema: dict) -> dict:
    return {**schema, "type": [schema["type"], "null"]}


_NAME = {"minLength": 1}
_COUNT = {"type": "integer", "minimum": 1}

PRODUCER = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name", "kind"],
    "properties": {
        "name": _string(Producer, "name", **_NAME),
        "previous_name": _string(Producer, "name", **_NAME),
        "kind": {"type": "string", "enum": list(Kind.values)},
        "enabled": {"type": "boolean"},
        "allowed_event_types": {"type": "array", "items": {"type": "string"}},
        "ingest_rate_per_second": _nullable(_COUNT),
        "ingest_burst": _nullable(_COUNT),
        "source_queue_arn": _string(Producer, "source_queue_arn"),
        "description": _string(Producer, "description"),
    },
}
_REF = {
    "type": "object",
    "additionalProperties": False,
    "required": ["ref"],
    "properties": {"ref": {"type": "string", "enum": ["stored"]}},
}
CONSUMER = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name", "kind"],
    "properties": {
        "name": _string(Consumer, "name", **_NAME),
        "previous_name": _string(Consumer, "name", **_NAME),
        "kind": {"type": "string", "enum": list(Kind.values)},
        "url": _string(Consumer, "url"),
        "queue_arn": _string(Consumer, "queue_arn"),
        "enabled": {"type": "boolean"},
        "description": _string(Consumer, "description"),
        "auth_type": {"type": "string", "enum": list(ConsumerAuth.values)},
        "auth_username": _string(Consumer, "auth_username"),
        # A new credential (write-only), or the stored one kept: {"ref": "stored"}.
        "auth_secret": {"oneOf": [{"type": "string", "minLength": 1}, _REF, {"type": "null"}]},
        # Said by exports; a document cannot set it (the platform generates it).
        "signing_secret": {"oneOf": [_REF, {"type": "null"}]},
        "timeout_ms": {"type": "integer", "minimum": 1},
        "delivery_concurrency": _nullable(_COUNT),
        "retry_policy": {"type": "object"},
        "rate_limit_per_second": _nullable(_COUNT),
    },
}
SUBSCRIPTION = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name", "consumer", "event_type"],
    "properties": {
        "name": _string(Subscription, "name", **_NAME),
        "previous_name": _string(Subscription, "name", **_NAME),
        "consumer": _string(Consumer, "name", **_NAME),
        "producer": _nullable(_string(Producer, "name", **_NAME)),
        "event_type": _string(Subscription, "event_type", **_NAME),
        "filter": {"type": "object"},
        "enabled": {"type": "boolean"},
        "description": _string(Subscription, "description"),
        "ordered": {"type": "boolean"},
        "ordering_key_path": _string(Subscription, "ordering_key_path"),
        "on_head_failure": {"type": "string", "enum": list(OnHeadFailure.values)},
    },
}
EVENT_TYPE = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name"],
    "properties": {
        "name": _string(EventType, "name", **_NAME),
        "description": _string(EventType, "description"),
        "schema": {"type": ["object", "null"]},
    },
}
DOCUMENT = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "Broker configuration document",
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "producers": {"type": "array", "items": PRODUCER},
        "consumers": {"type": "array", "items": CONSUMER},
        "subscriptions": {"type": "array", "items": SUBSCRIPTION},
        "event_types": {"type": "array", "items": EVENT_TYPE},
    },
}


def _openapi(schema):
    """The same schema in OpenAPI 3.0's dialect: `nullable` instead of a `null` type."""
    if isinstance(schema, list):
        return [_openapi(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _openapi(v) for k, v in schema.items() if k not in ("$schema",)}
    if isinstance(out.get("type"), list):
        types = [t for t in out["type"] if t != "null"]
        out["type"], out["nullable"] = types[0], True
    if "oneOf" in out and {"type": "null"} in schema["oneOf"]:
        # nullable outside the oneOf: inside, null would match every branch.
        out["oneOf"] = [s for s in out["oneOf"] if s != {"type": "null"}]
        out["nullable"] = True
    return out


OPENAPI = _openapi(DOCUMENT)

_validator = Draft202012Validator(DOCUMENT)


def path_of(parts) -> str:
    """`consumers[2].url` from jsonschema's path deque."""
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "document"


def format_errors(document) -> dict[str, list[str]]:
    """{path: [message]} for every place the document breaks the format; {} when it holds."""
    errors: dict[str, list[str]] = {}
    for error in sorted(_validator.iter_errors(document), key=lambda e: list(map(str, e.path))):
        if error.validator == "additionalProperties":
            for extra in sorted(set(error.instance) - set(error.schema["properties"])):
                errors.setdefault(path_of([*error.path, extra]), []).append("Unknown field.")
            continue
        errors.setdefault(path_of(error.path), []).append(error.message)
    return errors
