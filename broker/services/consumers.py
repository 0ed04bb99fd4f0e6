import re
import socket
from datetime import timedelta
from urllib.parse import urlsplit, urlunsplit

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from broker import secrets
from broker.functions.shared import ssrf
from broker.models import Consumer, ConsumerAuth, Kind
from broker.sync.contract import CONSUMER, SUBSCRIPTION
from core.audit_actions import AuditAction
from core.errors import ApplicationError

from . import queues
from ._common import (
    Config,
    arn_problem,
    at_most,
    begin_write,
    bump,
    check,
    create,
    current_tenant,
    delete_recorded,
    problem,
    quotas,
    record_change,
    snapshot,
    unique_name,
    update,
)
from .retry_policy import normalize_retry_policy
from .subscriptions import FIELDS as SUB_FIELDS

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
    "rate_limit_per_second",
)
# Write-only inputs, stored encrypted.
SECRET_FIELDS = ("auth_secret",)
MAX_AUTH_SECRET_LENGTH = 4096
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


def _target_rules(c: Consumer) -> list[tuple[str, bool, str | None]]:
    if c.kind == Kind.HTTPS:
        return [
            ("url", not c.url, "Required for an https consumer."),
            (
                "url",
                bool(c.url),
                lambda: problem(check_consumer_url, c.url, refused=ssrf.UnsafeURL),
            ),
            ("queue_arn", bool(c.queue_arn), "Only sqs consumers have a queue."),
        ]
    if c.kind == Kind.SQS:
        return [
            ("queue_arn", not c.queue_arn, "Required for an sqs consumer."),
            (
                "queue_arn",
                bool(c.queue_arn),
                lambda: arn_problem(c.queue_arn),
            ),
            (
                "queue_arn",
                bool(c.queue_arn),
                lambda: queues.queue_arn_problem(c.queue_arn, role=queues.CONSUMER, obj=c),
            ),
            ("url", bool(c.url), "Only https consumers have a URL."),
            (
                "auth_type",
                c.auth_type != ConsumerAuth.NONE,
                "sqs consumers use IAM, not credentials.",
            ),
        ]
    return [("kind", True, f"One of: {', '.join(Kind.values)}.")]


def _header_name_problem(name: str) -> str | None:
    if not HEADER_NAME_RE.match(name or ""):
        return "The header name: letters, digits and hyphens."
    return f"{name} is set by the broker." if name.lower() in RESERVED_HEADERS else None


def _auth_rules(c: Consumer, auth_secret: str | None) -> list[tuple[str, bool, str | None]]:
    auth, user = c.auth_type, c.auth_username
    has_secret = bool(auth_secret) or (auth_secret is None and bool(c.auth_secret_encrypted))
    rules = [
        (
            "auth_secret",
            auth_secret is not None and len(auth_secret) > MAX_AUTH_SECRET_LENGTH,
            f"At most {MAX_AUTH_SECRET_LENGTH} characters.",
        )
    ]
    if auth not in ConsumerAuth.values:
        return [("auth_type", True, f"One of: {', '.join(ConsumerAuth.values)}."), *rules]
    if auth == ConsumerAuth.NONE:
        message = "auth_username and auth_secret need auth_type header, basic or bearer."
        return [("auth_type", bool(user or auth_secret), message), *rules]
    user_rule = {
        ConsumerAuth.HEADER: (True, _header_name_problem(user)),
        ConsumerAuth.BASIC: (not user or ":" in user, "A user name without ':'."),
        ConsumerAuth.BEARER: (bool(user), "Bearer auth takes no user name."),
    }[auth]
    return [
        ("auth_username", *user_rule),
        ("auth_secret", not has_secret, f"Required for {auth} auth."),
        *rules,
    ]


def _rate_rules(c: Consumer, before: dict) -> list:
    """A whole number of deliveries per second, at most the tier's bound; null: no limit."""
    rate = c.rate_limit_per_second
    return [
        (
            "rate_limit_per_second",
            rate is not None and not (_is_int(rate) and rate >= 1),
            "A whole number of deliveries per second, at least 1 (null: no limit).",
        ),
        at_most(
            field="rate_limit_per_second",
            value=rate,
            quota="max_consumer_rate_per_second",
            previous=before.get("rate_limit_per_second"),
        ),
    ]


def _timeout_rules(c: Consumer) -> list[tuple[str, bool, str | None]]:
    in_range = _is_int(c.timeout_ms) and MIN_TIMEOUT_MS <= c.timeout_ms <= MAX_TIMEOUT_MS
    return [
        ("timeout_ms", not in_range, f"From {MIN_TIMEOUT_MS} to {MAX_TIMEOUT_MS} milliseconds.")
    ]


