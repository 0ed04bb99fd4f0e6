"""JWT with tenant claims.

A token is bound to the host that minted it: `scope` is "public" on the operator host and
"tenant:<id>" on a tenant host. A token presented on any other host is rejected (401), so a
token for tenant A can never act on tenant B, whatever headers or body fields say.

A token also carries its user's token generation (`gen`): a password change, a sign-out, a
removal or a role change bumps it, which ends every token minted before (401 token_revoked).
"""

from django.db import connection
from django_tenants.utils import get_public_schema_name
from rest_framework import exceptions
from rest_framework_simplejwt.authentication import JWTAuthentication

from core.context import set_user_id


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
        check_generation(user, token)
        set_user_id(str(user.pk))  # log lines of this request name the user (reset per request)
        return user, token


def check_generation(user, token) -> None:
    """Tokens minted before the user's last password change, sign-out, removal or role
    change carry an older generation: refused."""
    if token.get("gen", 0) != user.token_generation:
        raise exceptions.AuthenticationFailed("Token has been revoked.", code="token_revoked")
