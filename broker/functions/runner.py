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
import importlib
import json
import logging
import os
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from broker.functions import bootstrap, config, settings
from broker.functions.local import events
from broker.functions.shared import arn as arns
from broker.functions.shared import contract

log = logging.getLogger("broker.functions.runner")

DELIVERY = "delivery"
SOURCE = "source"
MAX_HTTP_BODY = 6 * 1024 * 1024  # a function URL's request payload limit


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def _env_float(name: str, default: float) -> float:
    return float(os.environ.get(name, default))


@dataclass(frozen=True)
class Options:
    host: str = "127.0.0.1"
    port: int = 8100
    wait_seconds: int = 20
    discover_seconds: float = 3.0
    pool_concurrency: int = 2
    max_concurrency: int = 10
    stop_timeout: float = 10.0
    flush_seconds: float = 1.0
    ingress_handler: str = "broker.functions.ingress:handler"
    source_handler: str = "broker.functions.ingress:sqs_source_handler"
    egress_handler: str = "broker.functions.egress:handler"
    egress_flush: str = "broker.functions.egress:flush_records"
    ingress_flush: str = "broker.functions.ingress:flush_stats"

    @classmethod
    def from_env(cls) -> "Options":
        d = cls()
        return cls(
            host=os.environ.get("INGRESS_HOST", d.host),
            port=_env_int("INGRESS_PORT", d.port),
            wait_seconds=_env_int("RUNNER_WAIT_SECONDS", d.wait_seconds),
            discover_seconds=_env_float("RUNNER_DISCOVER_SECONDS", d.discover_seconds),
            pool_concurrency=_env_int("RUNNER_POOL_CONCURRENCY", d.pool_concurrency),
            max_concurrency=_env_int("RUNNER_MAX_CONCURRENCY", d.max_concurrency),
            stop_timeout=_env_float("RUNNER_STOP_TIMEOUT", d.stop_timeout),
            ingress_handler=os.environ.get("RUNNER_INGRESS_HANDLER", d.ingress_handler),
            source_handler=os.environ.get("RUNNER_SOURCE_HANDLER", d.source_handler),
            egress_handler=os.environ.get("RUNNER_EGRESS_HANDLER", d.egress_handler),
            egress_flush=os.environ.get("RUNNER_EGRESS_FLUSH", d.egress_flush),
            ingress_flush=os.environ.get("RUNNER_INGRESS_FLUSH", d.ingress_flush),
        )


def load(path: str, *, optional: bool = False):
    """`package.module:attribute` → the attribute (None when optional and absent)."""
    module_name, _, attribute = path.partition(":")
    try:
        return getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError):
        if optional:
            return None
        raise


@dataclass(frozen=True)
class Queue:
    url: str
    arn: str
    kind: str  # DELIVERY or SOURCE
    concurrency: int


# --- discovery ------------------------------------------------------------------------------


