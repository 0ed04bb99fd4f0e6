from django.db import connection

from tenants.roles import resolve_role


def portal(request):
    tenant = getattr(request, "tenant", None)
    is_public = connection.schema_name == "public"
    user = getattr(request, "user", None)  # absent when the host middleware answered 404
    return {
        "portal_tenant": None if is_public else tenant,
        "portal_is_public": is_public,
        "portal_role": resolve_role(request)
        if user is not None and user.is_authenticated
        else None,
    }
