"""Which subscriptions an event goes to, and sending one delivery message per subscription.

Routes are the tenant's ROUTE items (`config.routes`, cached with the other contract items);
a route matches when it is enabled, its event type pattern matches (exact, `prefix.*`, `*`),
its producer restriction (if any) is the sender, its consumer is live and enabled, and its
payload filter matches the event as the consumer will receive it (`patterns.filter_matches`,
the function the portal's test-filter explains). Messages are built only by
`broker.functions.shared.messages`.

Queue: a silo tenant has one delivery queue; a pool tenant has k shuffle-shard queues, and one
is picked at random per SendMessageBatch call (10 messages): random spreads a tenant's load
over its k queues with no extra call, where "least backlogged" would cost a
GetQueueAttributes per queue (cached, it would only be stale). Per call rather than per
request, so a 100-event request's deliveries are drained by the pollers of several queues
instead of piling up in one.

Ordered subscriptions (`ordered` on the ROUTE item; docs/data-plane.md, "Ordering"): a
delivery whose event has a key (`ordering.key_of`) carries it and its group id, and goes to
the key's FIFO queue (`ordering.queue_for`: a hash, so always the same one) with
MessageGroupId = the group id and MessageDeduplicationId = delivery id + replay. Without a key,
or while the tenant has no FIFO queue yet (`ordered_queues` absent), it goes the unordered way
and says why (`unordered_reason`), which its delivery record shows.

A key's order must survive the retry of refused entries: a SendMessageBatch call carries at
most one message of a group (the next one of each group, in rounds), so when one is refused
none after it of its group has been sent; it is sent again with the rest of its group behind
it, in order, and if it is refused again, it and every later delivery of its group are not
sent (their events are answered 503, and the producer's retry sends them again in order).
"""

import json
import random
import threading
from collections import deque
from dataclasses import dataclass

from botocore.exceptions import BotoCoreError, ClientError

from broker.functions import aws, config
from broker.functions.shared import messages, ordering, patterns

SQS_BATCH = 10
SQS_BATCH_BYTES = 1_000_000  # SendMessageBatch takes at most 1 MiB in all

# Why a delivery of an ordered subscription went unordered (its `unordered_reason`).
UNORDERED_NO_KEY = "no_ordering_key"  # the event has no key at the route's path
UNORDERED_KEY_TOO_LONG = "ordering_key_too_long"  # a key at the path of over 128 characters
UNORDERED_NO_QUEUE = "no_ordered_queue"  # the tenant's FIFO queues are not provisioned yet

_filters: dict[tuple, dict] = {}
_lock = threading.Lock()


class NoQueue(Exception):
    """The tenant item names no delivery queue (provisioning not finished)."""


@dataclass
class Outgoing:
    """One delivery message and the index of the event it belongs to."""

    event_index: int
    message: messages.Message


def _filter(tenant_id: str, route: dict) -> dict:
    key = (str(tenant_id), route.get("subscription_id"), route.get("version"))
    with _lock:
        found = _filters.get(key)
    if found is None:
        found = json.loads(route.get("filter_json") or "{}")
        with _lock:
            if len(_filters) > 50_000:
                _filters.clear()
            _filters[key] = found
    return found


def matching_routes(tenant_id: str, producer_id: str, event: dict) -> list[dict]:
    """The routes of the tenant that take this event (the event as consumers receive it)."""
    out = []
    for route in config.routes(tenant_id):
        if not route.get("enabled", True):
            continue
        if not patterns.event_type_matches(route.get("event_type", ""), event["type"]):
            continue
        if route.get("producer_id") and route["producer_id"] != str(producer_id):
            continue
        consumer = config.consumer(tenant_id, route["consumer_id"])
        if consumer is None or not consumer.get("enabled", False):
            continue
        if not patterns.filter_matches(_filter(tenant_id, route), event):
            continue
        out.append(route)
    return out


def deliveries(
    *,
    tenant_id: str,
    producer_id: str,
    event: dict,
    routes: list[dict],
    event_index: int,
    tenant: dict | None = None,
    ordering_key: str | None = None,
) -> list[Outgoing]:
    """One delivery message per route (attempt 1, replay 0). The delivery id is derived from
    tenant, event id and subscription: a retry of the same event gets the same ids (random
    when there is no subscription: the portal's test event to a consumer). A route that is
    `ordered` gets its key and group id (module docstring); `ordering_key` is the envelope's."""
    keyed = event if ordering_key is None else {**event, "ordering_key": ordering_key}
    out = []
    for route in routes:
        delivery = messages.Delivery(
            delivery_id=messages.delivery_id_for(tenant_id, event["id"], route["subscription_id"])
            if route.get("subscription_id")
            else messages.new_delivery_id(),  # a portal test event to a consumer
            tenant_id=str(tenant_id),
            consumer_id=route["consumer_id"],
            subscription_id=route.get("subscription_id"),
            producer_id=str(producer_id),
            event_id=event["id"],
            event_type=event["type"],
        )
        if ordering.is_ordered(route) and route.get("subscription_id"):
            _order(delivery, route, keyed, tenant or {})
        out.append(Outgoing(event_index, messages.delivery_message(delivery, event)))
    return out


