"""Ordered delivery per key (docs/data-plane.md, "Ordering"): the names SQS FIFO needs.

An ordered subscription's deliveries go to a FIFO delivery queue of the tenant (the TENANT
item's `ordered_queues`) with one message group per (tenant, subscription, key): SQS hands out
a group's messages one at a time, in the order they were sent, and other groups meanwhile.

- The group id is a hash: MessageGroupId takes at most 128 characters of
  ``[A-Za-z0-9!"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~]`` and a key is any string of up to 128.
- The deduplication id is delivery id + replay number: the delivery id alone would make SQS
  drop a replay sent within its 5-minute deduplication window as a duplicate.
- A key always maps to the same queue of the tenant (a hash of its group, not the pool's
  random shard per call), so its messages stay in one group of one queue.
"""

import hashlib
import json
import re

# SQS's rules for MessageGroupId and MessageDeduplicationId (the tests hold every id to them:
# moto checks neither).
MAX_ID_CHARS = 128
ID_CHARS = re.compile(r"""^[A-Za-z0-9!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~]{1,128}$""")
# The envelope's `ordering_key` (ingress) and a key read at `ordering_key_path`.
MAX_KEY_CHARS = 128

HOLD, SKIP = "hold", "skip"


def group_id(tenant_id, subscription_id, key: str) -> str:
    """The MessageGroupId of a key: 64 hex characters."""
    raw = "\x1f".join((str(tenant_id), str(subscription_id), key))
    return hashlib.sha256(raw.encode()).hexdigest()


def dedup_id(delivery_id: str, replay: int) -> str:
    """The MessageDeduplicationId of a delivery's send in one life (first send or a replay)."""
    return f"{delivery_id}-{int(replay)}"


def is_valid_id(value: str) -> bool:
    """True when `value` is a MessageGroupId / MessageDeduplicationId SQS accepts."""
    return isinstance(value, str) and bool(ID_CHARS.match(value))


def is_ordered(route: dict) -> bool:
    return bool(route.get("ordered"))


def on_head_failure(route: dict) -> str:
    """`hold` or `skip` (absent or unknown = `skip`)."""
    return HOLD if route.get("on_head_failure") == HOLD else SKIP


def _scalar(value) -> str | None:
    if value is None or isinstance(value, (dict, list)):
        return None
    if isinstance(value, str):
        return value
    # Numbers and booleans as JSON (`true`, `42`, `1.5`): a Decimal from DynamoDB too.
    try:
        return json.dumps(value)
    except TypeError:
        return str(value)


def key_of(route: dict, event: dict) -> str | None:
    """The ordering key of `event` (the event as the consumer receives it, plus the envelope's
    `ordering_key`) for `route`: the value at its dotted `ordering_key_path`, or the envelope's
    `ordering_key` when the path is empty. Scalars become strings (JSON for numbers and
    booleans); None when missing, null, an object or an array."""
    path = route.get("ordering_key_path") or ""
    if not path:
        return _scalar(event.get("ordering_key"))
    value = event
    for part in path.split("."):
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return None
    return _scalar(value)


def queue_for(tenant_item: dict, group: str) -> str:
    """The FIFO queue of a group among the tenant's `ordered_queues` (a fixed hash)."""
    queues = list(tenant_item.get("ordered_queues") or [])
    if not queues:
        raise LookupError("the tenant has no ordered queue")
    return queues[int(group[:8], 16) % len(queues)]


def is_fifo(queue: str) -> bool:
    """A queue's URL, ARN or name: FIFO when it ends in `.fifo` (SQS's rule for their names)."""
    return queue.endswith(".fifo")
