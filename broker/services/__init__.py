"""Every change to a tenant's broker configuration goes through these services.

Each one, in one transaction: validates, saves the object with its version bumped, writes an
audit event and an outbox row (the relay mirrors the object into DynamoDB after commit).
"""

from .consumers import (
    consumer_auto_disable,
    consumer_create,
    consumer_delete,
    consumer_rotate_signing_secret,
    consumer_update,
)
from .event_types import event_type_create, event_type_delete, event_type_update
from .producers import (
    api_keys_expire,
    producer_create,
    producer_delete,
    producer_revoke_key,
    producer_rotate_key,
    producer_update,
)
from .subscriptions import (
    subscription_create,
    subscription_delete,
    subscription_filter_test,
    subscription_update,
)

__all__ = [
    "api_keys_expire",
    "consumer_auto_disable",
    "consumer_create",
    "consumer_delete",
    "consumer_rotate_signing_secret",
    "consumer_update",
    "event_type_create",
    "event_type_delete",
    "event_type_update",
    "producer_create",
    "producer_delete",
    "producer_revoke_key",
    "producer_rotate_key",
    "producer_update",
    "subscription_create",
    "subscription_filter_test",
    "subscription_delete",
    "subscription_update",
]
