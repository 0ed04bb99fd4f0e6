"""The configuration document: what each object looks like in it, built from the live rows
(export) or from the revisions (the document at revision n).

Objects are keyed by name, in name order, with their fields in a fixed order, so that two
exports of the same configuration are byte-identical. No UUIDs, no secrets: a stored secret
shows as a reference, `{"ref": "stored"}`.
"""

from broker.sync.contract import CONSUMER, EVENT_TYPE, PRODUCER, SUBSCRIPTION

SECTIONS = {  # document key → object type, in the document's order
    "producers": PRODUCER,
    "consumers": CONSUMER,
    "subscriptions": SUBSCRIPTION,
    "event_types": EVENT_TYPE,
}
SECTION_OF = {object_type: section for section, object_type in SECTIONS.items()}
STORED = {"ref": "stored"}

PRODUCER_FIELDS = (
    "name",
    "kind",
    "enabled",
    "allowed_event_types",
    "ingest_rate_per_second",
    "ingest_burst",
    "source_queue_arn",
    "description",
)
CONSUMER_FIELDS = (
    "name",
    "kind",
    "url",
    "queue_arn",
    "enabled",
    "description",
    "auth_type",
    "auth_username",
    "auth_secret",
    "signing_secret",
    "timeout_ms",
    "delivery_concurrency",
    "retry_policy",
    "rate_limit_per_second",
)
SUBSCRIPTION_FIELDS = (
    "name",
    "consumer",
    "producer",
    "event_type",
    "filter",
    "enabled",
    "description",
    "ordered",
    "ordering_key_path",
    "on_head_failure",
)
EVENT_TYPE_FIELDS = ("name", "description", "schema")
FIELDS = {
    PRODUCER: PRODUCER_FIELDS,
    CONSUMER: CONSUMER_FIELDS,
    SUBSCRIPTION: SUBSCRIPTION_FIELDS,
    EVENT_TYPE: EVENT_TYPE_FIELDS,
}
# Fields no document sets: they say whether a secret exists.
SECRET_FIELDS = {CONSUMER: ("auth_secret", "signing_secret")}
# Fields added after revisions began: a revision stored before them (and the historical models
# of earlier migrations) lacks them; they read as these defaults.
LATER_FIELDS = {
    CONSUMER: {"rate_limit_per_second": None},
    SUBSCRIPTION: {"ordered": False, "ordering_key_path": "", "on_head_failure": "skip"},
}


def _later(object_type: str, obj, name: str):
    return getattr(obj, name, LATER_FIELDS[object_type][name])


def body(object_type: str, obj) -> dict:
    """An object's entry as a revision stores it (works on historical models too).
    A subscription keeps its consumer's and producer's ids: `resolve` names them."""
    if object_type == PRODUCER:
        return {name: getattr(obj, name) for name in PRODUCER_FIELDS}
    if object_type == CONSUMER:
        out = {}
        for name in CONSUMER_FIELDS:
            if name == "auth_secret":
                out[name] = STORED if obj.auth_secret_encrypted else None
            elif name == "signing_secret":
                out[name] = STORED if obj.signing_secret_encrypted else None
            elif name == "retry_policy":
                out[name] = obj.retry_policy or {}
            elif name in LATER_FIELDS[CONSUMER]:
                out[name] = _later(CONSUMER, obj, name)
            else:
                out[name] = getattr(obj, name)
        return out
    if object_type == SUBSCRIPTION:
        return {
            "name": obj.name,
            "consumer_id": str(obj.consumer_id),
            "producer_id": str(obj.producer_id) if obj.producer_id else None,
            "event_type": obj.event_type,
            "filter": obj.filter if obj.filter is not None else {},
            "enabled": obj.enabled,
            "description": obj.description,
            **{name: _later(SUBSCRIPTION, obj, name) for name in LATER_FIELDS[SUBSCRIPTION]},
        }
    return {name: getattr(obj, name) for name in EVENT_TYPE_FIELDS}


def assemble(entries: dict[tuple[str, str], dict]) -> dict:
    """The document from {(object_type, id): body}: subscriptions' ids named, sorted."""
    names = {
        (object_type, object_id): b["name"]
        for (object_type, object_id), b in entries.items()
        if object_type in (PRODUCER, CONSUMER)
    }
    doc: dict[str, list] = {section: [] for section in SECTIONS}
    for (object_type, _), b in entries.items():
        b = {**LATER_FIELDS.get(object_type, {}), **b}
        if object_type == SUBSCRIPTION:
            b = {
                "name": b["name"],
                "consumer": names.get((CONSUMER, b["consumer_id"])),
                "producer": names.get((PRODUCER, b["producer_id"])) if b["producer_id"] else None,
                **{k: b[k] for k in SUBSCRIPTION_FIELDS[3:]},
            }
        elif object_type == CONSUMER:
            b = {k: b[k] for k in CONSUMER_FIELDS}
        doc[SECTION_OF[object_type]].append(b)
    for section in doc.values():
        section.sort(key=lambda o: o["name"])
    return doc


def export_document() -> dict:
    """The active tenant's configuration as it is now."""
    from broker.models import Consumer, EventType, Producer, Subscription

    entries = {}
    for object_type, model in (
        (PRODUCER, Producer),
        (CONSUMER, Consumer),
        (SUBSCRIPTION, Subscription),
        (EVENT_TYPE, EventType),
    ):
        for obj in model.objects.order_by():
            entries[(object_type, str(obj.pk))] = body(object_type, obj)
    return assemble(entries)


def by_name(doc: dict) -> dict[tuple[str, str], dict]:
    """{(object_type, name): object} of a document."""
    return {
        (object_type, obj["name"]): obj
        for section, object_type in SECTIONS.items()
        for obj in doc.get(section, [])
    }
