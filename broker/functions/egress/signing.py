"""Standard Webhooks signatures and the consumer's auth header, from its encrypted secrets.

Secret references (`kms1:…` / `fernet1:…`, docs/dynamodb-contract.md) are decrypted with the
shared `broker.functions.shared.secrets` module and kept in clear in this process for
`SECRET_CACHE_SECONDS`, keyed by (tenant id, reference): a warm function does not call KMS
per delivery, and a rotated secret is a new reference, so it is picked up at once. Clear
values never reach a log line or an exception message.
"""

import base64
import functools
import threading
import time
from datetime import UTC, datetime

from standardwebhooks import Webhook

from broker.functions import aws, settings
from broker.functions.shared import secrets

SECRET_CACHE_SECONDS = 300.0
_MAX_CACHED = 10_000
_lock = threading.Lock()
_cache: dict[tuple[str, str], tuple[float, str]] = {}
USER_AGENT = "broker-egress/1"


_fernet_lock = threading.Lock()


def _fernet(keys: tuple[str, ...], secret_key: str, secret_arn: str = ""):
    # One read of the secret per process, even when a cold start's concurrent attempts all
    # need it at once (lru_cache alone lets each of them call Secrets Manager).
    with _fernet_lock:
        return _fernet_cached(keys, secret_key, secret_arn)


@functools.lru_cache(maxsize=4)
def _fernet_cached(keys: tuple[str, ...], secret_key: str, secret_arn: str = ""):
    if secret_arn:
        # The deployed way (the stack's SecretsArn): the portal's Fernet keys, comma-separated,
        # read once per process from Secrets Manager. The process restarts to see a rotation.
        value = aws.client("secretsmanager").get_secret_value(SecretId=secret_arn)["SecretString"]
        keys = tuple(k for k in value.split(",") if k.strip())
        if not keys:
            raise secrets.SecretError("The secret of Fernet keys is empty.")
    return secrets.fernet(keys=keys, secret_key=secret_key)


def clear_cache() -> None:
    with _lock:
        _cache.clear()


def reveal(tenant_id: str, ref: str) -> str:
    """The clear value of a secret reference; raises secrets.SecretError if it cannot be."""
    key = (str(tenant_id), ref)
    now = time.monotonic()
    with _lock:
        hit = _cache.get(key)
    if hit is not None and hit[0] > now:
        return hit[1]
    s = settings.get()
    value = secrets.decrypt(
        tenant_id=str(tenant_id),
        token=ref,
        kms=aws.kms,
        fernet_keys=lambda: _fernet(s.fernet_keys, s.secret_key, s.fernet_secret_arn),
    )
    with _lock:
        if len(_cache) >= _MAX_CACHED:
            _cache.clear()
        _cache[key] = (now + SECRET_CACHE_SECONDS, value)
    return value


def signing_secrets(consumer: dict, *, now: float | None = None) -> list[str]:
    """Every valid signing secret of the consumer item: the current one and, until its
    `expires_at`, the previous one (a rotation's grace period)."""
    now = time.time() if now is None else now
    out = []
    for entry in consumer.get("signing_secrets") or []:
        ref = entry.get("secret_ref")
        expires_at = entry.get("expires_at")
        if ref and (expires_at is None or float(expires_at) > now):
            out.append(reveal(consumer["tenant_id"], ref))
    return out


def webhook_headers(
    *, delivery_id: str, body: str, secrets_: list[str], at: datetime | None = None
) -> dict[str, str]:
    """`webhook-id`, `webhook-timestamp` and, when the consumer has secrets,
    `webhook-signature` with one `v1,<base64>` per secret, space-separated."""
    at = at or datetime.now(UTC)
    headers = {
        "webhook-id": delivery_id,
        "webhook-timestamp": str(int(at.timestamp())),
    }
    if secrets_:
        headers["webhook-signature"] = " ".join(
            Webhook(secret).sign(delivery_id, at, body) for secret in secrets_
        )
    return headers


def auth_headers(consumer: dict) -> dict[str, str]:
    """The consumer's own credentials: `auth` = {type: none|header|basic|bearer, name?,
    secret_ref?}."""
    auth = consumer.get("auth") or {}
    kind = auth.get("type", "none")
    if kind == "none" or not auth.get("secret_ref"):
        return {}
    secret = reveal(consumer["tenant_id"], auth["secret_ref"])
    if kind == "header":
        return {auth["name"]: secret}
    if kind == "basic":
        token = base64.b64encode(f"{auth.get('name', '')}:{secret}".encode()).decode()
        return {"Authorization": f"Basic {token}"}
    if kind == "bearer":
        return {"Authorization": f"Bearer {secret}"}
    raise secrets.SecretError(f"Unknown auth type {kind!r}.")
