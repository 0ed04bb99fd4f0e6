import re
import socket
from datetime import timedelta
from urllib.parse import urlsplit, urlunsplit

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from broker import secrets
from broker.functions.shared import arn, ssrf
from broker.models import Consumer, ConsumerAuth, Kind
from broker.sync.contract import CONSUMER, SUBSCRIPTION
from core.errors import ApplicationError, reject_unknown_fields

from . import queues
from ._common import (
    bump,
    check_at_most,
    check_limit,
    current_tenant,
    delete_recorded,
    lock,
    quotas,
    raise_if,
    record_change,
    snapshot,
)

FIELDS = (
    "name",
    "kind",
    "url",
    "queue_arn",
    "enabled",
    "description",
    "auth_type",
    "auth_username",
    "timeout_ms",
    "delivery_concurrency",
    "retry_policy",
)
# Write-only inputs, stored encrypted.
SECRET_FIELDS = ("auth_secret",)
HEADER_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,63}$")
# Headers the egress sets itself; a consumer's auth header cannot replace them.
RESERVED_HEADERS = frozenset(
    {
        "host",
        "content-type",
        "content-length",
        "transfer-encoding",
        "connection",
        "user-agent",
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
    }
)
MIN_TIMEOUT_MS, MAX_TIMEOUT_MS = 100, 30_000


def _resolve(*args, **kwargs):
    # Looked up at call time so tests can point DNS at fixed answers.
    return socket.getaddrinfo(*args, **kwargs)


def check_consumer_url(url: str) -> None:
    """Raises ssrf.UnsafeURL for URLs the egress must never call."""
    ssrf.check_url(
        url,
        allow_http_hosts=settings.CONSUMER_HTTP_ALLOWED_HOSTS,
        private_targets=ssrf.parse_private_targets(settings.CONSUMER_PRIVATE_TARGETS),
        resolve=_resolve,
    )


def normalize_consumer_url(url: str) -> str:
    """The form a consumer URL is stored in: scheme and host in lower case (IDNA for
    non-ASCII names), no trailing dot, no default port, no fragment (never sent), a path
    of at least "/". Anything unparsable is returned stripped, for the checks to refuse."""
    url = (url or "").strip()
    try:
        parts = urlsplit(url)
        port = parts.port
        host = parts.hostname or ""
    except ValueError:
        return url
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not host or "@" in parts.netloc:
        return url
    host = host.rstrip(".")
    if ":" in host:  # an IPv6 literal
        netloc = f"[{host}]"
    else:
        try:
            netloc = host.encode("idna").decode("ascii").lower()
        except UnicodeError:
            return url
    if port is not None and port != (443 if scheme == "https" else 80):
        netloc = f"{netloc}:{port}"
    return urlunsplit((scheme, netloc, parts.path or "/", parts.query, ""))


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def normalize_retry_policy(
    policy, *, max_attempts: int, errors: dict, previous_attempts: int | None = None
) -> dict:
    """Fills defaults and checks bounds. Attempts never exceed the tier's cap, unless the
    stored policy already had as many (the cap was lowered since: kept, not raised)."""
    field = "retry_policy"
    if policy in (None, {}):
        policy = {"strategy": "exponential"}
    if not isinstance(policy, dict):
        errors.setdefault(field, []).append("An object.")
        return {}
    strategy = policy.get("strategy", "exponential")
    if strategy == "exponential":
        allowed = {"strategy", "base_seconds", "cap_seconds", "jitter", "max_attempts"}
        out = {
            "strategy": "exponential",
            "base_seconds": policy.get("base_seconds", 5),
            "cap_seconds": policy.get("cap_seconds", 3600),
            "jitter": policy.get("jitter", True),
            "max_attempts": policy.get("max_attempts", max_attempts),
        }
        base, cap, attempts = out["base_seconds"], out["cap_seconds"], out["max_attempts"]
        if not _is_int(base) or not 1 <= base <= 3600:
            errors.setdefault(field, []).append("base_seconds: an integer from 1 to 3600.")
        if not _is_int(cap) or not 1 <= cap <= 86_400:
            errors.setdefault(field, []).append("cap_seconds: an integer from 1 to 86400.")
        elif _is_int(base) and cap < base:
            errors.setdefault(field, []).append("cap_seconds must be at least base_seconds.")
        if not isinstance(out["jitter"], bool):
            errors.setdefault(field, []).append("jitter: true or false.")
    elif strategy == "schedule":
        # max_attempts follows from the schedule; it is stored, so it may come back as read.
        allowed = {"strategy", "schedule", "max_attempts"}
        schedule = policy.get("schedule")
        if (
            not isinstance(schedule, list)
            or not schedule
            or not all(_is_int(s) and 1 <= s <= 86_400 for s in schedule)
        ):
            errors.setdefault(field, []).append(
                "schedule: a non-empty list of delays in seconds (1 to 86400)."
            )
            return {}
        out = {"strategy": "schedule", "schedule": schedule, "max_attempts": len(schedule) + 1}
        attempts = out["max_attempts"]
        if policy.get("max_attempts", attempts) != attempts:
            errors.setdefault(field, []).append(
                f"max_attempts: the schedule's length plus one ({attempts}), or left out."
            )
    else:
        errors.setdefault(field, []).append("strategy: 'exponential' or 'schedule'.")
        return {}
    unknown = sorted(set(policy) - allowed)
    if unknown:
        errors.setdefault(field, []).append(f"Unknown keys: {', '.join(unknown)}.")
    if not _is_int(attempts) or attempts < 1:
        errors.setdefault(field, []).append("max_attempts: a positive integer.")
    elif attempts > max_attempts and not (
        previous_attempts is not None and attempts <= previous_attempts
    ):
        errors.setdefault(field, []).append(
            f"At most {max_attempts} delivery attempts on your plan (max_delivery_attempts)."
        )
    return out


