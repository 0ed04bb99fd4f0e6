"""Token endpoints (every host): tokens carry the host's scope and the tenant's claims."""

from django.contrib.auth import authenticate, get_user_model
from django.http import JsonResponse
from django.shortcuts import render
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.serializers import TokenObtainSerializer, TokenRefreshSerializer
from rest_framework_simplejwt.settings import api_settings
from rest_framework_simplejwt.tokens import RefreshToken
from rest_framework_simplejwt.views import TokenObtainPairView, TokenRefreshView

from core.api import StrictInputMixin
from core.errors import error_body
from portal.api.auth import check_generation, host_scope
from tenants import roles, services


def token_claims(request, user) -> dict:
    """The claims of a token for `user` on this host; refuses users with no role here."""
    django_request = getattr(request, "_request", request)
    role = roles.resolve_role(django_request)
    if role is None:
        raise exceptions.AuthenticationFailed(
            "No active account with access to this host was found.", code="no_access"
        )
    claims = {
        "scope": host_scope(request),
        "role": role,
        "email": user.email,
        "gen": user.token_generation,
    }
    if claims["scope"] != "public":
        tenant = request.tenant
        claims.update(
            tenant_id=str(tenant.pk),
            tenant_slug=tenant.slug,
            tier=tenant.tier.name,
            quotas=tenant.effective_quotas(),
        )
    return claims


class LockedOut(exceptions.APIException):
    status_code = 429
    default_detail = "Too many failed sign-in attempts; try again later."
    default_code = "locked_out"


class PortalTokenObtainSerializer(StrictInputMixin, TokenObtainSerializer):
    token_class = RefreshToken

    def validate(self, attrs):
        request = self.context["request"]
        # django-axes counts failures through this call and flags the Django request when
        # the account is locked (Django's authenticate() swallows the backend's refusal).
        self.user = authenticate(
            request._request, username=attrs["email"].lower(), password=attrs["password"]
        )
        if getattr(request._request, "axes_locked_out", False):
            raise LockedOut()
        if self.user is None or not self.user.is_active:
            raise exceptions.AuthenticationFailed(
                "No active account found with the given credentials", code="no_active_account"
            )
        request._request.user = self.user
        refresh = self.get_token(self.user)
        for key, value in token_claims(request, self.user).items():
            refresh[key] = value
        return {"refresh": str(refresh), "access": str(refresh.access_token)}


class PortalTokenRefreshSerializer(StrictInputMixin, TokenRefreshSerializer):
    """A new access token with the claims as they are now (role, tier, quotas), for a
    refresh token of this host whose user is active, still has a role here and has not
    ended their tokens since."""

    def validate(self, attrs):
        request = self.context["request"]
        try:
            refresh = RefreshToken(attrs["refresh"])
        except TokenError as exc:
            raise exceptions.AuthenticationFailed(str(exc), code="token_not_valid")
        if refresh.get("scope") != host_scope(request):
            raise exceptions.AuthenticationFailed(
                "Token was not issued for this host.", code="token_not_valid_for_host"
            )
        user_id = refresh.get(api_settings.USER_ID_CLAIM)
        user = get_user_model().objects.filter(**{api_settings.USER_ID_FIELD: user_id}).first()
        if user is None or not user.is_active:
            raise exceptions.AuthenticationFailed(
                "No active account found for this token.", code="no_active_account"
            )
        check_generation(user, refresh)
        request._request.user = user
        access = refresh.access_token
        for key, value in token_claims(request, user).items():
            access[key] = value
        return {"access": str(access)}


class TokenObtainView(TokenObtainPairView):
    """Exchange email and password for a token pair scoped to this host."""

    serializer_class = PortalTokenObtainSerializer
    throttle_classes = []


class TokenRefreshHostView(TokenRefreshView):
    """Exchange a refresh token for a new access token (same host only)."""

    serializer_class = PortalTokenRefreshSerializer


class TenantJWTScheme(OpenApiAuthenticationExtension):
    target_class = "portal.api.auth.TenantJWTAuthentication"
    name = "jwtAuth"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}


def lockout_response(request, credentials=None, *args, **kwargs):
    """django-axes' answer to a locked-out sign-in: the API error shape, or the login page."""
    if request.path.startswith("/api/"):
        return JsonResponse(
            error_body(LockedOut.default_code, str(LockedOut.default_detail)), status=429
        )
    return render(request, "portal/locked_out.html", status=429)


class SignOutView(APIView):
    """Ends every token of the caller (on every host): refresh tokens stop minting."""

    permission_classes = [IsAuthenticated]
    throttle_classes = []

    @extend_schema(request=None, responses={204: None})
    def post(self, request):
        services.user_end_tokens(user=request.user)
        return Response(status=204)
