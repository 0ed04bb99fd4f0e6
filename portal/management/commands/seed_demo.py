"""Demo data for `make run`: an operator, a support user and two active demo tenants with
their admins and a little broker configuration (idempotent), including what the local data
plane needs: producer keys, consumers on the demo receiver (var/demo/, see
`_data_plane_demo`). `demo` is a pool tenant (standard tier, the shared delivery queues);
`silo` a dedicated one: its events go through its own delivery queue, read by the egress
only because provisioning mapped that queue to it."""

import os
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import transaction
from django_tenants.utils import tenant_context

from broker import secrets
from broker import services as broker
from broker.functions.shared.secrets import SecretError
from broker.models import Consumer, Producer
from broker.services.producers import hash_key
from core import aws
from core.errors import ApplicationError
from tenants import services
from tenants.models import Membership, PlatformRole, Tenant, TenantRole, TenantStatus, User
from tenants.services import tenant_url


def _user(email, password, **extra):
    user, created = User.objects.get_or_create(email=email, defaults=extra)
    if created:
        user.set_password(password)
        user.save()
    return user


def _demo_configuration(tenant, admin) -> None:
    """A consumer (an SQS queue: no outbound HTTP needed), a subscription and an event type,
    made through the services like any change (so they reach DynamoDB through the relay)."""
    with tenant_context(tenant):
        if not Consumer.objects.filter(name="warehouse").exists():
            consumer, _ = broker.consumer_create(
                actor=admin,
                name="warehouse",
                kind="sqs",
                queue_arn=f"arn:aws:sqs:{settings.AWS_REGION}:{settings.AWS_ACCOUNT_ID}:"
                f"{WAREHOUSE_QUEUE}",
            )
            broker.subscription_create(
                actor=admin,
                consumer=consumer,
                event_type="order.*",
                filter={"data": {"total": [{"numeric": [">", 0]}]}},
            )
            broker.event_type_create(
                actor=admin, name="order.created", description="An order was placed"
            )


# --- the data plane's demo (make run): files under var/demo/ that scripts/run.sh reads ------

RECEIVER_URL = "http://127.0.0.1:{port}/webhooks/{slug}"
FAILING_URL = "http://127.0.0.1:{port}/fail/{slug}"
LEDGER_URL = "http://127.0.0.1:{port}/webhooks/{slug}/ledger"
# The ledger's subscription is ordered: one order's events arrive in the order they were sent,
# an order's failed head holds its later events (docs/data-plane.md, "Ordering").
ORDERED_BY_ORDER = {
    "ordered": True,
    "ordering_key_path": "data.order_id",
    "on_head_failure": "hold",
}
# Tenants' queues carry the data plane's TenantQueuePrefix (its roles allow no other).
WAREHOUSE_QUEUE = "tenant-warehouse-orders"
# (slug, name, tier, admin, file of its producer's key under var/demo/)
DEMO_TENANTS = (
    ("demo", "Demo Shop", "standard", "admin@demo.example.com", "api-key"),
    ("silo", "Silo Logistics", "dedicated", "admin@silo.example.com", "silo-api-key"),
)
# The failing consumer's attempts are seconds apart, so its dead letters appear quickly.
FAILING_RETRY = {"strategy": "schedule", "schedule": [2, 5, 10]}


def demo_dir() -> Path:
    return Path(os.environ.get("DEMO_DIR") or settings.BASE_DIR / "var" / "demo")


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_text(text)


def _demo_api_key(producer, admin, key_file: str) -> tuple[str, bool]:
    """The producer's key kept in var/demo/<key_file>: reused while it is still valid, else a
    new one (a key is shown only when it is issued). Returns (key, issued now)."""
    path = demo_dir() / key_file
    known = path.read_text().strip() if path.exists() else ""
    if (
        known
        and producer.api_keys.filter(
            key_hash=hash_key(known), revoked_at__isnull=True, expires_at__isnull=True
        ).exists()
    ):
        return known, False
    with transaction.atomic():
        _, key = broker.producer_rotate_key(actor=admin, producer=producer, grace_seconds=0)
    _write_private(path, key + "\n")
    return key, True


def _signing_secret(tenant, admin, consumer) -> str:
    """The consumer's current signing secret in clear. One encrypted under another key (the
    database outlived the DJANGO_SECRET_KEY / SECRETS_FERNET_KEYS it was made with) is replaced
    by a new one, which nothing could verify anyway."""
    try:
        return secrets.decrypt(tenant_id=str(tenant.pk), token=consumer.signing_secret_encrypted)
    except SecretError:
        with transaction.atomic():
            _, secret = broker.consumer_rotate_signing_secret(
                actor=admin, consumer=consumer, grace_seconds=0
            )
        return secret


