"""The consumer's `timeout_ms` is a wall-clock limit on the whole attempt (connect, send and
the whole answer), tried against the demo receiver's slow and trickling paths."""

import threading

import pytest

from broker.functions import settings
from broker.functions.demo_receiver import TRICKLE_BYTES, ReceiverServer, Secrets
from broker.functions.shared import messages, records
from tests.functions import egress_fixtures

egress, receiver = egress_fixtures.egress, egress_fixtures.receiver


@pytest.fixture
def demo(egress, monkeypatch):
    """The demo receiver (`make run`'s) in a thread, allowed as a consumer target."""
    server = ReceiverServer(("127.0.0.1", 0), secrets=Secrets())
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    allowed = [*settings.get().private_targets, f"127.0.0.1:{port}"]
    monkeypatch.setenv("CONSUMER_PRIVATE_TARGETS", ",".join(allowed))
    settings.reload()
    yield f"http://127.0.0.1:{port}"
    server.shutdown()
    server.server_close()


def _attempt(egress, message) -> dict:
    (attempt,) = [i for i in egress.history(message.delivery.delivery_id) if i["SK"] != "EVENT"]
    return attempt


@pytest.mark.parametrize(
    "path",
    [
        "/slow/3000/hook",  # silent for 3 s: no byte at all within the limit
        # A byte every 300 ms: each socket read gets one within any per-read timeout, and the
        # whole answer takes 30 × 0.3 = 9 s. Per-read timeouts alone called this delivered.
        "/trickle/300/hook",
    ],
)
def test_a_consumer_that_answers_too_slowly_in_all_is_cut_at_its_timeout(egress, demo, path):
    assert TRICKLE_BYTES * 0.3 > 3
    consumer = egress.consumer(url=demo + path, timeout_ms=1000)
    message = egress.message(consumer)

    assert egress.run(message) == {"batchItemFailures": []}

    attempt = _attempt(egress, message)
    assert attempt["status"] == records.RETRYING
    assert attempt["error_kind"] == messages.ERROR_TIMEOUT
    ((retry, _),) = egress.requeued()
    assert retry.delivery.attempt == 2


def test_a_trickle_that_ends_within_the_timeout_is_delivered(egress, demo):
    consumer = egress.consumer(url=demo + "/trickle/10/hook", timeout_ms=5000)
    message = egress.message(consumer)

    egress.run(message)

    assert _attempt(egress, message)["status"] == records.OK
    assert egress.requeued() == []


def test_a_cut_connection_is_not_reused_for_the_next_delivery(egress, demo):
    slow = egress.consumer(url=demo + "/trickle/300/hook", timeout_ms=500)
    fast = egress.consumer(url=demo + "/hook", timeout_ms=5000)
    first, second = egress.message(slow), egress.message(fast)

    egress.run(first)
    egress.run(second)

    assert _attempt(egress, first)["error_kind"] == messages.ERROR_TIMEOUT
    assert _attempt(egress, second)["status"] == records.OK
