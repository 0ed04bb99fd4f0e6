"""The rate limit per consumer end to end on the moto server: a burst of events through the
real local runner (ingress, pollers, egress processes) to a consumer limited to 5 deliveries a
second, which receives no more than that in any second of its clock and gets every event.
The runner's stop checks every AWS call the functions made against their deployed roles."""

import json
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.conf import settings as django_settings

from broker.functions.shared import records
from broker.sync import contract
from core import aws
from tests.e2e import test_dataplane_e2e as base
from tests.helpers.e2e import free_receiver_port, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.django_db]

dp, runner = base.dp, base.runner  # its fixtures, for this module (receiver: conftest)

RATE = 5
EVENTS = 200


class Clocked(ThreadingHTTPServer):
    """A consumer that notes when each request arrived (its own clock) and its webhook-id."""

    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", free_receiver_port()), _ClockedHandler)
        self.lock = threading.Lock()
        self.arrivals: list[tuple[float, str]] = []
        self.stamps: dict[str, list[int]] = {}  # webhook-id → its webhook-timestamp(s)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/{path}"


class _ClockedHandler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_POST(self):
        at = time.time()
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with self.server.lock:
            hook = self.headers.get("webhook-id", "")
            self.server.arrivals.append((at, hook))
            stamp = int(self.headers.get("webhook-timestamp") or 0)
            self.server.stamps.setdefault(hook, []).append(stamp)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()


@pytest.fixture
def clocked():
    server = Clocked()
    yield server
    server.shutdown()
    server.server_close()


def _limit(tenant, consumer, rate: int) -> None:
    """`rate_limit_per_second` on the CONSUMER item, as the relay will write it."""
    aws.dynamodb().update_item(
        TableName=django_settings.DYNAMODB_CONFIG_TABLE,
        Key={"PK": {"S": contract.tenant_pk(tenant.pk)}, "SK": {"S": f"CONSUMER#{consumer.pk}"}},
        UpdateExpression="SET rate_limit_per_second = :r",
        ConditionExpression="attribute_exists(PK)",
        ExpressionAttributeValues={":r": {"N": str(rate)}},
    )


def _send_burst(dp, key: str, n: int) -> None:
    """n events in batches of 10, as fast as the producer's own rate limit lets them in."""
    sent = 0
    deadline = time.monotonic() + 30
    while sent < n:
        batch = {"events": [{**base.ORDER, "id": f"burst-{dp.tag}-{sent + i}"} for i in range(10)]}
        status, answer, headers = dp.send(key, batch, path="/v1/events/batch")
        if status == 429 and time.monotonic() < deadline:
            time.sleep(float(headers.get("Retry-After") or 1))
            continue
        assert status == 202 and all(r.get("deliveries") == 1 for r in answer["results"]), answer
        sent += 10


def _query(pk: str) -> list[dict]:
    answer = aws.dynamodb().query(
        TableName=django_settings.DATAPLANE_TABLE,
        KeyConditionExpression="PK = :pk",
        ExpressionAttributeValues={":pk": {"S": pk}},
    )
    return answer.get("Items", [])


def test_a_consumer_limited_to_5_a_second_gets_at_most_5_in_every_second_and_every_event(
    dp, clocked
):
    w = dp.world
    _, key, consumer, _, _ = dp.setup(w.a, w.admin_a, url=clocked.url(f"rate/{dp.tag}"))
    _limit(w.a, consumer, RATE)
    time.sleep(1.2)  # the runner's config cache (1 s) sees the limit

    started = time.monotonic()
    _send_burst(dp, key, EVENTS)

    def all_arrived():
        with clocked.lock:
            return len({hook for _, hook in clocked.arrivals}) >= EVENTS

    assert wait_for(all_arrived, timeout=150, interval=0.5), len(clocked.arrivals)
    took = time.monotonic() - started

    with clocked.lock:
        arrivals = list(clocked.arrivals)
    per_second = Counter(int(at) for at, _ in arrivals)
    # Every second's bucket held (a moto server that let two conditional writes through at
    # once would show here, not in the egress), then every second of the consumer's clock.
    tid = str(w.a.pk)
    items = _query(records.consumer_rate_key(tid, str(consumer.pk), 0)[0])
    buckets = [int(i["c"]["N"]) for i in items if i["SK"]["S"].startswith("S#")]
    assert buckets and max(buckets) <= RATE
    over = {
        s: [(round(at, 3), clocked.stamps[h]) for at, h in arrivals if int(at) == s]
        for s, n in per_second.items()
        if n > RATE
    }
    assert not over, over  # (arrival, the webhook-timestamp it was signed with)
    assert len({hook for _, hook in arrivals}) == EVENTS
    assert took >= EVENTS / RATE - 1  # a limit, not a pause: 40 s for 200 at 5/s

    # The throttled deliveries were not attempts, and their records say how long they waited.
    log_pk = records.consumer_log_key(tid, str(consumer.pk), "", "", 0, 0)[0]

    def logged():  # the runner writes records within a second or two of the attempts
        items = _query(log_pk)
        return items if len(items) >= EVENTS else []

    log = wait_for(logged, timeout=10)
    assert {item["attempt"]["N"] for item in log} == {"1"}
    assert sum(1 for item in log if int(item.get("throttled_ms", {}).get("N", "0")) > 0) > 100
    minutes = _query(records.consumer_stats_key(tid, str(consumer.pk), "")[0])
    assert sum(int(m.get("throttled", {}).get("N", "0")) for m in minutes) >= 100
    print(
        json.dumps(
            {
                "seconds": round(took, 1),
                "per_second": sorted(per_second.values()),
                "throttled": sum(int(m.get("throttled", {}).get("N", "0")) for m in minutes),
            }
        )
    )
