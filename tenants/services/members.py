"""Members and invitations of a tenant; every change is audited in the tenant's log."""

import hashlib
import secrets

from django.conf import settings
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from core.audit_actions import AuditAction
from core.errors import ApplicationError

from .. import hooks
from ..models import Invitation, Membership, Tenant, TenantRole, User
from ._common import _actor, tenant_url


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _invite_first_admin(tenant: Tenant) -> None:
    already = Invitation.objects.filter(tenant=tenant, email=tenant.admin_email).exists()
    member = Membership.objects.filter(tenant=tenant, user__email=tenant.admin_email).exists()
    if tenant.admin_email and not already and not member:
        _create_invitation(tenant=tenant, email=tenant.admin_email, role=TenantRole.ADMIN)


def _create_invitation(*, tenant: Tenant, email: str, role: str, invited_by=None):
    token = secrets.token_urlsafe(32)
    invitation = Invitation.objects.create(
        tenant=tenant,
        email=email,
        role=role,
        token_hash=_token_hash(token),
        invited_by=_actor(invited_by),
        expires_at=timezone.now() + settings.INVITATION_TTL,
    )
    link = tenant_url(tenant, f"/invitations/{token}/")
    subject = f"You are invited to {tenant.name} on the event broker portal"
    body = (
        f"You have been invited to join {tenant.name} as {invitation.get_role_display()}.\n\n"
        f"Accept the invitation and set your password here (valid until "
        f"{invitation.expires_at:%Y-%m-%d %H:%M} UTC):\n\n{link}\n"
    )
    transaction.on_commit(
        lambda: send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, [email], fail_silently=False)
    )
    return invitation, token


@transaction.atomic
def member_invite(*, tenant: Tenant, email: str, role: str, invited_by=None):
    """Invites `email` to the tenant; a new invitation replaces a pending one."""
    errors = {}
    email = (email or "").strip().lower()
    try:
        validate_email(email)
    except ValidationError:
        errors["email"] = ["Enter a valid email address."]
    if role not in TenantRole.values:
        errors["role"] = [f"Unknown role. Roles: {', '.join(TenantRole.values)}."]
    if errors:
        raise ApplicationError("Invalid invitation.", fields=errors)
    if Membership.objects.filter(tenant=tenant, user__email=email).exists():
        raise ApplicationError(
            "This person is already a member.",
            code="already_member",
            fields={"email": ["Already a member of this tenant."]},
        )
    Invitation.objects.filter(
        tenant=tenant, email=email, accepted_at__isnull=True, revoked_at__isnull=True
    ).update(revoked_at=timezone.now())
    try:
        with transaction.atomic():
            invitation, token = _create_invitation(
                tenant=tenant, email=email, role=role, invited_by=invited_by
            )
    except IntegrityError:  # a concurrent invite of the same address committed first
        raise ApplicationError(
            "This address is being invited by another request.",
            code="conflict",
            status_code=409,
            fields={"email": ["An invitation to this address was just sent."]},
        )
    hooks.tenant_audit(
        tenant,
        actor=invited_by,
        action=AuditAction.MEMBER_INVITE,
        object_type="invitation",
        object_id=invitation.pk,
        after={"email": email, "role": role},
    )
    return invitation


def invitation_get(*, tenant: Tenant, token: str) -> Invitation:
    invitation = Invitation.objects.filter(tenant=tenant, token_hash=_token_hash(token)).first()
    if invitation is None or not invitation.is_pending:
        raise ApplicationError(
            "This invitation is invalid, used or expired.",
            code="invalid_invitation",
            status_code=404,
        )
    return invitation