def _order(delivery: messages.Delivery, route: dict, event: dict, tenant: dict) -> None:
    key = ordering.key_of(route, event)
    if key is None:
        delivery.unordered_reason = UNORDERED_NO_KEY
    elif len(key) > ordering.MAX_KEY_CHARS:
        delivery.unordered_reason = UNORDERED_KEY_TOO_LONG
    elif not tenant.get("ordered_queues"):
        delivery.unordered_reason = UNORDERED_NO_QUEUE
    else:
        delivery.ordering_key = key
        delivery.group_id = ordering.group_id(delivery.tenant_id, delivery.subscription_id, key)


def choose_queue(tenant: dict) -> str:
    queues = tenant.get("delivery_queues") or []
    if not queues:
        raise NoQueue(f"tenant {tenant.get('tenant_id')} has no delivery queue")
    if tenant.get("deployment_model") == "silo" or len(queues) == 1:
        return queues[0]
    return random.choice(queues)  # noqa: S311 (load spreading, not security)


def _chunks(entries: list[dict]):
    chunk, size = [], 0
    for entry in entries:
        length = len(entry["MessageBody"].encode()) + 200  # attributes, roughly
        if chunk and (len(chunk) == SQS_BATCH or size + length > SQS_BATCH_BYTES):
            yield chunk
            chunk, size = [], 0
        chunk.append(entry)
        size += length
    if chunk:
        yield chunk


def _send_once(tenant: dict, entries: list[dict]) -> list[dict]:
    """Sends entries (SendMessageBatch, 10 a call, each call to a queue `choose_queue` picks);
    returns the entries SQS did not take."""
    client = aws.sqs()
    failed = []
    for chunk in _chunks(entries):
        try:
            out = client.send_message_batch(
                QueueUrl=choose_queue(tenant),
                Entries=chunk,
            )
        except (BotoCoreError, ClientError):
            failed.extend(chunk)
            continue
        refused = {f["Id"] for f in out.get("Failed", [])}
        failed.extend(e for e in chunk if e["Id"] in refused)
    return failed


def send(tenant: dict, outgoing: list[Outgoing]) -> set[int]:
    """Sends every message to the tenant's delivery queues (an ordered one to its key's FIFO
    queue); the failed ones are sent once more. Returns the indexes of the events that still
    have an unsent delivery (the caller answers 503 for them). Raises NoQueue when the tenant
    has no queue for them."""
    entries, ordered, oversized = [], [], []
    for i, out in enumerate(outgoing):
        body = out.message.body()
        entry = {"Id": str(i), "MessageBody": body, "MessageAttributes": out.message.attributes()}
        # Measured in bytes, as SQS counts (moto counts nothing). The ingress's size check
        # keeps every body within the limit; should one pass it anyway, SQS would refuse it:
        # never sent, its event answered 503 like any refusal.
        too_large = len(body.encode()) > messages.MAX_BODY_BYTES
        if too_large:
            oversized.append(entry)
        elif out.message.delivery.group_id:
            ordered.append((entry, out.message.delivery))
        else:
            entries.append(entry)
    failed = []
    if entries:
        choose_queue(tenant)  # NoQueue before anything is sent
        failed = _send_once(tenant, entries)
        if failed:
            failed = _send_once(tenant, failed)
    groups_out = {outgoing[int(e["Id"])].message.delivery.group_id for e in oversized} - {None}
    failed += _send_ordered(tenant, ordered, refused_groups=groups_out)
    return {outgoing[int(e["Id"])].event_index for e in failed + oversized}


def _send_ordered(
    tenant: dict, ordered: list[tuple[dict, messages.Delivery]], *, refused_groups: set
) -> list[dict]:
    """Sends ordered entries to their keys' FIFO queues in rounds (at most one message of a
    group per call), a refused one twice; returns the entries not sent: a refused one and every
    later one of its group (none of which was sent). `refused_groups`: groups with an entry
    refused before any call (too large): none of theirs is sent."""
    pending: dict[str, deque] = {}
    queue_of: dict[str, str] = {}
    for entry, delivery in ordered:
        group = delivery.group_id
        pending.setdefault(group, deque()).append(
            {
                **entry,
                "MessageGroupId": group,
                "MessageDeduplicationId": ordering.dedup_id(delivery.delivery_id, delivery.replay),
            }
        )
        queue_of[group] = ordering.queue_for(tenant, group)
    client = aws.sqs()
    for _ in range(2):  # the first pass, then once more for what was refused
        blocked = set(refused_groups)
        while True:
            heads = [q[0] for g, q in pending.items() if q and g not in blocked]
            if not heads:
                break
            by_queue: dict[str, list[dict]] = {}
            for entry in heads:
                by_queue.setdefault(queue_of[entry["MessageGroupId"]], []).append(entry)
            for url, round_entries in by_queue.items():
                for chunk in _chunks(round_entries):
                    try:
                        out = client.send_message_batch(QueueUrl=url, Entries=chunk)
                        refused = {f["Id"] for f in out.get("Failed", [])}
                    except (BotoCoreError, ClientError):
                        refused = {e["Id"] for e in chunk}
                    for entry in chunk:
                        group = entry["MessageGroupId"]
                        if entry["Id"] in refused:
                            blocked.add(group)
                        else:
                            pending[group].popleft()
    return [
        {k: v for k, v in e.items() if k not in ("MessageGroupId", "MessageDeduplicationId")}
        for q in pending.values()
        for e in q
    ]
