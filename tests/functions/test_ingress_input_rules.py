"""What the HTTPS ingress takes: JSON every later reader can read (400 otherwise, nothing
queued, no producer id claimed), declared as application/json (415), plain or gzip (415 for
another encoding), and events measured in the bytes SQS counts."""

import base64
import gzip
import json

import pytest

from broker.functions import aws
from broker.functions.shared import jsontext, messages
from tests.helpers.functions import http_event, post

ORDER = {"type": "order.created", "data": {"total": 12}}


@pytest.fixture
def shop(dataplane):
    t = dataplane.tenant()
    t.prod = t.producer()
    t.key = t.api_key(t.prod)
    t.route("order.created", t.consumer())
    return t


def _post_bytes(path, raw: bytes, *, key, headers):
    """A binary body, as a function URL hands it over: base64-encoded."""
    from broker.functions.ingress import handler

    event = http_event(path, key=key, headers=headers)
    event["body"], event["isBase64Encoded"] = base64.b64encode(raw).decode(), True
    out = handler(event, None)
    return out["statusCode"], json.loads(out["body"])


# --- JSON every reader can read -------------------------------------------------------------


@pytest.mark.parametrize(
    "path,raw",
    [
        ("/v1/events", r'{"type": "order.created", "id": "o-\ud800", "data": {}}'),
        ("/v1/events", r'{"type": "order.created", "data": {"note": "\udfff"}}'),
        ("/v1/events", r'{"type": "order.created", "data": {"a\u0000": 1}}'),
        ("/v1/events", '{"type": "order.created", "data": NaN}'),
        ("/v1/events", '{"type": "order.created", "data": 1e999}'),
        ("/v1/events", '{"type": "order.created", "data": ' + "[" * 1000 + "]" * 1000 + "}"),
        ("/v1/events/batch", r'[{"type": "order.created", "data": "\ud800"}]'),
        ("/v1/events/batch", r'[{"type": "order.created", "id": "\udc00", "data": 1}]'),
    ],
    ids=[
        "lone surrogate in the producer's id (was 503)",
        "lone surrogate in data",
        "U+0000 in a key",
        "NaN",
        "a number beyond a double",
        "1,000 levels (was 502)",
        "lone surrogate in a batch (was 502)",
        "lone surrogate in a batch's id",
    ],
)
def test_json_a_later_reader_cannot_read_is_a_400_and_nothing_is_queued(shop, path, raw):
    status, body, _ = post(path, body=raw, key=shop.key)
    assert status == 400
    assert body["error"]["code"] == "parse_error"
    assert set(body["error"]) == {"code", "message", "fields"}
    assert shop.deliveries() == []


# --- Content-Type and Content-Encoding ------------------------------------------------------


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "multipart/form-data; boundary=x",
        "application/x-www-form-urlencoded",
        "application/json; charset=latin-1",
        "",
    ],
)
def test_a_body_not_declared_as_json_is_415(shop, content_type):
    status, body, _ = post(body=ORDER, key=shop.key, headers={"content-type": content_type})
    assert (status, body["error"]["code"]) == (415, "unsupported_media_type")
    assert shop.deliveries() == []


@pytest.mark.parametrize(
    "content_type",
    ["application/json", "Application/JSON; charset=UTF-8", 'application/json;charset="utf-8"'],
)
def test_application_json_in_utf_8_is_accepted(shop, content_type):
    status, _, _ = post(body=ORDER, key=shop.key, headers={"content-type": content_type})
    assert status == 202


def test_a_gzip_body_is_decoded(shop):
    raw = gzip.compress(json.dumps([ORDER] * 3).encode())
    status, body = _post_bytes(
        "/v1/events/batch", raw, key=shop.key, headers={"content-encoding": "gzip"}
    )
    assert status == 202 and len(body["results"]) == 3
    assert len(shop.deliveries()) == 3


def test_a_gzip_header_over_a_plain_body_is_a_400(shop):
    status, body, _ = post(body=ORDER, key=shop.key, headers={"content-encoding": "gzip"})
    assert (status, body["error"]["code"]) == (400, "parse_error")


def test_a_gzip_body_that_expands_beyond_1_mb_is_413(shop):
    raw = gzip.compress(b" " * (2 * 1024 * 1024) + json.dumps(ORDER).encode())
    status, body = _post_bytes(
        "/v1/events", raw, key=shop.key, headers={"content-encoding": "gzip"}
    )
    assert (status, body["error"]["code"]) == (413, "too_large")


@pytest.mark.parametrize("encoding", ["br", "deflate", "zstd", "gzip, gzip"])
def test_another_content_encoding_is_415(shop, encoding):
    status, body, _ = post(body=ORDER, key=shop.key, headers={"content-encoding": encoding})
    assert (status, body["error"]["code"]) == (415, "unsupported_media_type")