CONSUMERS = Config(
    model=Consumer,
    object_type=CONSUMER,
    fields=FIELDS,
    plural="consumers",
    quota="max_consumers",
    taken="A consumer with this name already exists.",
    fixed={"kind": "The kind of a consumer cannot change."},
)


def _validate(
    consumer: Consumer, errors: dict, before: dict | None = None, *, auth_secret: str | None
) -> None:
    """`before`: the stored values on an update (a plan limit then applies only to raising)."""
    before = before or {}
    check(
        [
            *unique_name(Consumer, consumer, taken=CONSUMERS.taken),
            *_target_rules(consumer),
            *_auth_rules(consumer, auth_secret),
            *_timeout_rules(consumer),
            at_most(
                field="delivery_concurrency",
                value=consumer.delivery_concurrency,
                quota="delivery_concurrency",
                previous=before.get("delivery_concurrency"),
            ),
            *_rate_rules(consumer, before),
        ],
        errors,
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
    rate_limit_per_second: int | None = None,
) -> tuple[Consumer, str | None]:
    """Creates a consumer; an https consumer gets a signing secret, returned once."""
    signing_secret = secrets.generate_signing_secret() if kind == Kind.HTTPS else None

    def store_secrets(consumer: Consumer) -> None:
        _store_auth_secret(consumer, auth_secret)
        if signing_secret:
            consumer.signing_secret_encrypted = secrets.encrypt(
                tenant_id=str(current_tenant().pk), plaintext=signing_secret
            )

    consumer = create(
        CONSUMERS,
        actor=actor,
        build=lambda: Consumer(
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
            rate_limit_per_second=rate_limit_per_second,
        ),
        validate=lambda consumer, errors: _validate(consumer, errors, auth_secret=auth_secret),
        before_save=store_secrets,
        after_save=_claim_queue,
        audit_after={"auth_secret": "set"} if auth_secret else None,
    )
    return consumer, signing_secret


@transaction.atomic
def consumer_update(
    *, actor, consumer: Consumer, auth_secret: str | None = None, **changes
) -> Consumer:
    """Changes any of FIELDS but `kind`; `auth_secret` replaces the stored credential."""

    def adjust(consumer: Consumer, before: dict) -> None:
        if consumer.enabled and consumer.disabled_reason:  # enabled again: the reason is history
            consumer.disabled_reason, consumer.auto_disabled_at = "", None
        if consumer.auth_type != before["auth_type"] and auth_secret is None:
            consumer.auth_secret_encrypted = ""  # a credential never carries over to another scheme

    return update(
        CONSUMERS,
        consumer,
        actor=actor,
        changes=changes,
        clean=_clean,
        adjust=adjust,
        force=bool(auth_secret),
        validate=lambda c, errors, before: _validate(c, errors, before, auth_secret=auth_secret),
        before_save=lambda c: _store_auth_secret(c, auth_secret),
        after_save=_claim_queue,
        audit_notes=({"auth_secret": "set"}, {"auth_secret": "replaced"}) if auth_secret else None,
    )


def _clean(name: str, value):
    if isinstance(value, str) and name != "description":
        return normalize_consumer_url(value) if name == "url" else value.strip()
    return value


def _claim_queue(consumer: Consumer) -> None:
    queues.claim(role=queues.CONSUMER, obj=consumer, queue_arn=consumer.queue_arn)


@transaction.atomic
def consumer_auto_disable(*, consumer: Consumer, reason: str) -> Consumer | None:
    """The platform disables a consumer whose endpoint keeps failing (no actor: the audit
    event is the platform's). None when it is already disabled or gone."""
    begin_write()
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
        action=AuditAction.CONSUMER_AUTO_DISABLE,
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
        action=AuditAction.CONSUMER_ROTATE_SIGNING_SECRET,
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
    begin_write()
    consumer = Consumer.objects.select_for_update().get(pk=consumer.pk)
    for sub in consumer.subscriptions.select_for_update():
        delete_recorded(
            actor=actor, object_type=SUBSCRIPTION, obj=sub, before=snapshot(sub, SUB_FIELDS)
        )
    queues.release(role=queues.CONSUMER, obj=consumer)
    delete_recorded(
        actor=actor, object_type=CONSUMER, obj=consumer, before=snapshot(consumer, FIELDS)
    )
