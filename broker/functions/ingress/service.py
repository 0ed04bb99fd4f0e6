"""The ingress path over plain data: checked envelopes in, answers out. No Lambda here.

`ingest` takes what one request (an HTTP call, or one SQS batch of a producer's source queue)
carries and answers one result per event: the answer `{"id", "deliveries"}` (plus
`"duplicate": true` for a repeated producer id) or an `IngressError`. Limits that apply to the
whole request (rate, quota) raise instead.
"""

from aws_lambda_powertools import Logger

from broker.functions import config
from broker.functions.shared import messages

from . import auth, envelope, limits, routing
from .errors import IngressError

logger = Logger(service="broker-ingress", child=True)

Result = dict | IngressError


def _check_event(tenant: dict, producer: dict, raw) -> dict:
    tenant_id = tenant["tenant_id"]
    event = envelope.validate(raw, limit=envelope.max_event_bytes(tenant, producer))
    auth.check_type_allowed(producer, event["type"])
    envelope.check_schema(tenant_id, config.event_type(tenant_id, event["type"]), event["data"])
    return event


def _route(tenant, producer, accepted, results, claimed, outgoing) -> list[tuple[int, int]]:
    """Claims producer ids and builds the deliveries of the accepted events (in `results`,
    `claimed`, `outgoing`); returns (index, index of the first) of ids repeated here."""
    tenant_id, producer_id = tenant["tenant_id"], producer["producer_id"]
    first_of: dict[str, int] = {}
    repeats: list[tuple[int, int]] = []
    for index, checked in accepted:
        source_id = checked["source_id"]
        event_id = envelope.new_event_id(tenant_id, producer_id, source_id)
        if source_id is not None:
            if source_id in first_of:
                repeats.append((index, first_of[source_id]))
                continue
            first_of[source_id] = index
            claim = limits.claim_event_id(tenant_id, producer_id, source_id, event_id)
            if claim.answer is not None:
                results[index] = {**claim.answer, "duplicate": True}
                continue
            if claim.in_progress:
                results[index] = IngressError(
                    "unavailable",
                    "An event with this id is being accepted right now; send it again.",
                    retry_after=1,
                )
                continue
            claimed[index] = source_id
            # A claim taken over keeps the crashed request's event id (the same one, unless
            # that request predates derived ids).
            event_id = claim.event_id or event_id
        event = messages.event_body(
            event_id=event_id,
            type_=checked["type"],
            time=checked["time"],
            data=checked["data"],
            source_id=source_id,
        )
        routes = routing.matching_routes(tenant_id, producer_id, event)
        results[index] = {"id": event["id"], "deliveries": len(routes)}
        outgoing += routing.deliveries(
            tenant_id=tenant_id,
            producer_id=producer_id,
            event=event,
            routes=routes,
            event_index=index,
            tenant=tenant,
            ordering_key=checked.get("ordering_key"),
        )
    return repeats


def _send(tenant: dict, outgoing: list[routing.Outgoing]) -> set[int]:
    if not outgoing:
        return set()
    try:
        return routing.send(tenant, outgoing)
    except routing.NoQueue:
        return {out.event_index for out in outgoing}


def _release(tenant_id: str, producer_id: str, source_ids) -> None:
    for source_id in source_ids:
        try:
            limits.release_event_id(tenant_id, producer_id, source_id)
        except Exception:
            # Left pending: a repeat gets 503 until the lease ends, then routes the event.
            logger.exception("Releasing a producer id claim failed")


def ingest(tenant: dict, producer: dict, items: list) -> list[Result]:
    """Checks, limits, de-duplicates and routes `items` (parsed envelopes, in order). Raises
    IngressError for rate and quota (nothing is routed then)."""
    tenant_id, producer_id = tenant["tenant_id"], producer["producer_id"]
    results: list[Result | None] = [None] * len(items)
    accepted: list[tuple[int, dict]] = []
    for index, raw in enumerate(items):
        try:
            accepted.append((index, _check_event(tenant, producer, raw)))
        except IngressError as exc:
            results[index] = exc
    rejected = len(items) - len(accepted)
    if accepted:
        try:
            limits.check_rate(tenant_id, producer, len(accepted))
            limits.check_quota(tenant_id, tenant, len(accepted))
        except IngressError:
            limits.record_stats(tenant_id, ingested=0, routed=0, rejected=len(items))
            raise

    outgoing: list[routing.Outgoing] = []
    claimed: dict[int, str] = {}  # index → producer id, claimed by this request
    try:
        repeats = _route(tenant, producer, accepted, results, claimed, outgoing)
        failed = _send(tenant, outgoing)
    except Exception:
        # DynamoDB or SQS failed mid-request (the request is answered 503): the producer's
        # retry must be routed, neither "duplicate" nor "in progress".
        _release(tenant_id, producer_id, claimed.values())
        raise
    for index in failed:
        results[index] = IngressError(
            "unavailable", "The event could not be queued; send it again.", retry_after=1
        )
    _release(tenant_id, producer_id, (claimed[i] for i in failed if i in claimed))
    limits.complete_event_ids(
        tenant_id,
        producer_id,
        [(source_id, results[i]) for i, source_id in claimed.items() if i not in failed],
    )
    for index, first in repeats:  # the same producer id twice in this request
        results[index] = (
            {**results[first], "duplicate": True}
            if isinstance(results[first], dict)
            else results[first]
        )
    routed = sum(1 for out in outgoing if out.event_index not in failed)
    fresh = sum(1 for r in results if isinstance(r, dict) and not r.get("duplicate"))
    limits.record_stats(tenant_id, ingested=fresh, routed=routed, rejected=rejected + len(failed))
    if rejected or failed:
        logger.info(
            "events refused",
            extra={
                "tenant_id": tenant_id,
                "producer_id": producer_id,
                "refused": {
                    code: sum(1 for r in results if isinstance(r, IngressError) and r.code == code)
                    for code in {r.code for r in results if isinstance(r, IngressError)}
                },
            },
        )
    return results
