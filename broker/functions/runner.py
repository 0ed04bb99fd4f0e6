"""The local runner: what AWS does around the functions, against the emulator's deployed stack.

    python -m broker.functions.runner

It runs the functions that deploy/template.yaml deployed into the moto server
(broker/functions/local/stack.py), the way Lambda runs them:

- **Each function in processes of its own**, with its deployed configuration: the Handler,
  Timeout, MemorySize and Environment of GetFunctionConfiguration, never the runner's own
  environment (broker/functions/local/functions.py). An invocation that outlives the Timeout
  is killed with its process, as Lambda kills it.
- **Event source mappings drive the pollers.** The runner polls exactly the queues that have
  an enabled SQS mapping (ListEventSourceMappings, again every `RUNNER_DISCOVER_SECONDS`), with
  the mapping's function, BatchSize, MaximumBatchingWindowInSeconds,
  ScalingConfig.MaximumConcurrency and FunctionResponseTypes (broker/functions/local/poller.py).
  A queue without a mapping is not polled, so a missing mapping fails here as it would on AWS;
  a disabled one stops its pollers; a mapping created later is picked up without a restart.
- **The ingress's function URL.** moto has no `AWS::Lambda::Url`: a threaded HTTP server on
  `INGRESS_HOST:INGRESS_PORT` (127.0.0.1:8100) turns each request into a function URL event
  (payload 2.0) and invokes the stack's ingress function (its `IngressFunctionArn` output, or
  `RUNNER_INGRESS_FUNCTION`). `GET /_local/health` is the runner's own.
- **IAM.** With `AWS_CALL_LOG` set, every AWS call a function makes, and every receive and
  delete its mappings make, is appended to that file under the function's name, for the check
  against the function's role (broker/functions/local/iam.py).
- **Stopping.** SIGTERM or SIGINT: the HTTP server stops, pollers finish the batch in hand (up
  to `RUNNER_STOP_TIMEOUT` s) and give back what they received after the signal (visibility
  0), then the functions' processes flush their buffers and end.

Where this differs from AWS (a concurrency cap, no scaling up by backlog, no cold-start
costs) is written down in docs/aws-differences.md.
"""

import argparse
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from broker.functions.local import iam
from broker.functions.local.functions import FunctionConfig, FunctionHost
from broker.functions.local.http import IngressServer
from broker.functions.local.options import Options
from broker.functions.local.poller import Mapping, Poller

log = logging.getLogger("broker.functions.runner")

__all__ = ["Mapping", "Options", "Runner", "main"]

ROOT = Path(__file__).resolve().parents[2]
# What a function's process inherits from the runner: the emulator's address and credentials
# (on AWS they come from the function's role), the interpreter's own variables. Nothing else:
# the function's settings are its deployed Environment.
_INHERITED = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "VIRTUAL_ENV", "PYTHONHASHSEED")


