"""The local runner's options, from the environment (`RUNNER_*`, `INGRESS_*`, `AWS_*`)."""

import os
from dataclasses import dataclass


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def _env_float(name: str, default: float) -> float:
    return float(os.environ.get(name, default))


@dataclass(frozen=True)
class Options:
    host: str = "127.0.0.1"
    port: int = 8100
    endpoint_url: str | None = None
    region: str | None = None
    stack_name: str = "broker"
    # The function behind the HTTP ingress; default: the stack's IngressFunctionArn output.
    ingress_function: str = ""
    ingress_workers: int = 4
    wait_seconds: int = 20
    discover_seconds: float = 3.0
    # A cap on any mapping's pollers (and so on its concurrent invocations), whatever its
    # ScalingConfig says: every invocation is a process here.
    max_concurrency: int = 10
    stop_timeout: float = 10.0
    call_log: str = ""  # AWS_CALL_LOG: record every AWS call for the IAM check
    function_log: str = ""  # where the functions' processes write their logs (default stderr)

    @classmethod
    def from_env(cls) -> "Options":
        d = cls()
        return cls(
            host=os.environ.get("INGRESS_HOST", d.host),
            port=_env_int("INGRESS_PORT", d.port),
            endpoint_url=os.environ.get("AWS_ENDPOINT_URL") or None,
            region=os.environ.get("AWS_DEFAULT_REGION") or None,
            stack_name=os.environ.get("STACK_NAME", d.stack_name),
            ingress_function=os.environ.get("RUNNER_INGRESS_FUNCTION", d.ingress_function),
            ingress_workers=_env_int("RUNNER_INGRESS_WORKERS", d.ingress_workers),
            wait_seconds=_env_int("RUNNER_WAIT_SECONDS", d.wait_seconds),
            discover_seconds=_env_float("RUNNER_DISCOVER_SECONDS", d.discover_seconds),
            max_concurrency=_env_int("RUNNER_MAX_CONCURRENCY", d.max_concurrency),
            stop_timeout=_env_float("RUNNER_STOP_TIMEOUT", d.stop_timeout),
            call_log=os.environ.get("AWS_CALL_LOG", d.call_log),
            function_log=os.environ.get("RUNNER_FUNCTION_LOG", d.function_log),
        )