def _validate(
    consumer: Consumer, *, auth_secret: str | None, errors: dict, before: dict | None = None
) -> None:
    """`before`: the stored values on an update (a plan limit then applies only to raising)."""
    before = before or {}
    if not consumer.name.strip():
        errors.setdefault("name", []).append("This field is required.")
    elif Consumer.objects.filter(name=consumer.name).exclude(pk=consumer.pk).exists():
        errors.setdefault("name", []).append("A consumer with this name already exists.")
    if consumer.kind == Kind.HTTPS:
        if not consumer.url:
            errors.setdefault("url", []).append("Required for an https consumer.")
        else:
            try:
                check_consumer_url(consumer.url)
            except ssrf.UnsafeURL as exc:
                errors.setdefault("url", []).append(str(exc))
        if consumer.queue_arn:
            errors.setdefault("queue_arn", []).append("Only sqs consumers have a queue.")
    elif consumer.kind == Kind.SQS:
        if not consumer.queue_arn:
            errors.setdefault("queue_arn", []).append("Required for an sqs consumer.")
        else:
            try:
                arn.parse_sqs_arn(consumer.queue_arn)
            except arn.ArnError as exc:
                errors.setdefault("queue_arn", []).append(str(exc))
            queues.check_queue_arn(
                consumer.queue_arn,
                role=queues.CONSUMER,
                obj=consumer,
                field="queue_arn",
                errors=errors,
            )
        if consumer.url:
            errors.setdefault("url", []).append("Only https consumers have a URL.")
        if consumer.auth_type != ConsumerAuth.NONE:
            errors.setdefault("auth_type", []).append("sqs consumers use IAM, not credentials.")
    else:
        errors.setdefault("kind", []).append(f"One of: {', '.join(Kind.values)}.")

    auth = consumer.auth_type
    has_secret = bool(auth_secret) or (auth_secret is None and consumer.auth_secret_encrypted)
    if auth not in ConsumerAuth.values:
        errors.setdefault("auth_type", []).append(f"One of: {', '.join(ConsumerAuth.values)}.")
    elif auth == ConsumerAuth.NONE:
        if consumer.auth_username or auth_secret:
            errors.setdefault("auth_type", []).append(
                "auth_username and auth_secret need auth_type header, basic or bearer."
            )
    else:
        if auth == ConsumerAuth.HEADER:
            name = consumer.auth_username
            if not HEADER_NAME_RE.match(name or ""):
                errors.setdefault("auth_username", []).append(
                    "The header name: letters, digits and hyphens."
                )
            elif name.lower() in RESERVED_HEADERS:
                errors.setdefault("auth_username", []).append(f"{name} is set by the broker.")
        elif auth == ConsumerAuth.BASIC:
            if not consumer.auth_username or ":" in consumer.auth_username:
                errors.setdefault("auth_username", []).append("A user name without ':'.")
        elif consumer.auth_username:
            errors.setdefault("auth_username", []).append("Bearer auth takes no user name.")
        if not has_secret:
            errors.setdefault("auth_secret", []).append(f"Required for {auth} auth.")
    if auth_secret is not None and len(auth_secret) > 4096:
        errors.setdefault("auth_secret", []).append("At most 4096 characters.")

    if not _is_int(consumer.timeout_ms) or not MIN_TIMEOUT_MS <= consumer.timeout_ms <= (
        MAX_TIMEOUT_MS
    ):
        errors.setdefault("timeout_ms", []).append(
            f"From {MIN_TIMEOUT_MS} to {MAX_TIMEOUT_MS} milliseconds."
        )
    check_at_most(
        field="delivery_concurrency",
        value=consumer.delivery_concurrency,
        quota="delivery_concurrency",
        errors=errors,
        previous=before.get("delivery_concurrency"),
    )
    stored_policy = before.get("retry_policy")
    consumer.retry_policy = normalize_retry_policy(
        consumer.retry_policy,
        max_attempts=quotas()["max_delivery_attempts"],
        errors=errors,
        previous_attempts=(stored_policy or {}).get("max_attempts"),
    )


