"""What every configuration service does: lock, check limits, validate, save with the version
bumped, audit, outbox. `create` and `update` are the one skeleton of each service's create and
update; the services say only what is particular to their object."""

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from broker.audit import audit_record
from broker.configcode import revisions
from broker.functions.shared import arn
from broker.sync import contract, tasks
from broker.sync.models import OutboxEntry
from core import locks
from core.audit_actions import AuditAction
from core.errors import ApplicationError, reject_unknown_fields
from core.parsers import check_json_value
from tenants.models import Tenant


def current_tenant():
    """The tenant whose schema is active (services always run inside one)."""
    tenant = getattr(connection, "tenant", None)
    if isinstance(tenant, Tenant) and tenant.tier_id:
        return tenant
    schema = connection.schema_name
    found = Tenant.objects.select_related("tier").filter(schema_name=schema).first()
    if found is None or found.tier_id is None:
        raise RuntimeError(f"broker services need a tenant schema, not {schema!r}")
    return found


def quotas() -> dict[str, int]:
    """The tenant's quotas as they are now (the request's tenant object may be older)."""
    return Tenant.objects.select_related("tier").get(pk=current_tenant().pk).effective_quotas()


def lock(name: str) -> None:
    """A transaction-scoped advisory lock per tenant: serialises count-then-insert limit checks."""
    locks.xact_lock(name, connection.schema_name)


def begin_write() -> None:
    """Every configuration write of a tenant takes its revision lock first (revisions are
    numbered in commit order, broker/configcode/revisions.py), so the tenant's writes take
    their locks in one order: revision, then limits, then rows. An apply holding the revision
    lock then never waits on a row that a single write holds while waiting for that lock."""
    revisions.lock()


def check_limit(*, model, quota: str, label: str) -> None:
    limit = quotas()[quota]
    if model.objects.count() >= limit:
        raise ApplicationError(
            f"Your plan allows at most {limit} {label} ({quota}).",
            code="limit_exceeded",
            fields={"non_field_errors": [f"Limit of {limit} {label} reached ({quota})."]},
        )


# --- validation: one style ----------------------------------------------------------------
# A service validates with a list of rules, `(field, applies, message)`. The first failing
# rule of a field wins. A message may be a callable, called only when its rule applies and the
# field has no error yet, so that a check costing a query or a DNS lookup (a taken name, SSRF)
# runs only when it matters: it returns the message, a list of messages, or None (passes).

Message = str | list[str] | Callable[[], str | list[str] | None] | None
Rule = tuple[str, bool, Message]


def check(rules: Iterable[Rule], errors: dict) -> None:
    failed: set[str] = set()
    for name, applies, message in rules:
        if not applies or name in failed:
            continue
        if callable(message):
            message = message()
        if not message:
            continue
        failed.add(name)
        errors.setdefault(name, []).extend(message if isinstance(message, list) else [message])


def at_most(*, field: str, value, quota: str, limits=None, previous=None) -> Rule:
    """A plan limit applies to a new value and to raising one: an object stored above a
    since-lowered limit can still be edited, and lowered, but not raised further."""

    def problem():
        if previous is not None and isinstance(value, int) and value <= previous:
            return None
        limit = (limits or quotas())[quota]
        return f"At most {limit} on your plan ({quota})." if value > limit else None

    return (field, value is not None, problem)


def json_size(*, field: str, value, max_bytes: int, max_depth: int) -> Rule:
    """Bounds what a JSON field can grow to, so its DynamoDB item stays far below 400 KB."""

    def problem():
        nested = check_json_value(value, max_depth=max_depth)
        if nested:
            return nested
        size = len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())
        return f"At most {max_bytes} bytes of JSON ({size} given)." if size > max_bytes else None

    return (field, value is not None, problem)


def problem(check_value: Callable, value, *, refused: type[Exception]) -> str | None:
    """The message of a check that raises `refused` (a pattern, an ARN, SSRF), or None."""
    try:
        check_value(value)
    except refused as exc:
        return str(exc)
    return None


def arn_problem(queue_arn: str) -> str | None:
    return problem(arn.parse_sqs_arn, queue_arn, refused=arn.ArnError)


def unique_name(model, obj, *, taken: str) -> list[Rule]:
    """A name is required and unique in the tenant."""
    name = (obj.name or "").strip()
    others = model.objects.filter(name=obj.name).exclude(pk=obj.pk)
    return [
        ("name", not name, "This field is required."),
        ("name", bool(name), lambda: taken if others.exists() else None),
    ]


def raise_if(errors: dict, message: str = "Invalid input.") -> None:
    if errors:
        raise ApplicationError(message, fields=errors)


def snapshot(obj, fields) -> dict:
    out = {}
    for name in fields:
        value = getattr(obj, name)
        if hasattr(value, "isoformat"):
            value = value.isoformat()
        elif hasattr(value, "hex") and not isinstance(value, (str, bytes)):
            value = str(value)
        out[name] = value
    return out


def record_change(
    *,
    actor,
    action: str,
    object_type: str,
    obj,
    before: dict | None,
    after: dict | None,
    deleted: bool = False,
    stale_keys=(),
    audit: bool = True,
) -> OutboxEntry:
    """Audit row (in the tenant schema) and outbox row (shared), in the caller's transaction."""
    assert transaction.get_connection().in_atomic_block, "call inside the change's transaction"
    if audit:
        audit_record(
            actor=actor,
            action=action,
            object_type=object_type,
            object_id=obj.pk,
            before=before,
            after=after,
        )
    # The tenant's configuration revision: one per change, whatever path made it.
    revisions.record(actor=actor, object_type=object_type, obj=obj, deleted=deleted)
    entry = OutboxEntry.objects.create(
        tenant_id=current_tenant().pk,
        object_type=object_type,
        object_id=str(obj.pk),
        version=obj.version,
        deleted=deleted,
        stale_keys=[list(k) for k in stale_keys],
    )
    transaction.on_commit(_kick_relay)
    return entry


