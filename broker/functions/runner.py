"""The local runner: what AWS does around the functions, in one process, without Django.

    python -m broker.functions.runner

- **Ingress over HTTP.** A threaded HTTP server on `INGRESS_HOST:INGRESS_PORT`
  (127.0.0.1:8100) turns each request into a Lambda function URL event (payload 2.0), calls
  the ingress handler and sends its answer back. `GET /_local/health` is the runner's own.
- **SQS event source mappings.** One long-polling thread per queue (WaitTimeSeconds 20,
  batches of 10) builds the records an event source mapping passes to a function, calls the
  handler, deletes the messages it did not report in `batchItemFailures` and leaves the
  failed ones to come back (a handler that raises fails the whole batch, as in Lambda).
  Delivery queues (`<prefix>-delivery-NN`, `<prefix>-silo-*`) go to the egress handler;
  every SQS producer's source queue (the config table's live `SOURCEQUEUE#<arn>` items) to
  the ingress's `sqs_source_handler`.
- **Discovery.** Queues are listed again every `RUNNER_DISCOVER_SECONDS` (3 s): a silo tenant
  onboarded or an SQS producer created later is polled without a restart; a queue that is gone
  loses its pollers.
- **Concurrency.** A shared delivery queue gets `RUNNER_POOL_CONCURRENCY` (2) pollers, like
  the event source mapping's scaling in Lambda (the per-consumer in-flight cap keeps one slow
  pool consumer from holding them). A silo queue gets the largest `concurrency` of its
  tenant's enabled consumers (at most `RUNNER_MAX_CONCURRENCY`, 10): the event source
  mapping's MaximumConcurrency in AWS. A source queue gets one. Every poller is its own thread,
  so a slow batch on one queue never holds another queue.
- **Stopping.** SIGTERM or SIGINT: the HTTP server stops, pollers finish the batch in hand
  (up to `RUNNER_STOP_TIMEOUT` s) and give back messages received after the signal
  (visibility 0). A long poll still waiting when the process exits is abandoned; a message
  it receives after that reappears after the queue's visibility timeout.

Handlers are found by dotted path (`module:function`), `RUNNER_INGRESS_HANDLER`,
`RUNNER_SOURCE_HANDLER`, `RUNNER_EGRESS_HANDLER` (defaults: the real functions), so tests of
the runner can give it handlers of their own. The data plane's tables are created at start
when missing (`bootstrap.create_tables`), so the runner starts against a fresh moto server.
"""

import argparse
import logging
import os
import signal
import sys
import threading
import time

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from broker.functions import bootstrap, settings
from broker.functions.local.discovery import DELIVERY, SOURCE, Discovery, Queue
from broker.functions.local.http import IngressServer
from broker.functions.local.options import Options, load
from broker.functions.local.poller import Poller

log = logging.getLogger("broker.functions.runner")

__all__ = ["DELIVERY", "SOURCE", "Discovery", "Options", "Queue", "Runner", "main"]


def _poll_client_factory(pool_size: int):
    """Clients of the runner's own, with room for every concurrent long poll."""
    s = settings.get()
    session = boto3.session.Session()
    cfg = Config(
        retries={"max_attempts": 3, "mode": "standard"},
        connect_timeout=2,
        read_timeout=25,  # above the 20 s long poll
        max_pool_connections=pool_size,
    )

    def make(service: str):
        return session.client(
            service, endpoint_url=s.endpoint_url, region_name=s.region, config=cfg
        )

    return make