def _store_auth_secret(consumer: Consumer, auth_secret: str | None) -> None:
    if consumer.auth_type == ConsumerAuth.NONE:
        consumer.auth_secret_encrypted = ""
    elif auth_secret:
        consumer.auth_secret_encrypted = secrets.encrypt(
            tenant_id=str(current_tenant().pk), plaintext=auth_secret
        )


@transaction.atomic
def consumer_create(
    *,
    actor,
    name: str,
    kind: str,
    url: str = "",
    queue_arn: str = "",
    enabled: bool = True,
    description: str = "",
    auth_type: str = ConsumerAuth.NONE,
    auth_username: str = "",
    auth_secret: str | None = None,
    timeout_ms: int = 10_000,
    delivery_concurrency: int | None = None,
    retry_policy: dict | None = None,
) -> tuple[Consumer, str | None]:
    """Creates a consumer; an https consumer gets a signing secret, returned once."""
    lock("consumer")
    check_limit(model=Consumer, quota="max_consumers", label="consumers")
    consumer = Consumer(
        name=(name or "").strip(),
        kind=kind,
        url=normalize_consumer_url(url),
        queue_arn=(queue_arn or "").strip(),
        enabled=enabled,
        description=description or "",
        auth_type=auth_type or ConsumerAuth.NONE,
        auth_username=(auth_username or "").strip(),
        timeout_ms=timeout_ms,
        delivery_concurrency=delivery_concurrency,
        retry_policy=retry_policy,
    )
    errors: dict = {}
    _validate(consumer, auth_secret=auth_secret, errors=errors)
    raise_if(errors)
    _store_auth_secret(consumer, auth_secret)
    signing_secret = None
    if consumer.kind == Kind.HTTPS:
        signing_secret = secrets.generate_signing_secret()
        consumer.signing_secret_encrypted = secrets.encrypt(
            tenant_id=str(current_tenant().pk), plaintext=signing_secret
        )
    try:
        with transaction.atomic():
            consumer.save()
    except IntegrityError:
        raise ApplicationError(
            "Invalid input.", fields={"name": ["A consumer with this name already exists."]}
        )
    queues.claim(role=queues.CONSUMER, obj=consumer, queue_arn=consumer.queue_arn)
    after = snapshot(consumer, FIELDS)
    if auth_secret:
        after["auth_secret"] = "set"
    record_change(
        actor=actor,
        action="consumer.create",
        object_type=CONSUMER,
        obj=consumer,
        before=None,
        after=after,
    )
    return consumer, signing_secret