def delete_recorded(
    *, actor, object_type: str, obj, action: AuditAction | None = None, before=None, audit=True
) -> None:
    """The one way a mirrored object is deleted: its version bumped, tombstones queued for
    every item key it had, an audit row (unless `audit` is off), then the row itself."""
    keys = keys_of(object_type, obj)
    bump(obj)
    record_change(
        actor=actor,
        action=action or AuditAction(f"{object_type}.delete"),
        object_type=object_type,
        obj=obj,
        before=before,
        after=None,
        deleted=True,
        stale_keys=keys,
        audit=audit,
    )
    obj.delete()


def keys_of(object_type: str, obj) -> list[tuple[str, str]]:
    return contract.item_keys(object_type, obj, tenant_id=current_tenant().pk)


def bump(obj) -> None:
    obj.version += 1
    obj.updated_at = timezone.now()


def _kick_relay() -> None:
    tasks.kick_relay()


# --- the create/update skeleton ------------------------------------------------------------


@dataclass(frozen=True)
class Config:
    """What the skeleton needs to know of one kind of configuration object."""

    model: type
    object_type: str  # as the outbox, the sync state and the audit actions name it
    fields: tuple[str, ...]  # what the audit row shows and an update compares
    plural: str  # "producers", in limit messages
    quota: str = ""  # the plan's limit on how many (`max_producers`), if any
    max_count: Callable[[], int] | None = None  # a fixed limit on how many, read at each create
    taken: str = ""  # the error when a unique name is taken at save time (a race)
    updatable: tuple[str, ...] = ()  # what an update accepts (default: `fields`)
    fixed: dict = field(default_factory=dict)  # field → why it cannot change


def create(
    config: Config,
    *,
    actor,
    build: Callable[[], object],
    validate: Callable[[object, dict], None],
    before_save: Callable[[object], None] | None = None,
    after_save: Callable[[object], None] | None = None,
    audit_after: dict | None = None,
):
    """Locks the tenant's objects of this kind, checks how many there may be, builds and
    validates the object, saves it and records the change (audit row, outbox row)."""
    begin_write()
    lock(config.object_type)
    if config.quota:
        check_limit(model=config.model, quota=config.quota, label=config.plural)
    if config.max_count and config.model.objects.count() >= (most := config.max_count()):
        raise ApplicationError(f"At most {most} {config.plural} per tenant.", code="limit_exceeded")
    obj = build()
    errors: dict = {}
    validate(obj, errors)
    raise_if(errors)
    if before_save:
        before_save(obj)
    _save(config, obj)
    if after_save:
        after_save(obj)
    record_change(
        actor=actor,
        action=AuditAction(f"{config.object_type}.create"),
        object_type=config.object_type,
        obj=obj,
        before=None,
        after={**snapshot(obj, config.fields), **(audit_after or {})},
    )
    return obj


def update(
    config: Config,
    obj,
    *,
    actor,
    changes: dict,
    validate: Callable[[object, dict, dict], None],
    clean: Callable[[str, object], object] | None = None,
    adjust: Callable[[object, dict], None] | None = None,
    force: bool = False,
    before_save: Callable[[object], None] | None = None,
    after_save: Callable[[object], None] | None = None,
    audit_notes: tuple[dict, dict] | None = None,
):
    """Applies `changes` (each through `clean`) to the locked row, then `adjust`; when
    something changed (or `force`), validates against the stored values, saves with the
    version bumped and records the change, with tombstones for item keys the change moved."""
    reject_unknown_fields(changes, config.updatable or config.fields)
    begin_write()
    obj = config.model.objects.select_for_update().get(pk=obj.pk)
    for name, why in config.fixed.items():
        if name in changes and changes[name] != getattr(obj, name):
            raise ApplicationError("Invalid input.", fields={name: [why]})
    before = snapshot(obj, config.fields)
    old_keys = keys_of(config.object_type, obj)
    for name, value in changes.items():
        setattr(obj, name, clean(name, value) if clean else value)
    if adjust:
        adjust(obj, before)
    after = snapshot(obj, config.fields)
    if after == before and not force:
        return obj
    errors: dict = {}
    validate(obj, errors, before)
    raise_if(errors)
    if before_save:
        before_save(obj)
    bump(obj)
    obj.save()
    if after_save:
        after_save(obj)
    notes_before, notes_after = audit_notes or ({}, {})
    new_keys = keys_of(config.object_type, obj)
    record_change(
        actor=actor,
        action=AuditAction(f"{config.object_type}.update"),
        object_type=config.object_type,
        obj=obj,
        before={**before, **notes_before},
        after={**after, **notes_after},
        # A new event type or source queue moves an item to another key: the old one gets a
        # tombstone.
        stale_keys=[k for k in old_keys if k not in new_keys],
    )
    return obj


def _save(config: Config, obj) -> None:
    if not config.taken:
        obj.save()
        return
    try:
        with transaction.atomic():
            obj.save()
    except IntegrityError:  # a concurrent create took the name after the check
        raise ApplicationError("Invalid input.", fields={"name": [config.taken]})
