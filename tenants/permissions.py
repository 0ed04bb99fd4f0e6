from django.db import connection
from django_tenants.utils import get_public_schema_name
from rest_framework.exceptions import PermissionDenied
from rest_framework.permissions import SAFE_METHODS, BasePermission

from tenants import roles
from tenants.models import TenantStatus


def _role(request):
    # DRF wraps the Django request; the role is cached on the underlying one.
    return roles.resolve_role(getattr(request, "_request", request))


class TenantSuspended(PermissionDenied):
    default_detail = (
        "This tenant is suspended: its configuration is read-only until an operator resumes it."
    )
    default_code = "tenant_suspended"


def _refuse_writes_when_suspended(request) -> None:
    """A suspended tenant keeps read access to its configuration, never write access."""
    if request.method in SAFE_METHODS or connection.schema_name == get_public_schema_name():
        return
    tenant = getattr(request, "tenant", None)
    if tenant is not None and tenant.status == TenantStatus.SUSPENDED:
        raise TenantSuspended()


class IsOperator(BasePermission):
    def has_permission(self, request, view):
        return _role(request) == roles.OPERATOR


class IsOperatorOrSupportReadOnly(BasePermission):
    """Operators do everything; support staff read."""

    def has_permission(self, request, view):
        role = _role(request)
        return role == roles.OPERATOR or (role == roles.SUPPORT and request.method in SAFE_METHODS)


class IsTenantMember(BasePermission):
    """Viewers read; developers and admins write."""

    def has_permission(self, request, view):
        role = _role(request)
        if request.method in SAFE_METHODS:
            return role in roles.TENANT_READ_ROLES
        if role not in roles.TENANT_WRITE_ROLES:
            return False
        _refuse_writes_when_suspended(request)
        return True


class IsTenantAdminOrReadOnly(BasePermission):
    """Every member reads; only tenant admins change (member management)."""

    def has_permission(self, request, view):
        role = _role(request)
        if request.method in SAFE_METHODS:
            return role in roles.TENANT_READ_ROLES
        if role != roles.ADMIN:
            return False
        _refuse_writes_when_suspended(request)
        return True


class IsAnyMember(BasePermission):
    def has_permission(self, request, view):
        if _role(request) not in roles.TENANT_READ_ROLES:
            return False
        _refuse_writes_when_suspended(request)
        return True
