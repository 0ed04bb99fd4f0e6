"""JWT with tenant claims.

A token is bound to the host that minted it: `scope` is "public" on the operator host and
"tenant:<id>" on a tenant host. A token presented on any other host is rejected (401), so a
token for tenant A can never act on tenant B, whatever headers or body fields say.
"""

from django.db import connection
from django_tenants.utils import get_public_schema_name
from rest_framework import exceptions
from rest_framework_simplejwt.authentication import JWTAuthentication


def host_scope(request) -> str:
    if connection.schema_name == get_public_schema_name():
        return "public"
    return f"tenant:{request.tenant.pk}"


class TenantJWTAuthentication(JWTAuthentication):
    def authenticate(self, request):
        result = super().authenticate(request)
        if result is None:
            return None
        user, token = result
        if token.get("scope") != host_scope(request):
            raise exceptions.AuthenticationFailed(
                "Token was not issued for this host.", code="token_not_valid_for_host"
            )
        return user, token
