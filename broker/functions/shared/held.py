"""Held keys: the events of an ordered key whose head failed for good under `hold`
(docs/data-plane.md, "Holding a key").

They live in the data-plane table, in order, and their SQS messages are deleted: a held key
costs no polling and blocks no other key, and nothing is lost to the queue's 14-day retention
(messages left invisible in SQS would have to be re-hidden every 12 h, a receive each time).

Items (docs/dynamodb-contract.md), under `HELD#<tenant_id>#<subscription_id>`:

- `KEY#<group_id>`: the key's head and state: `key`, `group_id`, `held` (N, events held, the
  head included), `oldest` (ISO time the head failed), `head` {`delivery_id`, `event_id`,
  `last_error`, and the failure a skip dead-letters it with}, `queue_url` (the key's FIFO
  queue); `state` (`held` | `releasing`), `cursor` (N, the seq of the head), `next_seq` (N, the
  seq the next held message gets), `release` (N, how many messages were released, the marker's
  number).
- `MSG#<group_id>#<seq:012d>`: one held message body (delivery message JSON), seq 0 first.

and `HELDSUM#<tenant_id>` / `SUB#<subscription_id>`: `keys`, `held` (N), for the console.
None has a `ttl`: held events stay until someone retries or skips them, or until their
subscription is deleted or their tenant offboarded: the control plane's sync then discards
them (`discard`, `discard_tenant`).

Releasing drips: `retry` and `skip` send the head alone to the key's FIFO queue, marked with
the message attribute `held_release` = `<release>:<seq>`; the egress delivers a message whose
marker is the key's current one, then calls `advance`, which sends the next held message the
same way, and deletes the key's items after the last. Every other message of the key that
arrives meanwhile (newer events) is appended behind the held ones (`append`), so the key's
order holds whatever the timing, and a released head that fails for good again is held
again at its place (`hold`). One message of a key is in SQS at a time while it is released:
an ordered key is delivered one at a time anyway.
"""

import dataclasses
import time
from datetime import UTC, datetime

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

from broker.functions import aws, settings
from broker.functions.shared import messages, ordering

HELD, RELEASING = "held", "releasing"
MARKER_ATTRIBUTE = "held_release"

_ser = TypeSerializer()
_de = TypeDeserializer()


class NotHeld(LookupError):
    """The key is not held (never was, or already released)."""


def pk(tenant_id, subscription_id) -> str:
    return f"HELD#{tenant_id}#{subscription_id}"


def key_sk(group: str) -> str:
    return f"KEY#{group}"


def msg_sk(group: str, seq: int) -> str:
    return f"MSG#{group}#{int(seq):012d}"


def summary_key(tenant_id, subscription_id) -> tuple[str, str]:
    return f"HELDSUM#{tenant_id}", f"SUB#{subscription_id}"


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _table() -> str:
    return settings.get().dataplane_table


def _item(values: dict) -> dict:
    return {k: _ser.serialize(v) for k, v in values.items() if v is not None}


def _plain(raw: dict) -> dict:
    out = {k: _de.deserialize(v) for k, v in raw.items()}
    for name in ("held", "cursor", "next_seq", "release"):
        if name in out:
            out[name] = int(out[name])
    return out


def _summary_update(tenant_id, subscription_id, *, keys: int, held: int) -> dict:
    spk, ssk = summary_key(tenant_id, subscription_id)
    return {
        "Update": {
            "TableName": _table(),
            "Key": {"PK": {"S": spk}, "SK": {"S": ssk}},
            "UpdateExpression": "ADD #k :k, #h :h",
            "ExpressionAttributeNames": {"#k": "keys", "#h": "held"},
            "ExpressionAttributeValues": {":k": {"N": str(keys)}, ":h": {"N": str(held)}},
        }
    }


def _transact(items: list[dict]) -> bool:
    """True when written; False when a condition failed (someone else moved the key first)."""
    client = aws.dynamodb()
    try:
        client.transact_write_items(TransactItems=items)
    except client.exceptions.TransactionCanceledException:
        return False
    return True


def get(tenant_id, subscription_id, group: str) -> dict | None:
    """The key's KEY item (a consistent read), None when the key is not held."""
    raw = aws.dynamodb().get_item(
        TableName=_table(),
        Key={"PK": {"S": pk(tenant_id, subscription_id)}, "SK": {"S": key_sk(group)}},
        ConsistentRead=True,
    )
    return _plain(raw["Item"]) if "Item" in raw else None


def marker(item: dict) -> str:
    """The `held_release` value of the message the key releases now."""
    return f"{item['release']}:{item['cursor']}"


