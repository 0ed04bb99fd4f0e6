import hashlib

from django.db.models import Count, Q

from .models import Invitation, Membership, Tenant, TenantStatus, User


def tenant_list():
    """Every onboarded tenant (never the public schema's row), with what lists show."""
    return (
        Tenant.objects.exclude(schema_name="public")
        .select_related("tier")
        .prefetch_related("domains")
        .annotate(member_count=Count("memberships", distinct=True))
    )


def tenant_get(*, tenant_id) -> Tenant | None:
    return tenant_list().filter(pk=tenant_id).first()


def membership_list(*, tenant):
    return (
        Membership.objects.filter(tenant=tenant).select_related("user").order_by("created_at", "id")
    )


def live_tenants():
    return tenant_list().filter(Q(status=TenantStatus.ACTIVE) | Q(status=TenantStatus.SUSPENDED))


def invitation_by_token(*, tenant, token: str):
    """The invitation a link points to, whatever its state (to explain a used or expired
    link); None for an unknown token."""
    digest = hashlib.sha256(token.encode()).hexdigest()
    return Invitation.objects.filter(tenant=tenant, token_hash=digest).first()


def user_exists(*, email: str) -> bool:
    return User.objects.filter(email=(email or "").strip().lower()).exists()
