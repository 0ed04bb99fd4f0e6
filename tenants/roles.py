"""Who the caller is on this host: one function decides, every view and page asks it."""

from django.db import connection
from django_tenants.utils import get_public_schema_name

from tenants.models import Membership

OPERATOR = "operator"
SUPPORT = "support"
ADMIN = "admin"
DEVELOPER = "developer"
VIEWER = "viewer"

TENANT_READ_ROLES = frozenset({ADMIN, DEVELOPER, VIEWER})
TENANT_WRITE_ROLES = frozenset({ADMIN, DEVELOPER})


def resolve_role(request) -> str | None:
    """The caller's role on the current host.

    Public host: the user's platform role (operator or support). Tenant host: the user's
    membership role in that tenant, read from the database on every request so that a removed
    member loses access at once, whatever their token says.
    """
    if hasattr(request, "_portal_role"):
        return request._portal_role
    user = getattr(request, "user", None)
    role = None
    if user is not None and user.is_authenticated and user.is_active:
        if connection.schema_name == get_public_schema_name():
            role = user.platform_role or None
        else:
            role = (
                Membership.objects.filter(user=user, tenant_id=request.tenant.pk)
                .values_list("role", flat=True)
                .first()
            )
    request._portal_role = role
    return role
