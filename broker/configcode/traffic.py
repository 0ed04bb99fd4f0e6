"""A changed subscription filter, checked against real traffic: how many of the tenant's
recent events of the subscription's type the old filter matched and the new one would.

The sample is read from the delivery logs of every consumer subscribed to the type (by any
overlapping pattern), not only the changed subscription's: its own log holds only what its
old filter let through. What the sample leaves out is said
with the figures: events no subscription delivered are in no log, the logs keep attempts for
their TTL only, the newest SAMPLE_ATTEMPTS attempts per consumer are read, and an event too
large for its item (stored truncated) cannot be matched.
"""

import json
import logging

from botocore.exceptions import BotoCoreError, ClientError

from broker.deliveries import selectors
from broker.functions.shared import patterns, records

logger = logging.getLogger(__name__)

SAMPLE_ATTEMPTS = 200  # per consumer log, newest first
LEAVES_OUT = (
    "events no subscription delivered (they are in no delivery log), attempts older than the "
    f"log's retention, and all but the newest {SAMPLE_ATTEMPTS} attempts per consumer"
)


def sample(tenant_id, consumer_ids, event_type: str) -> tuple[list[dict], int]:
    """Distinct recent events whose type the pattern `event_type` matches, and how many of
    them could not be read (truncated)."""
    attempts = selectors.tenant_log(
        tenant_id, [str(c) for c in consumer_ids], limit=SAMPLE_ATTEMPTS
    )
    deliveries: dict[str, str] = {}
    for attempt in attempts:
        if patterns.event_type_matches(event_type, str(attempt.get("event_type", ""))):
            deliveries.setdefault(str(attempt.get("event_id")), attempt["delivery_id"])
    keys = [records.delivery_event_key(str(tenant_id), d) for d in deliveries.values()]
    items = selectors.batch_get(keys) if keys else {}
    events, unreadable = [], 0
    for key in keys:
        item = items.get(key)
        try:
            event = json.loads(item["event"]) if item and not item.get("truncated") else None
        except (TypeError, ValueError):
            event = None
        if isinstance(event, dict):
            events.append(event)
        else:
            unreadable += 1
    return events, unreadable


def filter_check(tenant_id, consumer_ids, *, event_type: str, old: dict, new: dict) -> dict:
    """{"sample", "old_filter_matches", "new_filter_matches", "unreadable", "leaves_out"}, or
    {"error"} when the data plane's table cannot be read (the plan is made all the same)."""
    try:
        events, unreadable = sample(tenant_id, consumer_ids, event_type)
    except (BotoCoreError, ClientError, selectors.UnreadKeys) as exc:
        logger.warning("filter check: the delivery logs could not be read: %s", exc)
        return {"error": "The delivery logs could not be read: no traffic figures."}
    return {
        "sample": len(events),
        "old_filter_matches": sum(patterns.filter_matches(old or {}, e) for e in events),
        "new_filter_matches": sum(patterns.filter_matches(new or {}, e) for e in events),
        "unreadable": unreadable,
        "leaves_out": LEAVES_OUT,
    }