# --- sizes in bytes -----------------------------------------------------------------------


def test_a_114_kb_cjk_event_within_128_kib_is_accepted_and_its_message_is_measured_in_bytes(
    dataplane,
):
    t = dataplane.tenant(quotas={"max_event_size_bytes": 128 * 1024})
    key = t.api_key(t.producer())
    t.route("order.created", t.consumer())
    text = "注文" * 19_000  # 38,000 characters: 114,000 bytes of UTF-8
    event = {"type": "order.created", "data": {"note": text}}
    sent = json.dumps(event)  # as Python sends it: every character escaped, 6 bytes each
    assert len(sent.encode()) == 228_047

    status, body, _ = post(body=sent, key=key)

    assert status == 202, body
    client = aws.sqs()
    (raw,) = client.receive_message(QueueUrl=t.queue_urls[0])["Messages"]
    size = len(raw["Body"].encode("utf-8"))  # moto counts characters; SQS counts bytes
    assert 114_000 < size < 115_000 <= messages.MAX_BODY_BYTES
    assert "\\u" not in raw["Body"]
    assert messages.parse(raw["Body"]).event["data"]["note"] == text


def test_an_event_within_the_tenants_limit_but_too_large_for_its_message_is_413(dataplane):
    t = dataplane.tenant(quotas={"max_event_size_bytes": 256 * 1024})
    key = t.api_key(t.producer())
    t.route("order.created", t.consumer())
    status, body, _ = post(
        body={"type": "order.created", "data": "é" * 128_000}, key=key
    )  # 256,000 bytes of data, under 256 KiB
    assert (status, body["error"]["code"]) == (413, "too_large")
    assert t.deliveries() == []


def test_the_largest_event_accepted_fits_in_its_delivery_message_and_its_dead_letter(dataplane):
    t = dataplane.tenant(quotas={"max_event_size_bytes": 256 * 1024})
    key = t.api_key(t.producer())
    t.route("order.created", t.consumer())
    base = {"type": "order.created", "id": "o-" + "x" * 126, "time": "2026-11-30T10:00:00Z"}
    room = messages.max_event_bytes() - jsontext.size(
        {
            "id": "evt_" + "0" * 32,
            "type": base["type"],
            "time": base["time"],
            "data": "",
            "source_id": base["id"],
        }
    )
    event = {**base, "data": "\U0001f600" * (room // 4) + "x" * (room % 4)}
    status, body, _ = post(body=event, key=key)
    assert status == 202, body
    (message,) = t.deliveries()
    assert len(message.body().encode()) <= messages.MAX_BODY_BYTES
    # The egress adds the retry fields and, after the last attempt, the failure.
    d = message.delivery
    d.attempt, d.replay = 99, 99
    d.first_attempt_at = d.not_before = messages.now_iso()
    letter = messages.dead_letter_message(
        d,
        message.event,
        messages.Failure(
            attempts=99,
            last_status=503,
            last_error="\uffff" * 5000,
            error_kind=messages.ERROR_HTTP,
            first_attempt_at=messages.now_iso(),
            last_attempt_at=messages.now_iso(),
        ),
    )
    assert len(letter.body().encode()) <= messages.MAX_BODY_BYTES

    too_big = {**event, "data": event["data"] + "x"}
    assert post(body=too_big, key=key)[0] == 413


def test_characters_sqs_refuses_stay_escaped_in_the_body(shop):
    data = {"text": "a\ufffeb\uffffc\u0001d\te注"}
    assert post(body={**ORDER, "data": data}, key=shop.key)[0] == 202
    raw = aws.sqs().receive_message(QueueUrl=shop.queue_urls[0])["Messages"][0]["Body"]
    assert "\ufffe" not in raw and "\uffff" not in raw and "\x01" not in raw
    assert "\\ufffe" in raw and "\\uffff" in raw and "注" in raw
    assert messages.parse(raw).event["data"] == data


def test_a_schema_saved_with_a_remote_ref_refuses_its_events_without_fetching(shop, monkeypatch):
    import urllib.request

    def no_fetch(*args, **kwargs):
        raise AssertionError("the ingress fetched a schema reference")

    monkeypatch.setattr(urllib.request, "urlopen", no_fetch)
    shop.event_type("order.created", {"properties": {"total": {"$ref": "https://x.test/s"}}})
    status, body, _ = post(body=ORDER, key=shop.key)
    assert (status, body["error"]["code"]) == (400, "schema_mismatch")
    assert shop.deliveries() == []
