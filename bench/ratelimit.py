"""Rate limit per consumer: how closely the egress keeps to a consumer's
`rate_limit_per_second`, end to end on the moto server, next to the unlimited path in the same
run. Django-free.

    make bench ARGS="ratelimit"       (or: .venv/bin/python bench/ratelimit.py [--quick])

The data plane's stack is deployed into a moto server of its own (`--aws-endpoint` to reuse
one) and the local runner polls its mappings, as in bench/dataplane.py part 2 (whose `Plane`
this uses). Three consumers of one pool tenant on a local receiver that notes when each
request arrives (its own clock): unlimited, limited to 5/s and to 50/s. For each in turn, a
backlog of deliveries is put on the shared delivery queues at once and drained by the egress
through the runner; per consumer: deliveries/s over the drain, the most that arrived in one
wall-clock second (the limit's promise: never above it), the mean of the full seconds in
between (accuracy: how close to the limit a backlog is delivered), and the deliveries put back
over the limit per delivery (the consumer's `throttled` counter), the price of a limit that
takes no token it cannot use.
"""

import argparse
import os
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import dataplane as dpb  # noqa: E402  (bench/dataplane.py: its Plane, items and rows)

from broker.functions import aws, settings  # noqa: E402
from broker.functions.shared import contract, records  # noqa: E402


class ArrivalReceiver(ThreadingHTTPServer):
    """Answers 204 and notes (path, arrival time) of every request."""

    daemon_threads = True
    request_queue_size = 256

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _ArrivalHandler)
        self.lock = threading.Lock()
        self.arrivals: list[tuple[str, float]] = []

    def count(self, path: str) -> int:
        with self.lock:
            return sum(1 for p, _ in self.arrivals if p == path)

    def times(self, path: str) -> list[float]:
        with self.lock:
            return [t for p, t in self.arrivals if p == path]


class _ArrivalHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_POST(self):
        at = time.time()
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with self.server.lock:
            self.server.arrivals.append((self.path, at))
        self.send_response(204)
        self.send_header("Content-Length", "0")
        self.end_headers()


def consumer_item(base: dict, consumer_id: str, url: str, rate: int | None) -> dict:
    item = {**base, "SK": contract.consumer_sk(consumer_id), "consumer_id": consumer_id}
    item["target"] = {"url": url}
    if rate:
        item["rate_limit_per_second"] = rate
    return item


