from urllib.parse import urljoin

import referencing.jsonschema
from django.db import transaction
from jsonschema import SchemaError, validators
from referencing import Registry
from referencing.exceptions import Unresolvable

from broker.functions.shared import patterns
from broker.models import EventType
from broker.sync.contract import EVENT_TYPE

from ._common import (
    Config,
    begin_write,
    check,
    create,
    delete_recorded,
    json_size,
    problem,
    snapshot,
    update,
)

FIELDS = ("name", "description", "schema")
MAX_EVENT_TYPES = 1000
# An event type's schema rides in its DynamoDB item (400 KB at most): far below that.
MAX_SCHEMA_BYTES = 64 * 1024
MAX_SCHEMA_DEPTH = 32


# The URI a schema without `$id` is known by while its references are checked.
_BASE_URI = "urn:broker:event-type"
_REFERENCE_KEYWORDS = ("$ref", "$dynamicRef", "$recursiveRef")


def _references(schema: dict):
    """(path, base URI, reference) of every reference keyword in the schema, with the base
    URI that nested `$id`s set. Iterative: schemas are checked for depth after this."""
    stack = [(schema, _BASE_URI, [])]
    while stack:
        item, base, path = stack.pop()
        if isinstance(item, dict):
            if isinstance(item.get("$id"), str):
                base = urljoin(base, item["$id"])
            for key, value in item.items():
                if key in _REFERENCE_KEYWORDS and isinstance(value, str):
                    yield [*path, key], base, value
                else:
                    stack.append((value, base, [*path, key]))
        elif isinstance(item, list):
            stack.extend((value, base, [*path, i]) for i, value in enumerate(item))


def _reference_problem(schema: dict) -> str | None:
    """Every `$ref` must resolve within the schema itself. A remote one would be fetched by
    the ingress for each event (or fail every event of the type with an error), so it is
    refused here with its path, as is a local one pointing at nothing."""
    spec = referencing.jsonschema.specification_with(
        str(schema.get("$schema", "")), default=referencing.jsonschema.DRAFT202012
    )
    # An empty registry retrieves nothing: what it cannot find is outside the schema.
    registry = Registry().with_resource(_BASE_URI, spec.create_resource(schema)).crawl()
    for path, base, reference in _references(schema):
        try:
            registry.resolver(base_uri=base).lookup(reference)
        except Unresolvable:
            where = ".".join(str(p) for p in path)
            return (
                f"{where}: {reference[:200]!r} does not resolve within the schema; only "
                "references to the schema's own parts are allowed."
            )
    return None


EVENT_TYPES = Config(
    model=EventType,
    object_type=EVENT_TYPE,
    fields=FIELDS,
    plural="event types",
    max_count=lambda: MAX_EVENT_TYPES,
    taken="This event type already exists.",
    fixed={"name": "An event type cannot be renamed."},
)


def _validate(event_type: EventType, errors: dict, before: dict | None = None) -> None:
    schema = event_type.schema
    others = EventType.objects.filter(name=event_type.name).exclude(pk=event_type.pk)
    check(
        [
            (
                "name",
                True,
                lambda: problem(
                    patterns.validate_event_type_name,
                    event_type.name or "",
                    refused=patterns.PatternError,
                ),
            ),
            ("name", True, lambda: EVENT_TYPES.taken if others.exists() else None),
            (
                "schema",
                schema is not None and not isinstance(schema, dict),
                "A JSON Schema object.",
            ),
            json_size(
                field="schema",
                value=schema,
                max_bytes=MAX_SCHEMA_BYTES,
                max_depth=MAX_SCHEMA_DEPTH,
            ),
            ("schema", schema is not None, lambda: _schema_problem(schema)),
        ],
        errors,
    )


def _schema_problem(schema: dict) -> str | None:
    try:
        validators.validator_for(schema).check_schema(schema)
    except SchemaError as exc:
        return f"Not a valid JSON Schema: {exc.message}"
    return _reference_problem(schema)


@transaction.atomic
def event_type_create(
    *, actor, name: str, description: str = "", schema: dict | None = None
) -> EventType:
    return create(
        EVENT_TYPES,
        actor=actor,
        build=lambda: EventType(
            name=(name or "").strip(), description=description or "", schema=schema
        ),
        validate=_validate,
    )


@transaction.atomic
def event_type_update(*, actor, event_type: EventType, **changes) -> EventType:
    """Description and schema change; the name is the type's identity and does not."""
    return update(EVENT_TYPES, event_type, actor=actor, changes=changes, validate=_validate)


@transaction.atomic
def event_type_delete(*, actor, event_type: EventType) -> None:
    begin_write()
    event_type = EventType.objects.select_for_update().get(pk=event_type.pk)
    delete_recorded(
        actor=actor, object_type=EVENT_TYPE, obj=event_type, before=snapshot(event_type, FIELDS)
    )
