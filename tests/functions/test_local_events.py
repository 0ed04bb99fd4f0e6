"""The local runner builds Lambda events the way AWS does and reads answers back the same way
(broker/functions/local/events.py)."""

import base64

from broker.functions.local import events


def _event(headers, body=b"", target="/v1/events"):
    return events.http_event(
        method="post",
        target=target,
        headers=headers,
        body=body,
        source_ip="10.1.2.3",
        domain="x.test",
    )


def test_a_request_becomes_a_function_url_event_with_lower_case_joined_headers_and_cookies_apart():
    e = _event(
        [
            ("X-Tag", "a"),
            ("x-tag", "b"),
            ("Cookie", "s=1; t=2"),
            ("Content-Type", "application/json"),
        ],
        b'{"a": 1}',
        "/v1/events?p=1&p=2&q=",
    )
    assert e["version"] == "2.0" and e["routeKey"] == "$default"
    assert e["headers"]["x-tag"] == "a,b" and "cookie" not in e["headers"]
    assert e["cookies"] == ["s=1", "t=2"]
    assert e["rawPath"] == "/v1/events" and e["rawQueryString"] == "p=1&p=2&q="
    assert e["queryStringParameters"] == {"p": "1,2", "q": ""}
    assert e["requestContext"]["http"] == {
        "method": "POST",
        "path": "/v1/events",
        "protocol": "HTTP/1.1",
        "sourceIp": "10.1.2.3",
        "userAgent": "",
    }
    assert e["body"] == '{"a": 1}' and e["isBase64Encoded"] is False


def test_a_binary_body_is_base64_encoded_and_an_empty_one_is_absent():
    e = _event([("Content-Type", "application/octet-stream")], b"\xff\x00")
    assert e["isBase64Encoded"] is True and base64.b64decode(e["body"]) == b"\xff\x00"
    assert "body" not in _event([]) and "queryStringParameters" not in _event([])


def test_an_answer_with_a_status_code_is_sent_as_given_and_anything_else_as_json_200():
    status, headers, body = events.http_answer(
        {"statusCode": 429, "headers": {"Retry-After": 3}, "body": "{}", "cookies": ["a=b"]}
    )
    assert status == 429 and ("Retry-After", "3") in headers and ("Set-Cookie", "a=b") in headers
    assert body == b"{}" and ("Content-Type", "application/json") in headers
    assert (
        events.http_answer({"statusCode": 200, "body": "aGk=", "isBase64Encoded": True})[2] == b"hi"
    )
    assert events.http_answer({"ok": True}) == (
        200,
        [("Content-Type", "application/json")],
        b'{"ok": true}',
    )


def test_an_sqs_message_becomes_an_event_source_mapping_record():
    message = {
        "MessageId": "m1",
        "ReceiptHandle": "r1",
        "Body": "hello",
        "MD5OfBody": "5d41402abc4b2a76b9719d911017c592",
        "Attributes": {"ApproximateReceiveCount": "3"},
        "MessageAttributes": {"tenant_id": {"DataType": "String", "StringValue": "t"}},
    }
    (record,) = events.sqs_event(
        [message], queue_arn="arn:aws:sqs:eu-west-1:1:q", region="eu-west-1"
    )["Records"]
    assert (
        record["messageId"] == "m1"
        and record["receiptHandle"] == "r1"
        and record["body"] == "hello"
    )
    assert record["attributes"]["ApproximateReceiveCount"] == "3"
    assert record["messageAttributes"]["tenant_id"] == {
        "dataType": "String",
        "stringValue": "t",
        "stringListValues": [],
        "binaryListValues": [],
    }
    assert record["eventSource"] == "aws:sqs" and record["eventSourceARN"].endswith(":q")
    assert record["awsRegion"] == "eu-west-1"


def test_only_a_partial_batch_response_names_failed_messages():
    assert events.failed_ids({"batchItemFailures": [{"itemIdentifier": "m2"}]}) == {"m2"}
    assert events.failed_ids({"batchItemFailures": []}) == set()
    assert events.failed_ids(None) is None
