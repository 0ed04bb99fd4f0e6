"""The HTTP side of the ingress: a request as plain data → a response as plain data.

Requests arrive as AWS Lambda function-URL / API Gateway HTTP API payload v2 events
(`requestContext.http.method`, `rawPath`, lower-case `headers`, `body`, `isBase64Encoded`);
the local runner builds the same dict. Endpoints and errors: docs/data-plane.md, "Ingress",
and docs/ingress-openapi.yaml.
"""

import base64
import binascii
import json
import zlib

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


def _check_content_type(headers: dict) -> None:
    """415 unless the body is declared `application/json` (charset, if any, UTF-8: RFC 8259
    JSON is UTF-8 only). Text or a form posted by mistake is refused, not guessed at."""
    media, *params = (headers.get("content-type") or "").split(";")
    ok = media.strip().lower() == "application/json"
    for param in params:
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset" and value.strip().strip('"').lower() not in (
            "utf-8",
            "utf8",
        ):
            ok = False
    if not ok:
        raise IngressError(
            "unsupported_media_type",
            "The body must be sent as Content-Type: application/json (UTF-8).",
        )


def _decode(body: bytes, headers: dict) -> bytes:
    """The body without its Content-Encoding. gzip is decoded: it is the encoding HTTP
    clients send, a large batch shrinks several times, and zlib decodes it with a bound on the
    output (so a small body cannot expand into gigabytes). Anything else is 415."""
    encoding = (headers.get("content-encoding") or "").strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding not in ("gzip", "x-gzip"):
        raise IngressError(
            "unsupported_media_type",
            f"Content-Encoding {encoding[:40]!r} is not supported; send gzip or none.",
        )
    decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)  # gzip header and trailer
    try:
        out = decoder.decompress(body, envelope.MAX_BODY_BYTES + 1)
    except zlib.error:
        raise IngressError("parse_error", "The body is not valid gzip.") from None
    if len(out) > envelope.MAX_BODY_BYTES:
        raise IngressError(
            "too_large", f"A request body is at most {envelope.MAX_BODY_BYTES} bytes (decoded)."
        )
    if not decoder.eof or decoder.unused_data:
        raise IngressError("parse_error", "The body is not one complete gzip stream.")
    return out


def _result(item) -> dict:
    return item.body() if isinstance(item, IngressError) else item


def _batch_items(parsed) -> list:
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
    return events


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
        _check_content_type(headers)
        body = _body(event)
        if len(body) > envelope.MAX_BODY_BYTES:
            raise IngressError(
                "too_large", f"A request body is at most {envelope.MAX_BODY_BYTES} bytes."
            )
        parsed = envelope.parse_json(_decode(body, headers))
        if path == SINGLE:
            (result,) = service.ingest(tenant, producer, [parsed])
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