@transaction.atomic
def invitation_accept(
    *, tenant: Tenant, token: str, password: str, full_name: str = ""
) -> Membership:
    """Accepts an invitation. A new user sets a password; an existing user proves theirs."""
    invitation = invitation_get(tenant=tenant, token=token)
    invitation = Invitation.objects.select_for_update().get(pk=invitation.pk)
    if not invitation.is_pending:
        raise ApplicationError(
            "This invitation is invalid, used or expired.", code="invalid_invitation"
        )
    user = User.objects.filter(email=invitation.email).first()
    if user is None:
        try:
            validate_password(password, User(email=invitation.email, full_name=full_name))
        except ValidationError as exc:
            raise ApplicationError("Choose a stronger password.", fields={"password": exc.messages})
        user = User.objects.create_user(invitation.email, password, full_name=full_name.strip())
    elif not user.check_password(password):
        raise ApplicationError(
            "An account with this email exists: enter its password.",
            fields={"password": ["Wrong password for the existing account."]},
        )
    membership, _ = Membership.objects.get_or_create(
        user=user, tenant=tenant, defaults={"role": invitation.role}
    )
    invitation.accepted_at = timezone.now()
    invitation.save(update_fields=["accepted_at"])
    hooks.tenant_audit(
        tenant,
        actor=user,
        action=AuditAction.MEMBER_JOIN,
        object_type="membership",
        object_id=membership.pk,
        after={"email": user.email, "role": membership.role},
    )
    return membership


def membership_change_error(membership: Membership, *, new_role: str | None) -> str | None:
    """Why this change (None: a removal) would leave the tenant without an admin, or None.
    For forms; the services check again under lock."""
    if membership.role != TenantRole.ADMIN or new_role == TenantRole.ADMIN:
        return None
    admins = Membership.objects.filter(tenant_id=membership.tenant_id, role=TenantRole.ADMIN)
    return "A tenant must keep at least one admin." if admins.count() <= 1 else None


def _guard_last_admin(membership: Membership, *, new_role: str | None) -> None:
    if membership.role != TenantRole.ADMIN or new_role == TenantRole.ADMIN:
        return
    admins = Membership.objects.select_for_update().filter(
        tenant_id=membership.tenant_id, role=TenantRole.ADMIN
    )
    if len(admins.values_list("pk", flat=True)) <= 1:
        raise ApplicationError(
            "A tenant must keep at least one admin.",
            code="last_admin",
        )


@transaction.atomic
def membership_change_role(*, membership: Membership, role: str, actor=None) -> Membership:
    if role not in TenantRole.values:
        raise ApplicationError(
            "Unknown role.",
            fields={"role": [f"Unknown role. Roles: {', '.join(TenantRole.values)}."]},
        )
    membership = (
        Membership.objects.select_for_update()
        .select_related("tenant", "user")
        .get(pk=membership.pk)
    )
    _guard_last_admin(membership, new_role=role)
    before = membership.role
    membership.role = role
    membership.save(update_fields=["role"])
    if role != before:
        user_end_tokens(user=membership.user)  # their tokens carry the old role
    hooks.tenant_audit(
        membership.tenant,
        actor=actor,
        action=AuditAction.MEMBER_CHANGE_ROLE,
        object_type="membership",
        object_id=membership.pk,
        before={"role": before},
        after={"role": role},
    )
    return membership


@transaction.atomic
def membership_remove(*, membership: Membership, actor=None) -> None:
    membership = (
        Membership.objects.select_for_update()
        .select_related("tenant", "user")
        .get(pk=membership.pk)
    )
    _guard_last_admin(membership, new_role=None)
    hooks.tenant_audit(
        membership.tenant,
        actor=actor,
        action=AuditAction.MEMBER_REMOVE,
        object_type="membership",
        object_id=membership.pk,
        before={"email": membership.user.email, "role": membership.role},
    )
    membership.delete()
    user_end_tokens(user=membership.user)


def user_end_tokens(*, user: User) -> None:
    """Ends every API token of `user` (access and refresh, on every host): they carry the
    generation they were minted at, and the authentication refuses an older one."""
    User.objects.filter(pk=user.pk).update(token_generation=F("token_generation") + 1)