# --- what the egress calls ------------------------------------------------------------------


def hold(
    message: messages.Message,
    *,
    key: str,
    group: str,
    queue_url: str,
    failure: messages.Failure,
) -> None:
    """Holds the key with `message` as its head, failed for good with `failure`. The key's later
    messages are then appended behind it (`append`). A released head failing again (the key is
    held already, its marker out) is held again where it is."""
    d = message.delivery
    head = {
        "delivery_id": d.delivery_id,
        "event_id": d.event_id,
        "last_error": (failure.last_error or "")[: messages.LAST_ERROR_MAX_CHARS],
        "failure": dataclasses.asdict(failure),
    }
    tenant_id, sub = d.tenant_id, d.subscription_id
    at = _now_iso()
    while True:
        current = get(tenant_id, sub, group)
        if current is not None:
            # Held again at its place (cursor): the released head failed for good once more.
            ok = _transact(
                [
                    {
                        "Update": {
                            "TableName": _table(),
                            "Key": {"PK": {"S": pk(tenant_id, sub)}, "SK": {"S": key_sk(group)}},
                            "UpdateExpression": "SET #s = :held, head = :head, oldest = :at",
                            "ConditionExpression": "#r = :r",
                            "ExpressionAttributeNames": {"#s": "state", "#r": "release"},
                            "ExpressionAttributeValues": {
                                ":held": {"S": HELD},
                                ":head": _ser.serialize(head),
                                ":at": {"S": at},
                                ":r": {"N": str(current["release"])},
                            },
                        }
                    }
                ]
            )
            if ok:
                return
            continue
        key_item = {
            "PK": pk(tenant_id, sub),
            "SK": key_sk(group),
            "key": key,
            "group_id": group,
            "held": 1,
            "oldest": at,
            "head": head,
            "queue_url": queue_url,
            "state": HELD,
            "cursor": 0,
            "next_seq": 1,
            "release": 0,
        }
        ok = _transact(
            [
                {
                    "Put": {
                        "TableName": _table(),
                        "Item": _item(key_item),
                        "ConditionExpression": "attribute_not_exists(PK)",
                    }
                },
                {
                    "Put": {
                        "TableName": _table(),
                        "Item": _item(
                            {
                                "PK": pk(tenant_id, sub),
                                "SK": msg_sk(group, 0),
                                "body": message.body(),
                            }
                        ),
                    }
                },
                _summary_update(tenant_id, sub, keys=1, held=1),
            ]
        )
        if ok:
            return


def append(message: messages.Message, *, group: str) -> bool:
    """Appends `message` behind the key's held messages; False when the key is not held (then
    deliver it as usual)."""
    d = message.delivery
    tenant_id, sub = d.tenant_id, d.subscription_id
    while True:
        current = get(tenant_id, sub, group)
        if current is None:
            return False
        seq = current["next_seq"]
        ok = _transact(
            [
                {
                    "Put": {
                        "TableName": _table(),
                        "Item": _item(
                            {
                                "PK": pk(tenant_id, sub),
                                "SK": msg_sk(group, seq),
                                "body": message.body(),
                            }
                        ),
                    }
                },
                {
                    "Update": {
                        "TableName": _table(),
                        "Key": {"PK": {"S": pk(tenant_id, sub)}, "SK": {"S": key_sk(group)}},
                        "UpdateExpression": "SET next_seq = :n1 ADD held :one",
                        "ConditionExpression": "next_seq = :n",
                        "ExpressionAttributeValues": {
                            ":n": {"N": str(seq)},
                            ":n1": {"N": str(seq + 1)},
                            ":one": {"N": "1"},
                        },
                    }
                },
                _summary_update(tenant_id, sub, keys=0, held=1),
            ]
        )
        if ok:
            return True


def admit(message: messages.Message, *, group: str, marker_: str | None) -> str:
    """What the egress does with a message of an ordered key: `deliver` (the key is not held,
    or this is the message it releases now), `held` (appended behind the held ones; delete it
    from SQS) or `stale` (a released message already dealt with: delete it)."""
    d = message.delivery
    while True:
        current = get(d.tenant_id, d.subscription_id, group)
        if current is None:
            return "stale" if marker_ else "deliver"
        if marker_ is not None:
            if marker_ == marker(current) and current["state"] == RELEASING:
                return "deliver"
            return "stale"
        if append(message, group=group):
            return "held"


