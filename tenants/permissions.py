from rest_framework.permissions import SAFE_METHODS, BasePermission

from tenants import roles


def _role(request):
    # DRF wraps the Django request; the role is cached on the underlying one.
    return roles.resolve_role(getattr(request, "_request", request))


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
        return role in roles.TENANT_WRITE_ROLES


class IsTenantAdminOrReadOnly(BasePermission):
    """Every member reads; only tenant admins change (member management)."""

    def has_permission(self, request, view):
        role = _role(request)
        if request.method in SAFE_METHODS:
            return role in roles.TENANT_READ_ROLES
        return role == roles.ADMIN


class IsAnyMember(BasePermission):
    def has_permission(self, request, view):
        return _role(request) in roles.TENANT_READ_ROLES
