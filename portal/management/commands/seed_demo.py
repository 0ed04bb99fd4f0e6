"""Demo data for `make run`: an operator, a support user and one active demo tenant with
its admin and a little broker configuration (idempotent)."""

import os

from django.core.management.base import BaseCommand
from django.db import transaction

from tenants import services
from tenants.models import Membership, PlatformRole, Tenant, TenantRole, TenantStatus, User


def _user(email, password, **extra):
    user, created = User.objects.get_or_create(email=email, defaults=extra)
    if created:
        user.set_password(password)
        user.save()
    return user


def _demo_configuration(tenant, admin) -> None:
    """A producer, a consumer (an SQS queue: no outbound HTTP needed) and a subscription, made
    through the services like any change (so they reach DynamoDB through the relay)."""
    from django_tenants.utils import tenant_context

    from broker import services as broker
    from broker.models import Consumer, Producer

    with tenant_context(tenant):
        if not Producer.objects.filter(name="web-shop").exists():
            broker.producer_create(
                actor=admin, name="web-shop", kind="https", allowed_event_types=["order.*"]
            )
        if not Consumer.objects.filter(name="warehouse").exists():
            consumer, _ = broker.consumer_create(
                actor=admin,
                name="warehouse",
                kind="sqs",
                queue_arn="arn:aws:sqs:eu-west-1:123456789012:warehouse-orders",
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
        tenant = Tenant.objects.filter(slug="demo").first()
        if tenant is None:
            with transaction.atomic():
                tenant = services.tenant_onboard(
                    name="Demo Shop",
                    slug="demo",
                    tier="standard",
                    admin_email="admin@demo.example.com",
                )
        # The demo admin gets a password and membership directly (no invitation to accept).
        admin = _user("admin@demo.example.com", password, full_name="Dana Admin")
        Membership.objects.get_or_create(
            user=admin, tenant=tenant, defaults={"role": TenantRole.ADMIN}
        )
        if tenant.status == TenantStatus.PROVISIONING:
            tenant = services.tenant_provision(tenant_id=tenant.pk) or Tenant.objects.get(
                pk=tenant.pk
            )
        if tenant.status == TenantStatus.ACTIVE:
            _demo_configuration(tenant, admin)
        from tenants.services import tenant_url

        self.stdout.write(
            f"\nDemo logins (password for all: {password})\n"
            f"  operator  operator@example.com   {services.public_url('/')}\n"
            f"  support   support@example.com    (read-only operator)\n"
            f"  tenant    admin@demo.example.com {tenant_url(tenant, '/')}"
            f"  (tenant {tenant.slug} is {tenant.status})\n"
        )
