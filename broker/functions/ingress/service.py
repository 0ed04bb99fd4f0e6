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


def _check_event(tenant: dict, producer: dict, raw, size: int) -> dict:
    tenant_id = tenant["tenant_id"]
    event = envelope.validate(raw, size=size, limit=envelope.max_event_bytes(tenant, producer))
    auth.check_type_allowed(producer, event["type"])
    envelope.check_schema(tenant_id, config.event_type(tenant_id, event["type"]), event["data"])
    return event


def ingest(tenant: dict, producer: dict, items: list[tuple[object, int]]) -> list[Result]:
    """Checks, limits, de-duplicates and routes `items` ((parsed envelope, its size in
    bytes), in order). Raises IngressError for rate and quota (nothing is routed then)."""
    tenant_id, producer_id = tenant["tenant_id"], producer["producer_id"]
    results: list[Result | None] = [None] * len(items)
    accepted: list[tuple[int, dict]] = []
    for index, (raw, size) in enumerate(items):
        try:
            accepted.append((index, _check_event(tenant, producer, raw, size)))
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
    claimed: dict[int, str] = {}
    for index, checked in accepted:
        event = messages.event_body(
            event_id=envelope.new_event_id(),
            type_=checked["type"],
            time=checked["time"],
            data=checked["data"],
            source_id=checked["source_id"],
        )
        routes = routing.matching_routes(tenant_id, producer_id, event)
        answer = {"id": event["id"], "deliveries": len(routes)}
        if checked["source_id"] is not None:
            first = limits.claim_event_id(tenant_id, producer_id, checked["source_id"], answer)
            if first is not None:
                results[index] = {**first, "duplicate": True}
                continue
            claimed[index] = checked["source_id"]
        results[index] = answer
        outgoing += routing.deliveries(
            tenant_id=tenant_id,
            producer_id=producer_id,
            event=event,
            routes=routes,
            event_index=index,
        )

    failed: set[int] = set()
    if outgoing:
        try:
            failed = routing.send(tenant, outgoing)
        except routing.NoQueue:
            failed = {out.event_index for out in outgoing}
    for index in failed:
        results[index] = IngressError(
            "unavailable", "The event could not be queued; send it again.", retry_after=1
        )
        if index in claimed:
            limits.release_event_id(tenant_id, producer_id, claimed[index])
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
