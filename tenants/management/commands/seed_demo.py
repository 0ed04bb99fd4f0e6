"""Demo data for `make run`: an operator, a support user and one active demo tenant with
its admin (idempotent)."""

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
        from tenants.services import tenant_url

        self.stdout.write(
            f"\nDemo logins (password for all: {password})\n"
            f"  operator  operator@example.com   {services.public_url('/')}\n"
            f"  support   support@example.com    (read-only operator)\n"
            f"  tenant    admin@demo.example.com {tenant_url(tenant, '/')}"
            f"  (tenant {tenant.slug} is {tenant.status})\n"
        )
