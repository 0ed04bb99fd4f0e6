from django.db import IntegrityError, transaction
from jsonschema import SchemaError, validators

from broker.functions.shared import patterns
from broker.models import EventType
from broker.sync.contract import EVENT_TYPE
from core.audit_actions import AuditAction
from core.errors import ApplicationError, reject_unknown_fields

from ._common import (
    bump,
    check_json_size,
    delete_recorded,
    raise_if,
    record_change,
    snapshot,
)

FIELDS = ("name", "description", "schema")
MAX_EVENT_TYPES = 1000
# An event type's schema rides in its DynamoDB item (400 KB at most): far below that.
MAX_SCHEMA_BYTES = 64 * 1024
MAX_SCHEMA_DEPTH = 32


def _validate(event_type: EventType, errors: dict) -> None:
    try:
        patterns.validate_event_type_name(event_type.name or "")
    except patterns.PatternError as exc:
        errors.setdefault("name", []).append(str(exc))
    else:
        if EventType.objects.filter(name=event_type.name).exclude(pk=event_type.pk).exists():
            errors.setdefault("name", []).append("This event type already exists.")
    schema = event_type.schema
    if schema is not None:
        if not isinstance(schema, dict):
            errors.setdefault("schema", []).append("A JSON Schema object.")
            return
        check_json_size(
            field="schema",
            value=schema,
            max_bytes=MAX_SCHEMA_BYTES,
            max_depth=MAX_SCHEMA_DEPTH,
            errors=errors,
        )
        if "schema" not in errors:
            try:
                validators.validator_for(schema).check_schema(schema)
            except SchemaError as exc:
                errors.setdefault("schema", []).append(f"Not a valid JSON Schema: {exc.message}")


@transaction.atomic
def event_type_create(
    *, actor, name: str, description: str = "", schema: dict | None = None
) -> EventType:
    if EventType.objects.count() >= MAX_EVENT_TYPES:
        raise ApplicationError(
            f"At most {MAX_EVENT_TYPES} event types per tenant.", code="limit_exceeded"
        )
    event_type = EventType(name=(name or "").strip(), description=description or "", schema=schema)
    errors: dict = {}
    _validate(event_type, errors)
    raise_if(errors)
    try:
        with transaction.atomic():
            event_type.save()
    except IntegrityError:
        raise ApplicationError(
            "Invalid input.", fields={"name": ["This event type already exists."]}
        )
    record_change(
        actor=actor,
        action=AuditAction.EVENT_TYPE_CREATE,
        object_type=EVENT_TYPE,
        obj=event_type,
        before=None,
        after=snapshot(event_type, FIELDS),
    )
    return event_type


@transaction.atomic
def event_type_update(*, actor, event_type: EventType, **changes) -> EventType:
    """Description and schema change; the name is the type's identity and does not."""
    reject_unknown_fields(changes, {"description", "schema", "name"})
    event_type = EventType.objects.select_for_update().get(pk=event_type.pk)
    if "name" in changes and changes["name"] != event_type.name:
        raise ApplicationError(
            "Invalid input.", fields={"name": ["An event type cannot be renamed."]}
        )
    before = snapshot(event_type, FIELDS)
    for name, value in changes.items():
        setattr(event_type, name, value)
    after = snapshot(event_type, FIELDS)
    if after == before:
        return event_type
    errors: dict = {}
    _validate(event_type, errors)
    raise_if(errors)
    bump(event_type)
    event_type.save()
    record_change(
        actor=actor,
        action=AuditAction.EVENT_TYPE_UPDATE,
        object_type=EVENT_TYPE,
        obj=event_type,
        before=before,
        after=after,
    )
    return event_type


@transaction.atomic
def event_type_delete(*, actor, event_type: EventType) -> None:
    event_type = EventType.objects.select_for_update().get(pk=event_type.pk)
    delete_recorded(
        actor=actor, object_type=EVENT_TYPE, obj=event_type, before=snapshot(event_type, FIELDS)
    )
