"""Held keys of ordered subscriptions, from the portal and the API: list them, retry a key's
head (the held events follow in order) or skip it (dead-lettered, the rest released).

The held events live in the data-plane table (docs/data-plane.md, "Holding a key"); the data
plane's `broker.functions.shared.held` reads and releases them. Here: the tenant's scope (a
subscription of the active schema only), the errors the API answers, and the audit row of
every release, written in the transaction that makes it (a release that fails leaves none).
"""

from django.db import transaction

from broker.audit import audit_record
from broker.functions.shared import held
from broker.models import Subscription
from core.audit_actions import AuditAction
from core.errors import ApplicationError


def _not_held(key: str) -> ApplicationError:
    return ApplicationError(
        f"The key {key!r} is not held (it was never held, or it was released).",
        code="not_held",
        status_code=404,
    )


def held_keys_list(*, tenant, subscription: Subscription) -> list[dict]:
    """`[{"key", "held", "oldest", "head": {"delivery_id", "event_id", "last_error"}}]`,
    oldest first."""
    return held.list_keys(str(tenant.pk), str(subscription.pk))


def _release(*, tenant, actor, subscription: Subscription, key: str, action: AuditAction, how):
    with transaction.atomic():
        audit_record(
            actor=actor,
            action=action,
            object_type="subscription",
            object_id=subscription.pk,
            after={"key": key},
        )
        try:
            released = how(str(tenant.pk), str(subscription.pk), key)
        except held.NotHeld:
            raise _not_held(key) from None
    return released


def held_key_retry(*, tenant, actor, subscription: Subscription, key: str) -> dict:
    """The key's head goes again (a new attempt cycle), then its held events, in order."""
    released = _release(
        tenant=tenant,
        actor=actor,
        subscription=subscription,
        key=key,
        action=AuditAction.SUBSCRIPTION_HELD_KEY_RETRIED,
        how=held.retry,
    )
    return {"key": key, "released": released, "dead_lettered": 0}


def held_key_skip(*, tenant, actor, subscription: Subscription, key: str) -> dict:
    """The key's head is dead-lettered (replayable like any dead letter); the rest flow."""
    released = _release(
        tenant=tenant,
        actor=actor,
        subscription=subscription,
        key=key,
        action=AuditAction.SUBSCRIPTION_HELD_KEY_SKIPPED,
        how=held.skip,
    )
    return {"key": key, "released": released, "dead_lettered": 1}


def tenant_held_summary(tenant) -> dict:
    """`{"keys", "held", "subscriptions": [{"subscription_id", "name", "keys", "held"}]}`, the
    subscriptions holding the most events first (a deleted one's name is "": its held events
    stay listed until the relay syncs its deletion, which discards them): the tenant's held
    keys for the consumer and console pages. Call it in the tenant's schema."""
    summary = held.tenant_summary(str(tenant.pk))
    by_sub = summary["by_subscription"]
    names = {}
    if by_sub:
        found = Subscription.objects.filter(pk__in=list(by_sub)).values_list("pk", "name")
        names = {str(pk): name for pk, name in found}
    rows = [
        {"subscription_id": sub_id, "name": names.get(sub_id, ""), **counts}
        for sub_id, counts in sorted(by_sub.items(), key=lambda kv: -kv[1]["held"])
    ]
    return {"keys": summary["keys"], "held": summary["held"], "subscriptions": rows}