def _data_plane_demo(tenant, admin, stdout, *, key_file: str) -> list[str]:
    """For the local data plane (runner + demo receiver, see scripts/run.sh): the web-shop
    producer's key in var/demo/<key_file>, a consumer on the demo receiver, one on its /fail
    path (dead letters for the demo) and one whose subscription is ordered by `data.order_id`
    (order-ledger), all subscribed to order.*, and the warehouse
    consumer's queue on the moto server, so its deliveries succeed. Returns the consumers'
    signing secrets, for the receiver."""
    port = int(os.environ.get("RECEIVER_PORT", "8200"))
    with tenant_context(tenant):
        if not Producer.objects.filter(name="web-shop").exists():
            broker.producer_create(
                actor=admin, name="web-shop", kind="https", allowed_event_types=["order.*"]
            )
        consumers = {}
        for name, url, retry, ordering in (
            ("demo-receiver", RECEIVER_URL.format(port=port, slug=tenant.slug), None, {}),
            ("always-failing", FAILING_URL.format(port=port, slug=tenant.slug), FAILING_RETRY, {}),
            (
                "order-ledger",
                LEDGER_URL.format(port=port, slug=tenant.slug),
                None,
                ORDERED_BY_ORDER,
            ),
        ):
            consumer = Consumer.objects.filter(name=name).first()
            if consumer is None:
                try:
                    with transaction.atomic():
                        consumer, _ = broker.consumer_create(
                            actor=admin,
                            name=name,
                            kind="https",
                            url=url,
                            timeout_ms=5000,
                            retry_policy=retry,
                        )
                        broker.subscription_create(
                            actor=admin, consumer=consumer, event_type="order.*", **ordering
                        )
                except ApplicationError as exc:
                    stdout.write(
                        f"  (no {name} consumer: {exc} {getattr(exc, 'fields', '')}; "
                        "set CONSUMER_PRIVATE_TARGETS=127.0.0.1:8200-8299 as make run does)\n"
                    )
                    continue
            consumers[name] = consumer
        # Every consumer posts to the receiver: it verifies any of their signatures.
        plain = [_signing_secret(tenant, admin, c) for c in consumers.values()]
        producer = Producer.objects.get(name="web-shop")
        key, issued = _demo_api_key(producer, admin, key_file)
    if issued:
        stdout.write(
            f"\nDemo producer web-shop of {tenant.slug}: API key (shown once, kept in "
            f"{demo_dir()}/{key_file})\n  {key}\n"
        )
    return plain


class Command(BaseCommand):
    help = "Create demo users and the demo tenant (safe to run again)."

    def handle(self, *args, **options):
        password = os.environ.get("DEMO_PASSWORD", "demo-pass-2026")
        _user(
            "operator@example.com",
            password,
            platform_role=PlatformRole.OPERATOR,
            is_staff=True,
            is_superuser=True,
            full_name="Olivia Operator",
        )
        _user(
            "support@example.com",
            password,
            platform_role=PlatformRole.SUPPORT,
            is_staff=True,
            full_name="Sam Support",
        )
        logins, plain = [], []
        for slug, name, tier, admin_email, key_file in DEMO_TENANTS:
            tenant = Tenant.objects.filter(slug=slug).first()
            if tenant is None:
                with transaction.atomic():
                    tenant = services.tenant_onboard(
                        name=name, slug=slug, tier=tier, admin_email=admin_email
                    )
            # The demo admin gets a password and membership directly (no invitation).
            admin = _user(admin_email, password, full_name=f"{name} Admin")
            Membership.objects.get_or_create(
                user=admin, tenant=tenant, defaults={"role": TenantRole.ADMIN}
            )
            if tenant.status == TenantStatus.PROVISIONING:
                tenant = services.tenant_provision(tenant_id=tenant.pk) or Tenant.objects.get(
                    pk=tenant.pk
                )
            if tenant.status == TenantStatus.ACTIVE:
                if slug == "demo":
                    _demo_configuration(tenant, admin)
                plain += _data_plane_demo(tenant, admin, self.stdout, key_file=key_file)
            logins.append(
                f"  tenant    {admin_email:<23}{tenant_url(tenant, '/')}"
                f"  ({tenant.tier.name}, {tenant.status})\n"
            )
        if plain:
            _write_private(demo_dir() / "receiver-secrets", "\n".join(plain) + "\n")
        if settings.AWS_ENDPOINT_URL:  # an emulator: the warehouse's queue is ours to create
            aws.queue_create(name=WAREHOUSE_QUEUE)
        self.stdout.write(
            f"\nDemo logins (password for all: {password})\n"
            f"  operator  operator@example.com   {services.public_url('/')}\n"
            f"  support   support@example.com    (read-only operator)\n" + "".join(logins)
        )
