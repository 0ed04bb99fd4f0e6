"""Plan and apply: the changes that make the tenant's configuration what a document says,
made in one transaction through the same services as every other write (validation, limits,
audit, outbox), as one revision.

Names are the identity: an object whose name is not configured is created, a configured
object the document leaves out is deleted, unless the document renames it by saying its
`previous_name`.
"""

import hashlib
import json

from django.db import transaction

from broker import services
from broker.functions.shared import patterns
from broker.models import Consumer, EventType, Producer, Subscription
from broker.services._common import current_tenant
from broker.sync.contract import CONSUMER, EVENT_TYPE, PRODUCER, SUBSCRIPTION
from core.errors import ApplicationError

from . import document, revisions, schema
from . import traffic as traffic_check
from .document import FIELDS, SECTION_OF, SECTIONS, STORED

DEFAULTS = {
    PRODUCER: {
        "enabled": True,
        "allowed_event_types": [],
        "ingest_rate_per_second": None,
        "ingest_burst": None,
        "source_queue_arn": "",
        "description": "",
    },
    CONSUMER: {
        "url": "",
        "queue_arn": "",
        "enabled": True,
        "description": "",
        "auth_type": "none",
        "auth_username": "",
        "auth_secret": None,
        "signing_secret": None,
        "timeout_ms": 10_000,
        "delivery_concurrency": None,
        "retry_policy": {},
        "rate_limit_per_second": None,
    },
    SUBSCRIPTION: {
        "producer": None,
        "filter": {},
        "enabled": True,
        "description": "",
        "ordered": False,
        "ordering_key_path": "",
        "on_head_failure": "skip",
    },
    EVENT_TYPE: {"description": "", "schema": None},
}
MODELS = {PRODUCER: Producer, CONSUMER: Consumer, SUBSCRIPTION: Subscription, EVENT_TYPE: EventType}
# Made by the platform, never by a document: compared nowhere, said in notes.
NOT_COMPARED = {CONSUMER: ("signing_secret",)}
NEW_SECRET = "(new value)"
# The order changes are made in: a subscription leaves before what it names can go, and
# what it names exists before it arrives.
ORDER = [
    ("delete", SUBSCRIPTION),
    ("upsert", EVENT_TYPE),
    ("upsert", PRODUCER),
    ("upsert", CONSUMER),
    ("upsert", SUBSCRIPTION),
    ("delete", CONSUMER),
    ("delete", PRODUCER),
    ("delete", EVENT_TYPE),
]


def conflict(message: str) -> ApplicationError:
    return ApplicationError(message, code="conflict", status_code=409)


def normalise(object_type: str, obj: dict) -> dict:
    """An object with every field, in the document's order (omitted ones at their default)."""
    full = {**DEFAULTS[object_type], **obj}
    out = {name: full[name] for name in FIELDS[object_type]}
    if object_type == CONSUMER and isinstance(out["auth_secret"], str):
        out["auth_secret"] = NEW_SECRET  # a new credential: compared as "changed", never shown
    return out


def check_document(doc) -> None:
    """400 with each problem's path: the format first (JSON Schema), then names and references."""
    errors = schema.format_errors(doc)
    if not errors:
        errors = _reference_errors(doc)
    if errors:
        raise ApplicationError("Invalid configuration document.", fields=errors)


def _reference_errors(doc: dict) -> dict:
    errors: dict = {}
    for section in SECTIONS:
        seen = set()
        for i, obj in enumerate(doc.get(section, [])):
            if obj["name"] in seen:
                errors.setdefault(f"{section}[{i}].name", []).append(
                    f"{obj['name']!r} is named twice in {section}."
                )
            seen.add(obj["name"])
    names = {s: {o["name"] for o in doc.get(s, [])} for s in ("consumers", "producers")}
    for i, sub in enumerate(doc.get("subscriptions", [])):
        if sub["consumer"] not in names["consumers"]:
            errors.setdefault(f"subscriptions[{i}].consumer", []).append(
                f"No consumer named {sub['consumer']!r} in the document."
            )
        if sub.get("producer") and sub["producer"] not in names["producers"]:
            errors.setdefault(f"subscriptions[{i}].producer", []).append(
                f"No producer named {sub['producer']!r} in the document."
            )
    return errors


def _fields(before: dict | None, after: dict | None, object_type: str) -> dict:
    skip = NOT_COMPARED.get(object_type, ())
    keys = FIELDS[object_type]
    return {
        k: [(before or {}).get(k), (after or {}).get(k)]
        for k in keys
        if k not in skip
        and (before is None or after is None or before.get(k) != after.get(k))
        and not (before is None and after.get(k) is None)
        and not (after is None and before.get(k) is None)
    }


