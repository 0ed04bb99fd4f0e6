"""Lambda event shapes built the way AWS builds them, and the answers read back.

- `http_event`: a Lambda function URL (payload format 2.0) request event.
- `http_answer`: a handler's result → (status, headers, body bytes), with the function URL's
  rules for results that are not a `{"statusCode": ...}` object.
- `sqs_record` / `sqs_event`: the records an SQS event source mapping passes to a function.
"""

import base64
import json
import time
import uuid
from datetime import UTC, datetime
from urllib.parse import parse_qsl, urlsplit

_TEXT_TYPES = ("text/", "application/json", "application/x-www-form-urlencoded", "+json")


def http_event(
    *,
    method: str,
    target: str,
    headers: list[tuple[str, str]],
    body: bytes,
    source_ip: str,
    domain: str,
) -> dict:
    """A function URL event: header names lower-cased, repeated headers joined with commas,
    cookies apart, a binary body base64-encoded (a text body is passed as is)."""
    parts = urlsplit(target)
    merged: dict[str, str] = {}
    cookies: list[str] = []
    for name, value in headers:
        name = name.lower()
        if name == "cookie":
            cookies.extend(c.strip() for c in value.split(";") if c.strip())
            continue
        merged[name] = f"{merged[name]},{value}" if name in merged else value
    query: dict[str, str] = {}
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        query[key] = f"{query[key]},{value}" if key in query else value
    now = datetime.now(UTC)
    event = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": parts.path or "/",
        "rawQueryString": parts.query,
        "headers": merged,
        "requestContext": {
            "accountId": "anonymous",
            "apiId": "local",
            "domainName": domain,
            "domainPrefix": domain.split(".", 1)[0],
            "http": {
                "method": method.upper(),
                "path": parts.path or "/",
                "protocol": "HTTP/1.1",
                "sourceIp": source_ip,
                "userAgent": merged.get("user-agent", ""),
            },
            "requestId": str(uuid.uuid4()),
            "routeKey": "$default",
            "stage": "$default",
            "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(now.timestamp() * 1000),
        },
        "isBase64Encoded": False,
    }
    if cookies:
        event["cookies"] = cookies
    if query:
        event["queryStringParameters"] = query
    if body:
        content_type = merged.get("content-type", "").lower()
        try:
            text = body.decode()
        except UnicodeDecodeError:
            text = None
        if text is not None and (not content_type or any(t in content_type for t in _TEXT_TYPES)):
            event["body"] = text
        else:
            event["body"] = base64.b64encode(body).decode()
            event["isBase64Encoded"] = True
    return event


def http_answer(result) -> tuple[int, list[tuple[str, str]], bytes]:
    """What the function URL sends back for a handler's result. A dict with `statusCode` is a
    response; anything else is a 200 with the result as JSON (a string is sent as is)."""
    if isinstance(result, dict) and "statusCode" in result:
        status = int(result["statusCode"])
        headers = [(k, str(v)) for k, v in (result.get("headers") or {}).items()]
        for cookie in result.get("cookies") or []:
            headers.append(("Set-Cookie", cookie))
        body = result.get("body") or ""
        if result.get("isBase64Encoded"):
            raw = base64.b64decode(body)
        else:
            raw = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        if not any(k.lower() == "content-type" for k, _ in headers) and raw:
            headers.append(("Content-Type", "application/json"))
        return status, headers, raw
    raw = result.encode() if isinstance(result, str) else json.dumps(result).encode()
    return 200, [("Content-Type", "application/json")], raw


def sqs_record(message: dict, *, queue_arn: str, region: str) -> dict:
    """An SQS event source mapping's record for a ReceiveMessage message (received with
    `AttributeNames=["All"]` and `MessageAttributeNames=["All"]`)."""
    attributes = dict(message.get("Attributes") or {})
    attributes.setdefault("ApproximateReceiveCount", "1")
    attributes.setdefault("SentTimestamp", str(int(time.time() * 1000)))
    attributes.setdefault("ApproximateFirstReceiveTimestamp", str(int(time.time() * 1000)))
    attributes.setdefault("SenderId", "local")
    message_attributes = {}
    for name, attr in (message.get("MessageAttributes") or {}).items():
        out = {
            "dataType": attr.get("DataType", "String"),
            "stringListValues": [],
            "binaryListValues": [],
        }
        if "StringValue" in attr:
            out["stringValue"] = attr["StringValue"]
        if "BinaryValue" in attr:
            value = attr["BinaryValue"]
            out["binaryValue"] = (
                base64.b64encode(value).decode() if isinstance(value, bytes) else value
            )
        message_attributes[name] = out
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message.get("Body", ""),
        "attributes": attributes,
        "messageAttributes": message_attributes,
        "md5OfBody": message.get("MD5OfBody", ""),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }


def sqs_event(messages: list[dict], *, queue_arn: str, region: str) -> dict:
    return {"Records": [sqs_record(m, queue_arn=queue_arn, region=region) for m in messages]}


def failed_ids(result) -> set[str] | None:
    """The message ids a partial batch response reports as failed; None when the result is not
    a partial batch response (then, as in AWS, the whole batch counts as succeeded)."""
    if not isinstance(result, dict) or "batchItemFailures" not in result:
        return None
    return {str(f.get("itemIdentifier")) for f in result["batchItemFailures"] or []}


class LambdaContext:
    """The attributes of Lambda's context object that handlers and Powertools read.

    `deadline` (epoch seconds) is when the invocation is killed: the runner passes the start of
    the invocation plus the function's deployed Timeout, so `get_remaining_time_in_millis`
    tells a handler what Lambda would."""

    def __init__(
        self,
        function_name: str,
        *,
        timeout_s: float = 900,
        deadline: float | None = None,
        memory_mb: int = 512,
        memory_limit_in_mb: int | None = None,
        function_arn: str | None = None,
    ):
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = (
            function_arn or f"arn:aws:lambda:local:000000000000:function:{function_name}"
        )
        self.memory_limit_in_mb = memory_limit_in_mb or memory_mb
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = "local"
        self._deadline = deadline if deadline is not None else time.time() + timeout_s

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.time()) * 1000))