class Discovery:
    """Finds the queues to poll. Its own boto3 client: pollers' long polls never wait for it."""

    def __init__(self, client, options: Options):
        self.sqs = client("sqs")
        self.ddb = client("dynamodb")
        self.options = options
        self._arns: dict[str, str] = {}  # queue url → arn
        self._missing_logged: set[str] = set()

    def queues(self) -> dict[str, Queue]:
        s = settings.get()
        found: dict[str, Queue] = {}
        for prefix in (f"{s.queue_prefix}-delivery-", f"{s.queue_prefix}-silo-"):
            for url in self._list(prefix):
                name = url.rsplit("/", 1)[-1]
                if name.endswith("-dlq"):
                    continue
                silo = prefix.endswith("-silo-")
                concurrency = (
                    self._silo_concurrency(name[len(prefix) :])
                    if silo
                    else self.options.pool_concurrency
                )
                found[url] = Queue(url, self._arn(url), DELIVERY, concurrency)
        for queue_arn in self._source_queue_arns():
            url = self._source_url(queue_arn)
            if url:
                found[url] = Queue(url, queue_arn, SOURCE, 1)
        return found

    def _list(self, prefix: str) -> list[str]:
        urls, kwargs = [], {}
        while True:
            page = self.sqs.list_queues(QueueNamePrefix=prefix, MaxResults=1000, **kwargs)
            urls.extend(page.get("QueueUrls", []))
            if not page.get("NextToken"):
                return urls
            kwargs = {"NextToken": page["NextToken"]}

    def _arn(self, url: str) -> str:
        if url not in self._arns:
            attrs = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
            self._arns[url] = attrs["Attributes"]["QueueArn"]
        return self._arns[url]

    def _silo_concurrency(self, tenant_id: str) -> int:
        """The largest `concurrency` of the tenant's enabled consumers (1 when none)."""
        best, kwargs = 1, {}
        while True:
            try:
                page = self.ddb.query(
                    TableName=settings.get().config_table,
                    KeyConditionExpression="PK = :pk AND begins_with(SK, :c)",
                    ExpressionAttributeValues={
                        ":pk": {"S": contract.tenant_pk(tenant_id)},
                        ":c": {"S": "CONSUMER#"},
                    },
                    **kwargs,
                )
            except ClientError:
                return best
            for item in map(config.deserialize, page.get("Items", [])):
                if contract.is_live(item) and item.get("enabled", True):
                    best = max(best, int(item.get("concurrency") or 1))
            if "LastEvaluatedKey" not in page:
                return min(best, self.options.max_concurrency)
            kwargs = {"ExclusiveStartKey": page["LastEvaluatedKey"]}

    def _source_queue_arns(self) -> list[str]:
        """ARNs of the live SOURCEQUEUE items. A scan, fine for a local runner: in AWS each
        SQS producer's event source mapping is created with the producer."""
        out, kwargs = [], {}
        while True:
            try:
                page = self.ddb.scan(
                    TableName=settings.get().config_table,
                    FilterExpression="begins_with(PK, :p) AND SK = :sk",
                    ExpressionAttributeValues={
                        ":p": {"S": contract.source_queue_pk("")},
                        ":sk": {"S": contract.SOURCE_QUEUE_SK},
                    },
                    **kwargs,
                )
            except ClientError as exc:
                if exc.response["Error"]["Code"] == "ResourceNotFoundException":
                    return []  # a fresh moto server: the portal has not bootstrapped yet
                raise
            for item in map(config.deserialize, page.get("Items", [])):
                if contract.is_live(item):
                    out.append(item["PK"][len(contract.source_queue_pk("")) :])
            if "LastEvaluatedKey" not in page:
                return out
            kwargs = {"ExclusiveStartKey": page["LastEvaluatedKey"]}

    def _source_url(self, queue_arn: str) -> str | None:
        for url, known in self._arns.items():
            if known == queue_arn:
                return url
        try:
            parsed = arns.parse_sqs_arn(queue_arn)
            url = self.sqs.get_queue_url(
                QueueName=parsed.name, QueueOwnerAWSAccountId=parsed.account
            )["QueueUrl"]
        except (arns.ArnError, ClientError) as exc:
            if queue_arn not in self._missing_logged:
                self._missing_logged.add(queue_arn)
                log.warning("source queue %s is not pollable: %s", queue_arn, exc)
            return None
        self._missing_logged.discard(queue_arn)
        self._arns[url] = queue_arn
        return url


# --- pollers --------------------------------------------------------------------------------


