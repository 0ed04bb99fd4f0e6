"""The HTTP side of the ingress: a request as plain data → a response as plain data.

Requests arrive as AWS Lambda function-URL / API Gateway HTTP API payload v2 events
(`requestContext.http.method`, `rawPath`, lower-case `headers`, `body`, `isBase64Encoded`);
the local runner builds the same dict. Endpoints and errors: docs/data-plane.md, "Ingress",
and docs/ingress-openapi.yaml.
"""

import base64
import binascii
import json

from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError

from . import auth, envelope, service
from .errors import IngressError

logger = Logger(service="broker-ingress", child=True)

SINGLE, BATCH = "/v1/events", "/v1/events/batch"


def response(status: int, body: dict, headers: dict | None = None) -> dict:
    return {
        "statusCode": status,
        "headers": {"content-type": "application/json", **(headers or {})},
        "body": json.dumps(body, separators=(",", ":")),
    }


def error_response(exc: IngressError) -> dict:
    headers = {"retry-after": str(exc.retry_after)} if exc.retry_after else None
    return response(exc.status, exc.body(), headers)


def _body(event: dict) -> bytes:
    body = event.get("body") or ""
    if event.get("isBase64Encoded"):
        try:
            return base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise IngressError("parse_error", "The body is not valid base64.") from None
    return body.encode() if isinstance(body, str) else body


def _result(item) -> dict:
    return item.body() if isinstance(item, IngressError) else item


def _batch_items(parsed) -> list[tuple[object, int]]:
    events = (
        parsed.get("events") if isinstance(parsed, dict) and set(parsed) == {"events"} else parsed
    )
    if not isinstance(events, list):
        raise IngressError(
            "invalid",
            'A batch is a JSON array of events (or {"events": [...]}).',
        )
    if not events:
        raise IngressError("invalid", "A batch holds at least one event.")
    if len(events) > envelope.MAX_BATCH_EVENTS:
        raise IngressError(
            "too_large", f"A batch holds at most {envelope.MAX_BATCH_EVENTS} events."
        )
    return [(raw, envelope.encoded_size(raw)) for raw in events]


def handle(event: dict) -> dict:
    """One HTTP request (payload v2) → {"statusCode", "headers", "body"}."""
    http = (event.get("requestContext") or {}).get("http") or {}
    method = (http.get("method") or "").upper()
    path = (event.get("rawPath") or http.get("path") or "").rstrip("/") or "/"
    headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
    try:
        if path not in (SINGLE, BATCH):
            raise IngressError(
                "not_found", "No such endpoint: POST /v1/events or /v1/events/batch."
            )
        if method != "POST":
            raise IngressError("method_not_allowed", f"{method or 'This method'} is not allowed.")
        key = auth.key_from_headers(headers)
        try:
            tenant, producer = auth.authenticate(key)
        except IngressError as exc:
            logger.info(
                "request refused", extra={"code": exc.code, "key_prefix": auth.key_prefix(key)}
            )
            raise
        body = _body(event)
        if len(body) > envelope.MAX_BODY_BYTES:
            raise IngressError(
                "too_large", f"A request body is at most {envelope.MAX_BODY_BYTES} bytes."
            )
        parsed = envelope.parse_json(body)
        if path == SINGLE:
            (result,) = service.ingest(tenant, producer, [(parsed, len(body))])
            if isinstance(result, IngressError):
                return error_response(result)
            return response(202, result)
        results = service.ingest(tenant, producer, _batch_items(parsed))
        return response(202, {"results": [_result(r) for r in results]})
    except IngressError as exc:
        return error_response(exc)
    except (BotoCoreError, ClientError) as exc:
        # DynamoDB or SQS failed (throttled, unreachable): the producer may send again.
        logger.warning("aws error", extra={"error": f"{type(exc).__name__}: {exc}"[:500]})
        return error_response(
            IngressError(
                "unavailable",
                "The ingress could not take the request; send it again.",
                retry_after=1,
            )
        )