def advance(tenant_id, subscription_id, group: str, marker_: str) -> None:
    """The released message `marker_` is done (delivered, or dead-lettered under `skip`):
    releases the next held one, or ends the hold after the last."""
    current = get(tenant_id, subscription_id, group)
    if current is None or marker(current) != marker_:
        return
    _next(current, tenant_id, subscription_id, group)


def _next(current: dict, tenant_id, sub, group: str) -> None:
    """Drops the head (at `cursor`) and releases the message behind it, or ends the hold."""
    while True:
        cursor, nxt, release = current["cursor"], current["next_seq"], current["release"]
        key = {"PK": {"S": pk(tenant_id, sub)}, "SK": {"S": key_sk(group)}}
        drop_head = {
            "Delete": {
                "TableName": _table(),
                "Key": {"PK": {"S": pk(tenant_id, sub)}, "SK": {"S": msg_sk(group, cursor)}},
            }
        }
        if cursor + 1 >= nxt:
            ok = _transact(
                [
                    drop_head,
                    {
                        "Delete": {
                            "TableName": _table(),
                            "Key": key,
                            "ConditionExpression": "next_seq = :n AND #r = :r",
                            "ExpressionAttributeNames": {"#r": "release"},
                            "ExpressionAttributeValues": {
                                ":n": {"N": str(nxt)},
                                ":r": {"N": str(release)},
                            },
                        }
                    },
                    _summary_update(tenant_id, sub, keys=-1, held=-1),
                ]
            )
        else:
            ok = _transact(
                [
                    drop_head,
                    {
                        "Update": {
                            "TableName": _table(),
                            "Key": key,
                            "UpdateExpression": (
                                "SET #c = :c1, #r = :r1, #s = :rel, head = :head ADD held :m"
                            ),
                            "ConditionExpression": "#r = :r",
                            "ExpressionAttributeNames": {
                                "#c": "cursor",
                                "#r": "release",
                                "#s": "state",
                            },
                            "ExpressionAttributeValues": {
                                ":c1": {"N": str(cursor + 1)},
                                ":r1": {"N": str(release + 1)},
                                ":r": {"N": str(release)},
                                ":rel": {"S": RELEASING},
                                ":head": _ser.serialize(
                                    _head_of(tenant_id, sub, group, cursor + 1)
                                ),
                                ":m": {"N": "-1"},
                            },
                        }
                    },
                    _summary_update(tenant_id, sub, keys=0, held=-1),
                ]
            )
            if ok:
                current = {**current, "cursor": cursor + 1, "release": release + 1}
                _send_released(current, tenant_id, sub, group)
                return
        if ok:
            return
        current = get(tenant_id, sub, group)
        if current is None or current["release"] != release:
            return  # someone else moved it on


def _body(tenant_id, sub, group: str, seq: int) -> messages.Message:
    raw = aws.dynamodb().get_item(
        TableName=_table(),
        Key={"PK": {"S": pk(tenant_id, sub)}, "SK": {"S": msg_sk(group, seq)}},
        ConsistentRead=True,
    )
    return messages.parse(raw["Item"]["body"]["S"])


def _head_of(tenant_id, sub, group: str, seq: int) -> dict:
    d = _body(tenant_id, sub, group, seq).delivery
    return {"delivery_id": d.delivery_id, "event_id": d.event_id, "last_error": ""}


def _send_released(current: dict, tenant_id, sub, group: str, *, new_life: bool = False) -> None:
    message = _body(tenant_id, sub, group, current["cursor"])
    d = message.delivery
    if new_life:
        # A retried head starts a new life, like a replay: replay + 1, attempt 1 (egress
        # idempotency and the attempt count are keyed on (delivery id, replay, attempt)).
        d = dataclasses.replace(
            d, replay=d.replay + 1, attempt=1, first_attempt_at=None, not_before=None
        )
        message = messages.delivery_message(d, message.event)
    aws.sqs().send_message(
        QueueUrl=current["queue_url"],
        MessageBody=message.body(),
        MessageAttributes={
            **message.attributes(),
            MARKER_ATTRIBUTE: {"DataType": "String", "StringValue": marker(current)},
        },
        MessageGroupId=group,
        # Unique per release: the first send of this delivery may be within SQS's 5 minutes.
        MessageDeduplicationId=f"{ordering.dedup_id(d.delivery_id, d.replay)}-h{current['release']}",
    )