class Runner:
    def __init__(self, options: Options, *, serve_http: bool = True):
        self.options = options
        self.serve_http = serve_http
        self.stopped = threading.Event()
        self.pollers: dict[str, list[Poller]] = {}
        self.mappings: dict[str, Mapping] = {}
        self.hosts: dict[str, FunctionHost] = {}
        self.server: IngressServer | None = None
        self.ingress: FunctionHost | None = None
        self._counts: dict[str, list[int]] = {}
        self._errors: dict[str, int] = {}
        self._lock = threading.Lock()
        session = boto3.session.Session()
        self.region = options.region or session.region_name or "eu-west-1"
        self._session = session
        control = Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=2)
        self.lam = self._client("lambda", control)
        self.cfn = self._client("cloudformation", control)
        # Lambda's poller knows a queue by its ARN; the URL look-up is the runner's own need,
        # so it is made with a client whose calls are nobody's role's.
        self.sqs_lookup = self._client("sqs", control)
        self._sqs_clients: dict[str, object] = {}
        self._queue_urls: dict[str, str] = {}
        self._log_file = open(options.function_log, "ab") if options.function_log else sys.stderr  # noqa: SIM115

    def _client(self, service: str, config: Config, *, principal: str | None = None):
        client = self._session.client(
            service,
            endpoint_url=self.options.endpoint_url,
            region_name=self.region,
            config=config,
        )
        if principal and self.options.call_log:
            iam.install_recorder(client, self.options.call_log, principal=principal)
        return client

    def _sqs_for(self, config: FunctionConfig):
        """The SQS client of a function's mappings: on AWS their polling is done with the
        function's role, so its calls are recorded under the function's name."""
        if config.name not in self._sqs_clients:
            cfg = Config(
                retries={"max_attempts": 3, "mode": "standard"},
                connect_timeout=2,
                read_timeout=self.options.wait_seconds + 5,
                max_pool_connections=256,
            )
            self._sqs_clients[config.name] = self._client("sqs", cfg, principal=config.name)
        return self._sqs_clients[config.name]

    # --- counters --------------------------------------------------------------------------

    def count(self, function_arn: str, ok: int, failed: int) -> None:
        with self._lock:
            entry = self._counts.setdefault(function_arn, [0, 0])
            entry[0] += ok
            entry[1] += failed

    def count_error(self, what: str) -> None:
        with self._lock:
            self._errors[what] = self._errors.get(what, 0) + 1

    # --- functions ---------------------------------------------------------------------------

    def _base_env(self, config: FunctionConfig) -> dict:
        env = {k: os.environ[k] for k in _INHERITED if k in os.environ}
        creds = self._session.get_credentials()
        frozen = creds.get_frozen_credentials() if creds else None
        env.update(
            PYTHONPATH=str(ROOT),
            PYTHONUNBUFFERED="1",
            AWS_DEFAULT_REGION=self.region,
            AWS_REGION=self.region,
            AWS_LAMBDA_FUNCTION_NAME=config.name,
            AWS_LAMBDA_FUNCTION_MEMORY_SIZE=str(config.memory),
            AWS_LAMBDA_FUNCTION_TIMEOUT=str(config.timeout),
        )
        if frozen:
            env.update(AWS_ACCESS_KEY_ID=frozen.access_key, AWS_SECRET_ACCESS_KEY=frozen.secret_key)
        if self.options.endpoint_url:
            env["AWS_ENDPOINT_URL"] = self.options.endpoint_url
        if self.options.call_log:
            env.update(AWS_CALL_LOG=self.options.call_log, AWS_CALL_PRINCIPAL=config.name)
        return env

    def _host(self, config: FunctionConfig, *, max_workers: int) -> FunctionHost:
        host = self.hosts.get(config.arn)
        if host is not None and host.config == config:
            host.max_workers = max(host.max_workers, max_workers)
            return host
        if host is not None:
            log.info("function %s changed: new execution environments", config.name)
            host.close()
        host = FunctionHost(
            config,
            base_env=self._base_env(config),
            log_file=self._log_file,
            max_workers=max_workers,
        )
        self.hosts[config.arn] = host
        return host

    def _ingress_function(self) -> str | None:
        if self.options.ingress_function:
            return self.options.ingress_function
        try:
            stack = self.cfn.describe_stacks(StackName=self.options.stack_name)["Stacks"][0]
        except (ClientError, BotoCoreError) as exc:
            log.warning("no stack %s to find the ingress in: %s", self.options.stack_name, exc)
            return None
        outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
        return outputs.get("IngressFunctionArn")

    # --- the ingress's function URL ----------------------------------------------------------

    def _invoke_ingress(self, event: dict, context=None):
        if self.ingress is None:
            raise RuntimeError("no ingress function deployed")
        return self.ingress.invoke(event)

    def start(self) -> None:
        if self.serve_http:
            function = self._ingress_function()
            if function:
                config = FunctionConfig.read(self.lam, function)
                self.ingress = self._host(config, max_workers=self.options.ingress_workers)
            else:
                log.warning("no ingress function: the HTTP ingress answers 502")
            self.server = IngressServer(
                (self.options.host, self.options.port), self._invoke_ingress
            )
            threading.Thread(target=self.server.serve_forever, name="ingress", daemon=True).start()
            log.info("ingress on http://%s:%d", self.options.host, self.server.server_port)
        self.rediscover()
        threading.Thread(target=self._maintain, name="discovery", daemon=True).start()

    # --- event source mappings ---------------------------------------------------------------

    def _list_mappings(self) -> list[dict]:
        out, kwargs = [], {}
        while True:
            page = self.lam.list_event_source_mappings(**kwargs)
            out.extend(page.get("EventSourceMappings", []))
            if not page.get("NextMarker"):
                return out
            kwargs = {"Marker": page["NextMarker"]}

    def _queue_url(self, sqs, queue_arn: str) -> str:
        if queue_arn not in self._queue_urls:
            parts = queue_arn.split(":")
            self._queue_urls[queue_arn] = sqs.get_queue_url(
                QueueName=parts[5], QueueOwnerAWSAccountId=parts[4]
            )["QueueUrl"]
        return self._queue_urls[queue_arn]

    def _wanted(self) -> dict[str, tuple[Mapping, FunctionConfig]]:
        wanted, configs = {}, {}
        for raw in self._list_mappings():
            if raw.get("State") not in ("Enabled", "Enabling", "Updating"):
                continue
            if ":sqs:" not in raw.get("EventSourceArn", ""):
                continue
            function_arn = raw["FunctionArn"]
            if function_arn not in configs:
                configs[function_arn] = FunctionConfig.read(self.lam, function_arn)
            config = configs[function_arn]
            try:
                url = self._queue_url(self.sqs_lookup, raw["EventSourceArn"])
            except ClientError as exc:
                log.warning("mapping %s: its queue is not there: %s", raw["UUID"], exc)
                continue
            # Without ScalingConfig Lambda scales up to its account limit; the runner caps it.
            limit = (raw.get("ScalingConfig") or {}).get("MaximumConcurrency")
            concurrency = min(
                int(limit or self.options.max_concurrency), self.options.max_concurrency
            )
            mapping = Mapping(
                uuid=raw["UUID"],
                queue_arn=raw["EventSourceArn"],
                queue_url=url,
                function_arn=function_arn,
                batch_size=int(raw.get("BatchSize") or 10),
                batching_window=int(raw.get("MaximumBatchingWindowInSeconds") or 0),
                concurrency=concurrency,
                partial_batch="ReportBatchItemFailures" in (raw.get("FunctionResponseTypes") or []),
            )
            wanted[mapping.uuid] = (mapping, config)
        return wanted

    def rediscover(self) -> None:
        try:
            wanted = self._wanted()
        except (ClientError, BotoCoreError) as exc:
            log.warning("reading the event source mappings failed: %s", exc)
            self.count_error("discovery")
            return
        for uuid in set(self.pollers) - set(wanted):
            log.info(
                "stopped polling %s (mapping gone or disabled)", self.mappings[uuid].queue_name
            )
            for poller in self.pollers.pop(uuid):
                poller.retired.set()
            self.mappings.pop(uuid, None)
        demand: dict[str, int] = {}
        for mapping, config in wanted.values():
            demand[config.arn] = demand.get(config.arn, 0) + mapping.concurrency
        for uuid, (mapping, config) in wanted.items():
            host = self._host(config, max_workers=demand[config.arn])
            running = [p for p in self.pollers.get(uuid, []) if p.is_alive()]
            if self.mappings.get(uuid) != mapping or any(p.host is not host for p in running):
                for poller in running:
                    poller.retired.set()
                running = []
            for index in range(len(running), mapping.concurrency):
                poller = Poller(mapping, index, sqs=self._sqs_for(config), host=host, runner=self)
                poller.start()
                running.append(poller)
            if self.mappings.get(uuid) != mapping:
                log.info(
                    "polling %s → %s (batch %d, %d poller%s%s)",
                    mapping.queue_name,
                    config.name,
                    mapping.batch_size,
                    mapping.concurrency,
                    "" if mapping.concurrency == 1 else "s",
                    ", partial batch responses" if mapping.partial_batch else "",
                )
            self.pollers[uuid] = running
            self.mappings[uuid] = mapping

    def _maintain(self) -> None:
        while not self.stopped.wait(self.options.discover_seconds):
            self.rediscover()

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
        for host in self.hosts.values():
            host.close()
        with self._lock:
            summary = ", ".join(
                f"{arn.rsplit(':', 1)[-1]}: {ok} done, {failed} left"
                for arn, (ok, failed) in self._counts.items()
            )
        log.info("stopped: %s", summary or "no messages")


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