class Poller(threading.Thread):
    """One long-polling worker of one queue: receive ≤ 10, call the handler, delete what
    succeeded. Several workers of one queue are several Pollers."""

    def __init__(self, queue: Queue, index: int, *, sqs, handler, runner: "Runner"):
        name = queue.url.rsplit("/", 1)[-1]
        super().__init__(name=f"poll:{name}:{index}", daemon=True)
        self.queue = queue
        self.index = index
        self.sqs = sqs
        self.handler = handler
        self.runner = runner
        self.retired = threading.Event()
        self.busy = False
        self.function_name = "egress" if queue.kind == DELIVERY else "ingress-sqs"

    def stopping(self) -> bool:
        return self.retired.is_set() or self.runner.stopped.is_set()

    def run(self) -> None:
        backoff = 0.5
        while not self.stopping():
            try:
                messages = self.sqs.receive_message(
                    QueueUrl=self.queue.url,
                    MaxNumberOfMessages=10,
                    WaitTimeSeconds=self.runner.options.wait_seconds,
                    AttributeNames=["All"],
                    MessageAttributeNames=["All"],
                ).get("Messages", [])
                backoff = 0.5
            except ClientError as exc:
                if exc.response["Error"]["Code"] in (
                    "AWS.SimpleQueueService.NonExistentQueue",
                    "QueueDoesNotExist",
                ):
                    log.info("%s: queue deleted, poller ends", self.name)
                    return
                log.warning("%s: receive failed: %s", self.name, exc)
                self.runner.stopped.wait(backoff)
                backoff = min(backoff * 2, 10)
                continue
            except BotoCoreError as exc:
                log.warning("%s: receive failed: %s", self.name, exc)
                self.runner.stopped.wait(backoff)
                backoff = min(backoff * 2, 10)
                continue
            if not messages:
                continue
            if self.stopping():
                self._give_back(messages)
                return
            self.busy = True
            try:
                self.process(messages)
            finally:
                self.busy = False

    def process(self, messages: list[dict]) -> None:
        region = settings.get().region
        event = events.sqs_event(messages, queue_arn=self.queue.arn, region=region)
        try:
            result = self.handler(event, events.LambdaContext(self.function_name))
        except Exception:
            # As in Lambda: the whole batch comes back after the visibility timeout.
            log.exception("%s: handler raised; the batch of %d stays", self.name, len(messages))
            return
        failed = events.failed_ids(result) or set()
        done = [m for m in messages if m["MessageId"] not in failed]
        self.runner.count(self.queue.kind, len(done), len(messages) - len(done))
        if done:
            self._delete_messages(done)

    def _delete_messages(self, messages: list[dict]) -> None:
        entries = [
            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)
        ]
        try:
            answer = self.sqs.delete_message_batch(QueueUrl=self.queue.url, Entries=entries)
        except (ClientError, BotoCoreError) as exc:
            log.warning("%s: delete failed (messages will come back): %s", self.name, exc)
            return
        for failure in answer.get("Failed", []):
            log.warning("%s: delete of one message failed: %s", self.name, failure)

    def _give_back(self, messages: list[dict]) -> None:
        entries = [
            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": 0}
            for i, m in enumerate(messages)
        ]
        try:
            self.sqs.change_message_visibility_batch(QueueUrl=self.queue.url, Entries=entries)
        except (ClientError, BotoCoreError):
            pass


# --- ingress over HTTP -----------------------------------------------------------------------


class IngressServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address, handler):
        super().__init__(address, _HTTPHandler)
        self.handler = handler


class _HTTPHandler(BaseHTTPRequestHandler):
    server: IngressServer
    protocol_version = "HTTP/1.1"  # keep-alive: curl loops and benchmarks reuse connections

    def setup(self):
        super().setup()
        # Headers and body go out in two writes: without this, Nagle's algorithm holds the
        # body until the client's delayed ACK (40 ms) on every keep-alive request.
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format, *args):  # noqa: A002 (the base class's name)
        log.debug("ingress %s %s", self.address_string(), format % args)

    def _send(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        self.send_response(status)
        for name, value in headers:
            if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _error(self, status: int, code: str, message: str) -> None:
        body = json.dumps({"error": {"code": code, "message": message}}).encode()
        self._send(status, [("Content-Type", "application/json")], body)

    def _body(self) -> bytes | None:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks, total = [], 0
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                total += size
                if total > MAX_HTTP_BODY:
                    return None
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_HTTP_BODY:
            return None
        return self.rfile.read(length) if length else b""

    def _handle(self) -> None:
        if self.path == "/_local/health":
            self._send(200, [("Content-Type", "application/json")], b'{"ok":true}')
            return
        try:
            body = self._body()
        except ValueError:
            self.close_connection = True
            self._error(400, "parse_error", "Malformed request body.")
            return
        if body is None:
            self.close_connection = True
            self._error(413, "too_large", "The request body is over 6 MB.")
            return
        host = self.headers.get("Host") or f"{self.server.server_address[0]}"
        event = events.http_event(
            method=self.command,
            target=self.path,
            headers=list(self.headers.items()),
            body=body,
            source_ip=self.client_address[0],
            domain=host.split(":", 1)[0],
        )
        try:
            result = self.server.handler(event, events.LambdaContext("ingress", timeout_s=30))
        except Exception:
            log.exception("ingress handler raised")
            # What a function URL answers when the function fails.
            self._error(502, "internal_error", "The function failed.")
            return
        self._send(*events.http_answer(result))

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _handle


# --- the runner ------------------------------------------------------------------------------


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
