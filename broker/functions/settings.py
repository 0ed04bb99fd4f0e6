"""The data plane's configuration: environment variables only, read once per process.

| variable | default | |
|---|---|---|
| `AWS_ENDPOINT_URL` | unset (real AWS) | the moto server in development and tests |
| `AWS_DEFAULT_REGION` | `eu-west-1` | |
| `DYNAMODB_CONFIG_TABLE` | `broker-config` | the contract table (read only) |
| `DATAPLANE_TABLE` | `broker-dataplane` | counters and delivery records (records.py) |
| `IDEMPOTENCY_TABLE` | `broker-idempotency` | egress idempotency records |
| `SQS_QUEUE_PREFIX` | `broker` | names of the platform's queues |
| `EGRESS_SLOW_QUEUE` | empty (no slow lane) | the shared queue of pool consumers that answer slowly (egress/slowlane.py) |
| `CONFIG_CACHE_TTL_SECONDS` | `60` | how long a config item read is reused |
| `CONFIG_MISS_TTL_SECONDS` | `5` | how long an absent item is remembered |
| `CONSUMER_PRIVATE_TARGETS` | empty | `host:port` or `host:first-last` allowed despite SSRF rules |
| `CONSUMER_HTTP_ALLOWED_HOSTS` | empty | host names a consumer may call over plain http (public addresses still) |
| `SECRETS_KMS_KEY_ID` | empty | the KMS key of `kms1:` secret references (the stack's SecretsArn when it is a key) |
| `SECRETS_FERNET_SECRET_ARN` | empty | a Secrets Manager secret holding the Fernet keys of `fernet1:` references (the stack's SecretsArn otherwise) |
| `SECRETS_FERNET_KEYS`, `DJANGO_SECRET_KEY` | | the Fernet keys themselves, where no secret holds them (the portal's own tests) |
| `DELIVERY_RECORD_TTL_DAYS` | `7` | |
"""

import os
from dataclasses import dataclass, field


def _list(name: str) -> list[str]:
    return [v.strip() for v in os.environ.get(name, "").split(",") if v.strip()]


@dataclass(frozen=True)
class Settings:
    endpoint_url: str | None = field(
        default_factory=lambda: os.environ.get("AWS_ENDPOINT_URL") or None
    )
    region: str = field(default_factory=lambda: os.environ.get("AWS_DEFAULT_REGION", "eu-west-1"))
    config_table: str = field(
        default_factory=lambda: os.environ.get("DYNAMODB_CONFIG_TABLE", "broker-config")
    )
    dataplane_table: str = field(
        default_factory=lambda: os.environ.get("DATAPLANE_TABLE", "broker-dataplane")
    )
    idempotency_table: str = field(
        default_factory=lambda: os.environ.get("IDEMPOTENCY_TABLE", "broker-idempotency")
    )
    queue_prefix: str = field(default_factory=lambda: os.environ.get("SQS_QUEUE_PREFIX", "broker"))
    slow_queue_name: str = field(default_factory=lambda: os.environ.get("EGRESS_SLOW_QUEUE", ""))
    cache_ttl: float = field(
        default_factory=lambda: float(os.environ.get("CONFIG_CACHE_TTL_SECONDS", "60"))
    )
    miss_ttl: float = field(
        default_factory=lambda: float(os.environ.get("CONFIG_MISS_TTL_SECONDS", "5"))
    )
    private_targets: tuple[str, ...] = field(
        default_factory=lambda: tuple(_list("CONSUMER_PRIVATE_TARGETS"))
    )
    # The portal's setting of the same name: what it accepts, the egress must deliver to.
    http_allowed_hosts: frozenset[str] = field(
        default_factory=lambda: frozenset(_list("CONSUMER_HTTP_ALLOWED_HOSTS"))
    )
    fernet_keys: tuple[str, ...] = field(
        default_factory=lambda: tuple(_list("SECRETS_FERNET_KEYS"))
    )
    secret_key: str = field(default_factory=lambda: os.environ.get("DJANGO_SECRET_KEY", ""))
    fernet_secret_arn: str = field(
        default_factory=lambda: os.environ.get("SECRETS_FERNET_SECRET_ARN", "")
    )
    record_ttl_days: int = field(
        default_factory=lambda: int(os.environ.get("DELIVERY_RECORD_TTL_DAYS", "7"))
    )

    @property
    def central_dlq_name(self) -> str:
        return f"{self.queue_prefix}-dlq"

    @property
    def central_fifo_dlq_name(self) -> str:
        """The dead letters of ordered subscriptions (a FIFO queue redrives only to a FIFO one)."""
        return f"{self.queue_prefix}-dlq.fifo"


_current: Settings | None = None


def get() -> Settings:
    global _current
    if _current is None:
        _current = Settings()
    return _current


def reload() -> Settings:
    """Re-reads the environment (tests and the local runner change it)."""
    global _current
    _current = Settings()
    return _current