class Runner:
    def __init__(self, options: Options, *, serve_http: bool = True):
        self.options = options
        self.serve_http = serve_http
        self.stopped = threading.Event()
        self.pollers: dict[str, list[Poller]] = {}
        self.queues: dict[str, Queue] = {}
        self.server: IngressServer | None = None
        self._counts = {DELIVERY: [0, 0], SOURCE: [0, 0]}
        self._counts_lock = threading.Lock()
        make = _poll_client_factory(pool_size=256)
        self.sqs = make("sqs")
        self.discovery = Discovery(_poll_client_factory(pool_size=4), options)
        self.egress = load(options.egress_handler)
        self.source = load(options.source_handler)
        self.ingress = load(options.ingress_handler) if serve_http else None
        self.flush = load(options.egress_flush, optional=True)
        self.ingress_flush = load(options.ingress_flush, optional=True)

    def count(self, kind: str, ok: int, failed: int) -> None:
        with self._counts_lock:
            self._counts[kind][0] += ok
            self._counts[kind][1] += failed

    def start(self) -> None:
        created = bootstrap.create_tables()
        if created:
            log.info("created the data plane's tables: %s", ", ".join(created))
        if self.serve_http:
            self.server = IngressServer((self.options.host, self.options.port), self.ingress)
            threading.Thread(target=self.server.serve_forever, name="ingress", daemon=True).start()
            log.info("ingress on http://%s:%d", self.options.host, self.server.server_port)
        self.rediscover()
        threading.Thread(target=self._maintain, name="discovery", daemon=True).start()

    def rediscover(self) -> None:
        try:
            found = self.discovery.queues()
        except (ClientError, BotoCoreError) as exc:
            log.warning("queue discovery failed: %s", exc)
            return
        for url in set(self.pollers) - set(found):
            log.info("stopped polling %s", url)
            for poller in self.pollers.pop(url):
                poller.retired.set()
            self.queues.pop(url, None)
        for url, queue in found.items():
            running = [p for p in self.pollers.get(url, []) if p.is_alive()]
            for extra in running[queue.concurrency :]:
                extra.retired.set()
            running = running[: queue.concurrency]
            handler = self.egress if queue.kind == DELIVERY else self.source
            used = {p.index for p in running}
            free = (i for i in range(queue.concurrency * 2) if i not in used)
            for _ in range(queue.concurrency - len(running)):
                poller = Poller(queue, next(free), sqs=self.sqs, handler=handler, runner=self)
                poller.start()
                running.append(poller)
            if url not in self.queues or self.queues[url] != queue:
                log.info(
                    "polling %s (%s, %d poller%s)",
                    url.rsplit("/", 1)[-1],
                    "egress" if queue.kind == DELIVERY else "ingress, SQS producer",
                    queue.concurrency,
                    "" if queue.concurrency == 1 else "s",
                )
            self.pollers[url] = running
            self.queues[url] = queue

    def _maintain(self) -> None:
        next_discovery = time.monotonic() + self.options.discover_seconds
        while not self.stopped.wait(self.options.flush_seconds):
            self._flush()
            if time.monotonic() >= next_discovery:
                self.rediscover()
                next_discovery = time.monotonic() + self.options.discover_seconds

    def _flush(self) -> None:
        for flush, what in ((self.flush, "delivery records"), (self.ingress_flush, "counters")):
            if flush is None:
                continue
            try:
                flush()
            except Exception:
                log.exception("flushing %s failed", what)

    def stop(self) -> None:
        if self.stopped.is_set():
            return
        self.stopped.set()
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
        deadline = time.monotonic() + self.options.stop_timeout
        for pollers in list(self.pollers.values()):
            for poller in pollers:
                while poller.busy and time.monotonic() < deadline:
                    time.sleep(0.05)
        self._flush()
        with self._counts_lock:
            (d_ok, d_failed), (s_ok, s_failed) = self._counts[DELIVERY], self._counts[SOURCE]
        log.info(
            "stopped: %d delivery messages done (%d failed attempts left), "
            "%d source messages done (%d left)",
            d_ok,
            d_failed,
            s_ok,
            s_failed,
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m broker.functions.runner", description=__doc__)
    parser.add_argument("--no-http", action="store_true", help="pollers only, no ingress server")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s runner %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("botocore").setLevel(logging.WARNING)
    runner = Runner(Options.from_env(), serve_http=not args.no_http)
    done = threading.Event()

    def on_signal(signum, frame):
        if done.is_set():  # a second signal: leave now
            os._exit(1)
        log.info("signal %d: stopping", signum)
        done.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    runner.start()
    print(f"runner ready: ingress http://{runner.options.host}:{runner.options.port}", flush=True)
    while not done.wait(1):
        pass
    runner.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