@transaction.atomic
def consumer_update(
    *, actor, consumer: Consumer, auth_secret: str | None = None, **changes
) -> Consumer:
    """Changes any of FIELDS but `kind`; `auth_secret` replaces the stored credential."""
    reject_unknown_fields(changes, FIELDS)
    consumer = Consumer.objects.select_for_update().get(pk=consumer.pk)
    if "kind" in changes and changes["kind"] != consumer.kind:
        raise ApplicationError(
            "Invalid input.", fields={"kind": ["The kind of a consumer cannot change."]}
        )
    before = snapshot(consumer, FIELDS)
    for name, value in changes.items():
        if isinstance(value, str) and name != "description":
            value = normalize_consumer_url(value) if name == "url" else value.strip()
        setattr(consumer, name, value)
    if consumer.enabled and consumer.disabled_reason:  # enabled again: the reason is history
        consumer.disabled_reason, consumer.auto_disabled_at = "", None
    if consumer.auth_type != before["auth_type"] and auth_secret is None:
        consumer.auth_secret_encrypted = ""  # a credential never carries over to another scheme
    errors: dict = {}
    _validate(consumer, auth_secret=auth_secret, errors=errors, before=before)
    raise_if(errors)
    after = snapshot(consumer, FIELDS)
    if after == before and not auth_secret:
        return consumer
    _store_auth_secret(consumer, auth_secret)
    if auth_secret:
        before["auth_secret"], after["auth_secret"] = "set", "replaced"
    bump(consumer)
    consumer.save()
    queues.claim(role=queues.CONSUMER, obj=consumer, queue_arn=consumer.queue_arn)
    record_change(
        actor=actor,
        action="consumer.update",
        object_type=CONSUMER,
        obj=consumer,
        before=before,
        after=after,
    )
    return consumer


@transaction.atomic
def consumer_auto_disable(*, consumer: Consumer, reason: str) -> Consumer | None:
    """The platform disables a consumer whose endpoint keeps failing (no actor: the audit
    event is the platform's). None when it is already disabled or gone."""
    consumer = Consumer.objects.select_for_update().filter(pk=consumer.pk).first()
    if consumer is None or not consumer.enabled:
        return None
    before = snapshot(consumer, FIELDS)
    consumer.enabled = False
    consumer.disabled_reason = reason[:300]
    consumer.auto_disabled_at = timezone.now()
    bump(consumer)
    consumer.save()
    record_change(
        actor=None,
        action="consumer.auto_disable",
        object_type=CONSUMER,
        obj=consumer,
        before=before,
        after={**snapshot(consumer, FIELDS), "disabled_reason": consumer.disabled_reason},
    )
    return consumer


@transaction.atomic
def consumer_rotate_signing_secret(
    *, actor, consumer: Consumer, grace_seconds: int | None = None
) -> tuple[Consumer, str]:
    """New signing secret; the egress signs with both during the grace period (like Svix)."""
    consumer = Consumer.objects.select_for_update().get(pk=consumer.pk)
    if consumer.kind != Kind.HTTPS:
        raise ApplicationError("Only https consumers have a signing secret.", code="not_applicable")
    grace = (
        settings.SIGNING_SECRET_ROTATION_GRACE_SECONDS if grace_seconds is None else grace_seconds
    )
    secret = secrets.generate_signing_secret()
    consumer.previous_signing_secret_encrypted = consumer.signing_secret_encrypted
    consumer.previous_signing_secret_expires_at = timezone.now() + timedelta(seconds=grace)
    consumer.signing_secret_encrypted = secrets.encrypt(
        tenant_id=str(current_tenant().pk), plaintext=secret
    )
    bump(consumer)
    consumer.save()
    record_change(
        actor=actor,
        action="consumer.rotate_signing_secret",
        object_type=CONSUMER,
        obj=consumer,
        before={"signing_secret": "previous"},
        after={
            "signing_secret": "rotated",
            "previous_valid_until": consumer.previous_signing_secret_expires_at.isoformat(),
        },
    )
    return consumer, secret


@transaction.atomic
def consumer_delete(*, actor, consumer: Consumer) -> None:
    """Deletes the consumer and its subscriptions (each gets its own tombstone and audit)."""
    from .subscriptions import FIELDS as SUB_FIELDS

    consumer = Consumer.objects.select_for_update().get(pk=consumer.pk)
    for sub in consumer.subscriptions.select_for_update():
        delete_recorded(
            actor=actor, object_type=SUBSCRIPTION, obj=sub, before=snapshot(sub, SUB_FIELDS)
        )
    queues.release(role=queues.CONSUMER, obj=consumer)
    delete_recorded(
        actor=actor, object_type=CONSUMER, obj=consumer, before=snapshot(consumer, FIELDS)
    )