def _start_release(current: dict, tenant_id, sub, group: str) -> dict | None:
    """Marks the key releasing with a new marker; the updated item, None when it moved."""
    release = current["release"]
    ok = _transact(
        [
            {
                "Update": {
                    "TableName": _table(),
                    "Key": {"PK": {"S": pk(tenant_id, sub)}, "SK": {"S": key_sk(group)}},
                    "UpdateExpression": "SET #s = :rel, #r = :r1",
                    "ConditionExpression": "#r = :r",
                    "ExpressionAttributeNames": {"#s": "state", "#r": "release"},
                    "ExpressionAttributeValues": {
                        ":rel": {"S": RELEASING},
                        ":r": {"N": str(release)},
                        ":r1": {"N": str(release + 1)},
                    },
                }
            }
        ]
    )
    return {**current, "state": RELEASING, "release": release + 1} if ok else None


# --- what the portal calls (API, pages) -----------------------------------------------------


def list_keys(tenant_id, subscription_id) -> list[dict]:
    """The subscription's held keys, oldest first."""
    client = aws.dynamodb()
    out, kwargs = [], {}
    while True:
        page = client.query(
            TableName=_table(),
            KeyConditionExpression="PK = :pk AND begins_with(SK, :k)",
            ExpressionAttributeValues={
                ":pk": {"S": pk(tenant_id, subscription_id)},
                ":k": {"S": "KEY#"},
            },
            ConsistentRead=True,
            **kwargs,
        )
        for raw in page.get("Items", []):
            item = _plain(raw)
            head = item.get("head") or {}
            out.append(
                {
                    "key": item["key"],
                    "held": item["held"],
                    "oldest": item["oldest"],
                    "head": {
                        "delivery_id": head.get("delivery_id", ""),
                        "event_id": head.get("event_id", ""),
                        "last_error": head.get("last_error", ""),
                    },
                }
            )
        if "LastEvaluatedKey" not in page:
            break
        kwargs = {"ExclusiveStartKey": page["LastEvaluatedKey"]}
    return sorted(out, key=lambda k: (k["oldest"], k["key"]))


def _held_item(tenant_id, subscription_id, key: str) -> tuple[str, dict]:
    group = ordering.group_id(tenant_id, subscription_id, key)
    current = get(tenant_id, subscription_id, group)
    if current is None:
        raise NotHeld(key)
    return group, current


def retry(tenant_id, subscription_id, key: str) -> int:
    """Sends the head again (a new attempt cycle), then the rest in order, to the key's FIFO
    queue; returns how many are released. Raises NotHeld."""
    while True:
        group, current = _held_item(tenant_id, subscription_id, key)
        started = _start_release(current, tenant_id, subscription_id, group)
        if started is not None:
            _send_released(started, tenant_id, subscription_id, group, new_life=True)
            return current["held"]


def skip(tenant_id, subscription_id, key: str) -> int:
    """Dead-letters the head (central FIFO DLQ) and releases the rest in order; returns how
    many are released. Raises NotHeld."""
    group, current = _held_item(tenant_id, subscription_id, key)
    message = _body(tenant_id, subscription_id, group, current["cursor"])
    failure = dict((current.get("head") or {}).get("failure") or {})
    now = _now_iso()
    letter = messages.dead_letter_message(
        dataclasses.replace(message.delivery, not_before=None),
        message.event,
        messages.Failure(
            attempts=int(failure.get("attempts") or message.delivery.attempt),
            last_status=int(failure["last_status"]) if failure.get("last_status") else None,
            last_error=failure.get("last_error") or current["head"].get("last_error", ""),
            error_kind=failure.get("error_kind") or messages.ERROR_HTTP,
            first_attempt_at=failure.get("first_attempt_at") or now,
            last_attempt_at=failure.get("last_attempt_at") or now,
        ),
    )
    send_dead_letter(letter, group=group)
    _next(current, tenant_id, subscription_id, group)
    return current["held"] - 1


def send_dead_letter(letter: messages.Message, *, group: str) -> None:
    """A dead letter of an ordered key to the central FIFO DLQ, in its key's group."""
    d = letter.delivery
    aws.sqs().send_message(
        QueueUrl=fifo_dlq_url(),
        MessageBody=letter.body(),
        MessageAttributes=letter.attributes(),
        MessageGroupId=group,
        MessageDeduplicationId=f"{ordering.dedup_id(d.delivery_id, d.replay)}-dead",
    )


_dlq_urls: dict[tuple, str] = {}


def fifo_dlq_url() -> str:
    s = settings.get()
    key = (s.central_fifo_dlq_name, s.endpoint_url, s.region)
    if key not in _dlq_urls:
        _dlq_urls[key] = aws.sqs().get_queue_url(QueueName=s.central_fifo_dlq_name)["QueueUrl"]
    return _dlq_urls[key]


