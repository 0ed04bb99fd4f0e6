"""Platform users (operators, support, tenant members): creation and the fields an operator
changes. Every change is in the platform's audit log; a change of role or access ends the
user's API tokens (they carry the old claims)."""

from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import transaction

from core.audit_actions import AuditAction
from core.errors import ApplicationError, reject_unknown_fields

from ..models import PlatformRole, User
from ._common import platform_audit
from .members import user_end_tokens

EDITABLE = ("email", "full_name", "platform_role", "is_active")


def _check_role(role: str) -> None:
    if role not in PlatformRole.values:
        known = ", ".join(r or '""' for r in PlatformRole.values)
        raise ApplicationError(
            "Unknown platform role.", fields={"platform_role": [f"Unknown role. Roles: {known}."]}
        )


def _keep_admin_access_in_step(user: User) -> None:
    """Django admin access follows the platform role: operators only."""
    user.is_staff = user.is_superuser = user.platform_role == PlatformRole.OPERATOR


def last_operator_error(user: User, *, platform_role: str, is_active: bool) -> str | None:
    """Why this change would leave the platform without an active operator (None if not)."""
    was_operator = user.platform_role == PlatformRole.OPERATOR and user.is_active
    stays_operator = platform_role == PlatformRole.OPERATOR and is_active
    if not was_operator or stays_operator:
        return None
    others = User.objects.filter(platform_role=PlatformRole.OPERATOR, is_active=True).exclude(
        pk=user.pk
    )
    if not others.exists():
        return "The platform must keep at least one active operator."
    return None


@transaction.atomic
def user_create(
    *, email: str, password: str, platform_role: str = "", full_name: str = "", actor=None
) -> User:
    _check_role(platform_role)
    email = (email or "").strip().lower()
    if User.objects.filter(email=email).exists():
        raise ApplicationError(
            "A user with this email exists.",
            code="conflict",
            status_code=409,
            fields={"email": ["A user with this email exists."]},
        )
    try:
        validate_password(password, User(email=email, full_name=full_name))
    except ValidationError as exc:
        raise ApplicationError("Choose a stronger password.", fields={"password": exc.messages})
    user = User(email=email, full_name=full_name.strip(), platform_role=platform_role)
    user.set_password(password)
    _keep_admin_access_in_step(user)
    user.save()
    platform_audit(
        actor=actor,
        action=AuditAction.USER_CREATE,
        object_type="user",
        object_id=user.pk,
        after={"email": user.email, "platform_role": user.platform_role},
    )
    return user


@transaction.atomic
def user_update(*, user: User, actor=None, **changes) -> User:
    """Changes the fields in EDITABLE; keeps admin access in step with the role."""
    reject_unknown_fields(changes, EDITABLE)
    if "platform_role" in changes:
        _check_role(changes["platform_role"])
    user = User.objects.select_for_update().get(pk=user.pk)
    # Serialise role changes: two operators demoting each other must not both succeed.
    list(User.objects.select_for_update().filter(platform_role=PlatformRole.OPERATOR))
    error = last_operator_error(
        user,
        platform_role=changes.get("platform_role", user.platform_role),
        is_active=changes.get("is_active", user.is_active),
    )
    if error:
        raise ApplicationError(error, code="last_operator")
    before = {k: getattr(user, k) for k in changes}
    for name, value in changes.items():
        setattr(user, name, value)
    if before == {k: getattr(user, k) for k in changes}:
        return user
    _keep_admin_access_in_step(user)
    user.save()
    if {"email", "platform_role", "is_active"} & {k for k in changes if before[k] != changes[k]}:
        user_end_tokens(user=user)
    platform_audit(
        actor=actor,
        action=AuditAction.USER_UPDATE,
        object_type="user",
        object_id=user.pk,
        before=before,
        after={k: getattr(user, k) for k in changes},
    )
    return user