def _notes(action: str, object_type: str, before: dict | None, after: dict | None) -> list[str]:
    notes = []
    if action == "create" and object_type == PRODUCER and after["kind"] == "https":
        notes.append("A new API key is issued: shown once in the apply answer.")
    if action == "create" and object_type == CONSUMER and after["kind"] == "https":
        notes.append("A new signing secret is made: shown once in the apply answer.")
    if action == "create" and object_type == CONSUMER and after.get("auth_secret") == STORED:
        notes.append(
            "The stored auth secret cannot come back (secrets have no history): give it as "
            "`auth_secret` in the document."
        )
    if action == "delete" and object_type == PRODUCER:
        notes.append("Its API keys stop working.")
    return notes


def changes_between(current: dict, desired: dict, *, renames: bool = True) -> list[dict]:
    """The changes that turn document `current` into `desired`, in the order they are made."""
    have = {k: normalise(t, o) for (t, n), o in document.by_name(current).items() for k in [(t, n)]}
    want_raw = document.by_name(desired)
    out: dict[str, list] = {f"{a}:{t}": [] for a, t in ORDER}
    kept = set()
    for (object_type, name), raw in sorted(want_raw.items()):
        after = normalise(object_type, raw)
        source = (object_type, name)
        previous = raw.get("previous_name") if renames else None
        if source not in have and previous and (object_type, previous) in have:
            source = (object_type, previous)
        before = have.get(source)
        if before is None:
            action = "create"
        else:
            kept.add(source)
            action = "update"
        fields = _fields(before, after, object_type)
        if object_type == CONSUMER and action == "update" and after["auth_secret"] != NEW_SECRET:
            # Only a new credential changes it: the stored one is kept, or cleared by the
            # service when auth_type changes.
            fields.pop("auth_secret", None)
        if action == "update" and not fields:
            continue
        change = {
            "action": action,
            "object_type": object_type,
            "name": name,
            "fields": fields,
            "notes": _notes(action, object_type, before, after),
        }
        if source[1] != name:
            change["previous_name"] = source[1]
        out[f"upsert:{object_type}"].append(change)
    for (object_type, name), before in sorted(have.items()):
        if (object_type, name) not in kept and (object_type, name) not in want_raw:
            out[f"delete:{object_type}"].append(
                {
                    "action": "delete",
                    "object_type": object_type,
                    "name": name,
                    "fields": _fields(before, None, object_type),
                    "notes": _notes("delete", object_type, before, None),
                }
            )
    return [change for a, t in ORDER for change in out[f"{a}:{t}"]]


def _hash(base_revision: int, changes: list[dict]) -> str:
    text = json.dumps(
        {"base_revision": base_revision, "changes": changes},
        sort_keys=True,
        separators=(",", ":"),
        default=str,
    )
    return hashlib.sha256(text.encode()).hexdigest()


def make_plan(doc, *, traffic: bool = True) -> dict:
    """What applying `doc` would change, on the revision it was made on. Nothing is saved.
    A changed subscription filter's change carries `traffic`: how many recent events the old
    and the new filter match (broker/configcode/traffic.py), outside the hash, which covers
    only what the apply will do."""
    check_document(doc)
    base = revisions.head()
    current = document.export_document()
    changes = changes_between(current, doc)
    plan = {"base_revision": base, "hash": _hash(base, changes), "changes": changes}
    if traffic:
        _add_traffic(changes, document.by_name(current))
    return plan


def _add_traffic(changes: list[dict], current: dict) -> None:
    filtered = [
        c
        for c in changes
        if c["object_type"] == SUBSCRIPTION and c["action"] == "update" and "filter" in c["fields"]
    ]
    if not filtered:
        return
    tenant_id = current_tenant().pk
    routes = list(Subscription.objects.values_list("event_type", "consumer_id"))
    for change in filtered:
        before = current[(SUBSCRIPTION, change.get("previous_name", change["name"]))]
        event_type = change["fields"].get("event_type", [None, before["event_type"]])[1]
        old, new = change["fields"]["filter"]
        # The logs that can hold events of the type: consumers of a subscription whose type
        # pattern overlaps it (not every consumer's: 500 logs at the dedicated tier).
        consumer_ids = sorted(
            {
                str(consumer)
                for pattern, consumer in routes
                if patterns.event_type_matches(pattern, event_type)
                or patterns.event_type_matches(event_type, pattern)
            }
        )
        change["traffic"] = traffic_check.filter_check(
            tenant_id, consumer_ids, event_type=event_type, old=old, new=new
        )