# --- what the control plane's sync calls (a subscription deleted, a tenant offboarded) -----

BATCH_WRITE_LIMIT = 25  # BatchWriteItem takes at most 25 requests


def _delete_keys(client, keys: list[dict], *, max_rounds: int = 8) -> None:
    """Deletes the items of `keys` (raw {"PK", "SK"}), 25 per BatchWriteItem, re-sending what
    DynamoDB left unprocessed."""
    table = _table()
    for start in range(0, len(keys), BATCH_WRITE_LIMIT):
        requests = [{"DeleteRequest": {"Key": k}} for k in keys[start : start + BATCH_WRITE_LIMIT]]
        for attempt in range(max_rounds):
            out = client.batch_write_item(RequestItems={table: requests})
            requests = out.get("UnprocessedItems", {}).get(table, [])
            if not requests:
                break
            time.sleep(min(1.0, 0.05 * 2**attempt))
        else:
            raise RuntimeError(f"DynamoDB left {len(requests)} held items unprocessed")


def discard(tenant_id, subscription_id) -> int:
    """Deletes every held item of a deleted subscription: its held events go with it (the
    deletion is audited). The `HELD#` partition is read in pages (keys only) and each page
    deleted in BatchWriteItem calls; the summary row goes last, so a discard that stops halfway
    is finished by the next (the sync retries it), and a repeated one finds nothing. Returns how
    many held events (MSG items) it deleted."""
    client = aws.dynamodb()
    events, kwargs = 0, {}
    while True:
        page = client.query(
            TableName=_table(),
            KeyConditionExpression="PK = :pk",
            ExpressionAttributeValues={":pk": {"S": pk(tenant_id, subscription_id)}},
            ProjectionExpression="PK, SK",
            ConsistentRead=True,
            **kwargs,
        )
        keys = page.get("Items", [])
        events += sum(1 for k in keys if k["SK"]["S"].startswith("MSG#"))
        _delete_keys(client, keys)
        if "LastEvaluatedKey" not in page:
            break
        kwargs = {"ExclusiveStartKey": page["LastEvaluatedKey"]}
    spk, ssk = summary_key(tenant_id, subscription_id)
    client.delete_item(TableName=_table(), Key={"PK": {"S": spk}, "SK": {"S": ssk}})
    return events


def discard_tenant(tenant_id) -> int:
    """Deletes every held item of the tenant (offboarding): `discard` for each subscription its
    summary rows name (every subscription that ever held a key has one, written in the
    transaction of its first hold). Returns how many held events it deleted."""
    client = aws.dynamodb()
    spk, _ = summary_key(tenant_id, "")
    subscriptions, kwargs = [], {}
    while True:
        page = client.query(
            TableName=_table(),
            KeyConditionExpression="PK = :pk AND begins_with(SK, :s)",
            ExpressionAttributeValues={":pk": {"S": spk}, ":s": {"S": "SUB#"}},
            ProjectionExpression="SK",
            ConsistentRead=True,
            **kwargs,
        )
        subscriptions.extend(i["SK"]["S"][len("SUB#") :] for i in page.get("Items", []))
        if "LastEvaluatedKey" not in page:
            break
        kwargs = {"ExclusiveStartKey": page["LastEvaluatedKey"]}
    return sum(discard(tenant_id, sub) for sub in subscriptions)


def tenant_summary(tenant_id) -> dict:
    """`{"keys", "held", "by_subscription": {subscription_id: {"keys", "held"}}}`."""
    client = aws.dynamodb()
    spk, _ = summary_key(tenant_id, "")
    by_sub, kwargs = {}, {}
    while True:
        page = client.query(
            TableName=_table(),
            KeyConditionExpression="PK = :pk AND begins_with(SK, :s)",
            ExpressionAttributeValues={":pk": {"S": spk}, ":s": {"S": "SUB#"}},
            ConsistentRead=True,
            **kwargs,
        )
        for raw in page.get("Items", []):
            item = _plain(raw)
            keys, held = int(item.get("keys", 0)), int(item.get("held", 0))
            if keys > 0:
                by_sub[item["SK"][len("SUB#") :]] = {"keys": keys, "held": held}
        if "LastEvaluatedKey" not in page:
            break
        kwargs = {"ExclusiveStartKey": page["LastEvaluatedKey"]}
    return {
        "keys": sum(v["keys"] for v in by_sub.values()),
        "held": sum(v["held"] for v in by_sub.values()),
        "by_subscription": by_sub,
    }
