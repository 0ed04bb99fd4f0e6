"""Revisions: every committed configuration change gives the tenant the next number.

A revision stores only the entries of the objects it changed (see ConfigRevisionEntry); the
document at revision n is rebuilt from each object's latest entry at or before n.

What "one change" is: the services' common skeleton calls `record` for each object it
writes. Writes made inside one open `scope` (an apply, a rollback) share its revision;
otherwise a revision lasts as long as the database block that was open when it was made (the
outermost service call: its transaction, or its savepoint inside a caller's transaction),
so that a service deleting a consumer and its subscriptions makes one revision, and two
service calls make two.
"""

import contextlib
import threading

from django.db import connection, transaction
from django.db.models import Max

from broker.sync.contract import CONSUMER, EVENT_TYPE, PRODUCER, SUBSCRIPTION
from core import locks
from core.audit import actor_fields

from . import document
from .models import ConfigRevision, ConfigRevisionEntry

TRACKED = (PRODUCER, CONSUMER, SUBSCRIPTION, EVENT_TYPE)
SUMMARY_ITEMS = 5
LOCK = "config_revision"

_state = threading.local()


class _Open:
    """The revision being written, and the database block it belongs to."""

    def __init__(self, *, prefix, actor, summary=""):
        self.prefix = prefix
        self.actor = actor
        self.summary = summary
        self.revision: ConfigRevision | None = None
        self.items: list[str] = []
        self.marker = lambda: None  # its presence in run_on_commit: the transaction is open
        transaction.on_commit(self.marker)

    def current(self) -> bool:
        ids = list(connection.savepoint_ids)
        if ids[: len(self.prefix)] != self.prefix:
            return False
        # Gone from the pending callbacks: committed, or rolled back (to a savepoint too).
        return any(entry[1] is self.marker for entry in connection.run_on_commit)


def _open() -> _Open | None:
    state = getattr(_state, "open", None)
    if state is not None and state.schema == connection.schema_name and state.current():
        return state
    return None


def lock() -> None:
    """Revisions are numbered in commit order: the lock is held until commit."""
    locks.xact_lock(LOCK, connection.schema_name)


def head() -> int:
    return ConfigRevision.objects.aggregate(n=Max("number"))["n"] or 0


@contextlib.contextmanager
def scope(*, actor, summary: str):
    """Every write inside is one revision (an apply, a rollback). Call inside a transaction."""
    assert connection.in_atomic_block
    lock()
    outer = getattr(_state, "open", None)
    state = _Open(prefix=list(connection.savepoint_ids), actor=actor, summary=summary)
    state.schema = connection.schema_name
    _state.open = state
    try:
        yield state
    finally:
        _state.open = outer


def record(*, actor, object_type: str, obj, deleted: bool) -> None:
    """The hook of broker.services._common.record_change: the object's entry in the revision
    of the change under way."""
    if object_type not in TRACKED:
        return
    state = _open()
    if state is None:
        lock()
        state = _Open(prefix=list(connection.savepoint_ids), actor=actor)
        state.schema = connection.schema_name
        _state.open = state
    if state.revision is None:
        state.revision = ConfigRevision.objects.create(
            number=head() + 1, **actor_fields(state.actor), summary=state.summary
        )
    ConfigRevisionEntry.objects.update_or_create(
        revision=state.revision,
        object_type=object_type,
        object_id=str(obj.pk),
        defaults={"body": None if deleted else document.body(object_type, obj)},
    )
    verb = "delete" if deleted else ("update" if obj.version > 1 else "create")
    item = f"{object_type}.{verb} {document.body(object_type, obj)['name']}"
    if item not in state.items:
        state.items.append(item)
    count = state.revision.entries.count()
    shown = ", ".join(state.items[:SUMMARY_ITEMS])
    if len(state.items) > SUMMARY_ITEMS:
        shown += f" and {len(state.items) - SUMMARY_ITEMS} more"
    summary = f"{state.summary}: {shown}" if state.summary else shown
    ConfigRevision.objects.filter(pk=state.revision.pk).update(
        objects_changed=count, summary=summary[:500]
    )
    state.revision.objects_changed, state.revision.summary = count, summary[:500]


def current_revision() -> ConfigRevision | None:
    """The revision the change under way has made so far (after an apply's writes)."""
    state = _open()
    return state.revision if state else None


def document_at(number: int) -> dict:
    """The configuration document as revision `number` left it (0: the empty one)."""
    rows = (
        ConfigRevisionEntry.objects.filter(revision__number__lte=number)
        .order_by("object_type", "object_id", "-revision__number")
        .distinct("object_type", "object_id")
        .values_list("object_type", "object_id", "body")
    )
    return document.assemble({(t, i): b for t, i, b in rows if b is not None})


def baseline(*, actor=None) -> None:
    """Revision 1 of a tenant that had configuration before revisions existed."""
    from broker.models import Consumer, EventType, Producer, Subscription

    if ConfigRevision.objects.exists():
        return
    models = (
        (PRODUCER, Producer),
        (CONSUMER, Consumer),
        (SUBSCRIPTION, Subscription),
        (EVENT_TYPE, EventType),
    )
    if not any(model.objects.exists() for _, model in models):
        return
    revision = ConfigRevision.objects.create(number=1, summary="baseline", **actor_fields(actor))
    entries = [
        ConfigRevisionEntry(
            revision=revision, object_type=t, object_id=str(o.pk), body=document.body(t, o)
        )
        for t, model in models
        for o in model.objects.all()
    ]
    ConfigRevisionEntry.objects.bulk_create(entries)
    ConfigRevision.objects.filter(pk=revision.pk).update(objects_changed=len(entries))