def preload(sqs, urls: list[str], consumer_id: str, n: int) -> None:
    """n deliveries to the consumer on the shared queues, 10 a call, spread over them."""
    for start in range(0, n, 10):
        sqs.send_message_batch(
            QueueUrl=urls[(start // 10) % len(urls)],
            Entries=[
                {"Id": str(k), "MessageBody": dpb.delivery_message(consumer=consumer_id).body()}
                for k in range(min(10, n - start))
            ],
        )


def throttled(consumer_id: str) -> int:
    """The consumer's `throttled` counter, all minutes summed."""
    pk = records.consumer_stats_key(dpb.TENANT, consumer_id, "")[0]
    items = aws.dynamodb().query(
        TableName=settings.get().dataplane_table,
        KeyConditionExpression="PK = :pk",
        ExpressionAttributeValues={":pk": {"S": pk}},
    )["Items"]
    return sum(int(i.get("throttled", {}).get("N", "0")) for i in items)


def drain(receiver, sqs, urls, consumer_id: str, path: str, n: int, timeout: float) -> dict:
    before = receiver.count(path)
    started = time.time()
    preload(sqs, urls, consumer_id, n)
    while receiver.count(path) - before < n and time.time() - started < timeout:
        time.sleep(0.05)
    times = sorted(receiver.times(path))[before:]
    took = (times[-1] - started) if times else timeout
    per_second = Counter(int(t) for t in times)
    seconds = sorted(per_second)
    full = [per_second[s] for s in seconds[1:-1]]  # the first and last seconds are partial
    time.sleep(2)  # the stats' flush (the runner writes them every second when idle)
    return {
        "arrived": len(times),
        "rate": len(times) / took,
        "most": max(per_second.values()) if per_second else 0,
        "mean": sum(full) / len(full) if full else 0.0,
        "throttled": throttled(consumer_id) / max(1, len(times)),
        "took": took,
        "seconds": [per_second[s] for s in range(seconds[0], seconds[-1] + 1)] if seconds else [],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small backlogs, a smoke run")
    parser.add_argument("--aws-endpoint", help="reuse this moto server instead of starting one")
    args = parser.parse_args()
    print(f"# rate-limit benchmark, {datetime.now():%Y-%m-%d %H:%M}, {os.cpu_count()} CPUs")
    print(
        f"{'figure':<58} {'value':>10} {'unit':<10} {'budget':<14} {'baseline (same run)':<30} ratio"
    )
    moto, endpoint = None, args.aws_endpoint
    if not endpoint:
        port = dpb._free_port()
        moto = subprocess.Popen(
            [sys.executable, "-m", "broker.functions.local.moto_server", "-H", "127.0.0.1"]
            + ["-p", str(port)],
            cwd=dpb.ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        endpoint = f"http://127.0.0.1:{port}"
        dpb._wait_http(f"{endpoint}/moto-api/")
    receiver = ArrivalReceiver()
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    base_url = f"http://127.0.0.1:{receiver.server_port}"
    plane = None
    logs = dpb.ROOT / "var" / "log"
    logs.mkdir(parents=True, exist_ok=True)
    try:
        prefix = f"bench{uuid.uuid4().hex[:6]}"
        plane = dpb.Plane(endpoint, prefix, private_targets=[f"127.0.0.1:{receiver.server_port}"])
        s = settings.get()
        ddb, sqs = aws.dynamodb(), aws.sqs()
        items = dpb.config_items(plane.urls, f"{base_url}/warm")
        consumer = items[(contract.tenant_pk(dpb.TENANT), contract.consumer_sk(dpb.CONSUMER))]
        cases = [  # (name, limit, backlog, quick backlog)
            ("unlimited", None, 300, 100),
            ("5/s", 5, 100, 40),
            ("50/s", 50, 600, 250),
        ]
        ids = {name: str(uuid.uuid4()) for name, *_ in cases}
        for item in items.values():
            ddb.put_item(TableName=s.config_table, Item=dpb.serialize(item))
        for name, limit, *_ in cases:
            path = f"/{name.replace('/', '-')}"
            item = consumer_item(consumer, ids[name], base_url + path, limit)
            ddb.put_item(TableName=s.config_table, Item=dpb.serialize(item))
        plane.start_runner(log=logs / "bench-ratelimit-runner.log")
        # A round first, not measured: each mapping's invocations get their execution
        # environments (a process each here), as a warm function has.
        warm = drain(receiver, sqs, plane.urls, dpb.CONSUMER, "/warm", 160, timeout=120)
        print(f"    (warm-up: {warm['arrived']} deliveries in {warm['took']:.1f} s)")
        unlimited_rate = None
        for name, limit, backlog, quick_backlog in cases:
            n = quick_backlog if args.quick else backlog
            path = f"/{name.replace('/', '-')}"
            bound = 30 + 3 * n / (limit or 50)
            got = drain(receiver, sqs, plane.urls, ids[name], path, n, timeout=bound)
            if limit is None:
                unlimited_rate = got["rate"]
                dpb.row(f"unlimited: deliveries/s, a backlog of {n}", got["rate"], "deliv./s")
                dpb.row("  most in one second", got["most"], "deliv.")
                continue
            dpb.row(
                f"limit {name}: most in one wall-clock second ({n} queued)",
                got["most"],
                "deliv.",
                f"≤ {limit}",
            )
            dpb.row(
                "  mean of the full seconds (accuracy)",
                got["mean"],
                "deliv./s",
                "",
                f"the limit {limit}/s",
                f"{got['mean'] / limit:.2f}×",
            )
            dpb.row(
                "  deliveries/s over the whole drain",
                got["rate"],
                "deliv./s",
                "",
                f"unlimited {unlimited_rate:,.1f}/s",
                f"{got['rate'] / unlimited_rate:.2f}×",
            )
            dpb.row("  put back over the limit, per delivery", got["throttled"], "")
            print(f"    (deliveries in each second: {' '.join(map(str, got['seconds']))})")
            if got["arrived"] < n:
                print(f"    ({got['arrived']} of {n} arrived within the bench's bound)")
    finally:
        if plane is not None:
            plane.stop_runner()
        receiver.shutdown()
        if moto is not None:
            moto.terminate()
            try:
                moto.wait(timeout=10)
            except subprocess.TimeoutExpired:
                moto.kill()
                moto.wait(timeout=10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