@transaction.atomic
def apply(doc, *, plan: str, actor, summary: str = "apply") -> dict:
    """Makes the plan `plan` (its hash) of `doc`: 409 when the configuration changed since,
    400 with the object's path when a service refuses a change (nothing is kept then)."""
    check_document(doc)
    with revisions.scope(actor=actor, summary=summary):
        current = make_plan(doc, traffic=False)
        if current["hash"] != plan:
            raise conflict(
                "The configuration changed since this plan was made "
                f"(now at revision {current['base_revision']}): plan again."
            )
        secrets = []
        index = {
            (object_type, obj["name"]): (section, i)
            for section, object_type in SECTIONS.items()
            for i, obj in enumerate(doc.get(section, []))
        }
        wanted = document.by_name(doc)
        for change in current["changes"]:
            where = index.get((change["object_type"], change["name"]))
            label = (
                f"{where[0]}[{where[1]}]"
                if where
                else f"{SECTION_OF[change['object_type']]}.{change['name']}"
            )
            raw = wanted.get((change["object_type"], change["name"]), {})
            try:
                secret = _make(change, raw, actor)
            except ApplicationError as exc:
                raise ApplicationError(
                    exc.message,
                    code=exc.code,
                    status_code=exc.status_code,
                    fields={
                        (label if k == "non_field_errors" else f"{label}.{k}"): v
                        for k, v in (exc.fields or {"non_field_errors": [exc.message]}).items()
                    },
                )
            if secret:
                secrets.append(
                    {"object_type": change["object_type"], "name": change["name"], **secret}
                )
        made = revisions.current_revision()
    return {
        "revision": made.number if made else revisions.head(),
        "changes": len(current["changes"]),
        "secrets": secrets,
    }


def _get(object_type: str, name: str):
    return MODELS[object_type].objects.get(name=name)


def _values(object_type: str, raw: dict, names: list[str]) -> dict:
    full = {**DEFAULTS[object_type], **raw}
    out = {}
    for name in names:
        value = full[name]
        if object_type == SUBSCRIPTION and name == "consumer":
            value = _get(CONSUMER, value)
        elif object_type == SUBSCRIPTION and name == "producer":
            value = _get(PRODUCER, value) if value else None
        out[name] = value
    return out


def _make(change: dict, raw: dict, actor) -> dict | None:
    """One change through its service; the secret it made, if any."""
    object_type, action = change["object_type"], change["action"]
    if action == "delete":
        obj = _get(object_type, change["name"])
        {
            PRODUCER: lambda: services.producer_delete(actor=actor, producer=obj),
            CONSUMER: lambda: services.consumer_delete(actor=actor, consumer=obj),
            SUBSCRIPTION: lambda: services.subscription_delete(actor=actor, subscription=obj),
            EVENT_TYPE: lambda: services.event_type_delete(actor=actor, event_type=obj),
        }[object_type]()
        return None
    skip = {"signing_secret", "auth_secret"}
    if action == "create":
        values = _values(object_type, raw, [f for f in FIELDS[object_type] if f not in skip])
        if object_type == PRODUCER:
            _, key = services.producer_create(actor=actor, **values)
            return {"field": "api_key", "value": key} if key else None
        if object_type == CONSUMER:
            secret = raw.get("auth_secret")
            values["retry_policy"] = values["retry_policy"] or None
            _, signing = services.consumer_create(
                actor=actor, auth_secret=secret if isinstance(secret, str) else None, **values
            )
            return {"field": "signing_secret", "value": signing} if signing else None
        if object_type == SUBSCRIPTION:
            services.subscription_create(actor=actor, **values)
            return None
        services.event_type_create(actor=actor, **values)
        return None
    obj = _get(object_type, change.get("previous_name", change["name"]))
    values = _values(object_type, raw, [f for f in change["fields"] if f not in skip])
    if object_type == PRODUCER:
        services.producer_update(actor=actor, producer=obj, **values)
    elif object_type == CONSUMER:
        secret = raw.get("auth_secret")
        services.consumer_update(
            actor=actor,
            consumer=obj,
            auth_secret=secret if isinstance(secret, str) else None,
            **values,
        )
    elif object_type == SUBSCRIPTION:
        services.subscription_update(actor=actor, subscription=obj, **values)
    else:
        services.event_type_update(actor=actor, event_type=obj, **values)
    return None


def rollback(*, revision: int, dry_run: bool, actor, plan: str | None = None) -> dict:
    """The plan back to revision `revision` (dry run), or its apply (a new revision)."""
    head = revisions.head()
    if not 1 <= revision <= head:
        raise ApplicationError(
            "Invalid input.", fields={"revision": [f"A revision from 1 to {head}."]}
        )
    target = revisions.document_at(revision)
    made = make_plan(target, traffic=dry_run)
    if dry_run:
        return made
    if plan is not None and plan != made["hash"]:
        raise conflict(
            f"The configuration changed since this plan was made (now at revision "
            f"{made['base_revision']}): plan again."
        )
    return apply(target, plan=made["hash"], actor=actor, summary=f"rollback to {revision}")


def diff_revisions(start: int, end: int) -> dict:
    """Objects added, removed and changed (each changed field's before and after) from
    revision `start` to `end`; filters and schemas compare as JSON values, not text."""
    changes = changes_between(
        revisions.document_at(start), revisions.document_at(end), renames=False
    )
    out: dict[str, list] = {"added": [], "removed": [], "changed": []}
    key = {"create": "added", "delete": "removed", "update": "changed"}
    for change in changes:
        item = {"object_type": change["object_type"], "name": change["name"]}
        if change["action"] == "update":
            item["fields"] = change["fields"]
        out[key[change["action"]]].append(item)
    return out
