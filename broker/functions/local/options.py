"""The local runner's options, from the environment (`RUNNER_*`, `INGRESS_*`)."""

import importlib
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
