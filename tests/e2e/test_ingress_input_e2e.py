"""The ingress's input rules through the real runner on the moto server, to the demo receiver:
a 114 KB CJK event within the standard tier's 128 KiB reaches the consumer, signed over its
UTF-8 bytes; JSON later readers cannot read is a 400 (a lone surrogate in the producer's id
was a 503), and a body not declared as JSON a 415. Unit tests: tests/functions."""

import json

import pytest
from standardwebhooks import Webhook

from tests.e2e import test_dataplane_e2e as base
from tests.helpers.e2e import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.django_db]

dp, runner = base.dp, base.runner  # its fixtures, for this module (receiver: conftest)


def test_a_114_kb_cjk_event_within_the_standard_tiers_128_kib_reaches_the_consumer(dp):
    w = dp.world
    assert w.a.effective_quotas()["max_event_size_bytes"] == 128 * 1024
    _, key, _, secret, _ = dp.setup(w.a, w.admin_a)
    event = {"type": "order.created", "data": {"note": "注文" * 19_000}}
    sent = json.dumps(event).encode()  # every character escaped: 228,047 bytes as sent
    assert len(sent) == 228_047

    status, answer, _ = dp.runner.post(
        "/v1/events", sent, headers={"Authorization": f"Bearer {key}"}
    )

    assert status == 202, answer
    (got,) = wait_for(lambda: dp.received("hooks"), timeout=15)
    headers = {k: got[k.replace("-", "_")] for k in ("webhook-id", "webhook-timestamp")}
    headers["webhook-signature"] = got["webhook_signature"]
    delivered = Webhook(secret).verify(got["body"].encode(), headers)
    assert delivered["data"] == event["data"]
    assert len(got["body"].encode()) < 115_000  # UTF-8 as it is, not escaped


@pytest.mark.parametrize(
    "body,headers,status,code",
    [
        (rb'{"type": "order.created", "id": "o-\ud800", "data": {}}', {}, 400, "parse_error"),
        (b'{"type": "order.created", "data": NaN}', {}, 400, "parse_error"),
        (b"[" * 1000 + b"]" * 1000, {}, 400, "parse_error"),
        (b'{"type": "order.created", "data": {}}', {"Content-Type": "text/plain"}, 415, None),
        (
            b'{"type": "order.created", "data": {}}',
            {"Content-Encoding": "gzip"},
            400,
            "parse_error",
        ),
    ],
    ids=[
        "lone surrogate in the id",
        "NaN",
        "1,000 levels",
        "text/plain",
        "gzip header, plain body",
    ],
)
def test_input_later_readers_cannot_read_is_refused_by_the_running_ingress(
    dp, body, headers, status, code
):
    w = dp.world
    _, key, _, _, _ = dp.setup(w.a, w.admin_a)
    got, answer, _ = dp.runner.post(
        "/v1/events", body, headers={"Authorization": f"Bearer {key}", **headers}
    )
    assert got == status, answer
    assert answer["error"]["code"] == (code or "unsupported_media_type")
