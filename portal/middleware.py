import re
import uuid

from django.conf import settings
from django.db import connection
from django.http import Http404
from django_tenants.middleware.main import TenantMainMiddleware
from django_tenants.utils import get_public_schema_name, get_tenant_model, remove_www

from core.context import reset_request_id, reset_user_id, set_request_id, set_user_id
from core.logging import LOG_CONTEXT_KEY

_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class TenantHostMiddleware(TenantMainMiddleware):
    """Selects the schema from the host name only.

    The base domain (and PORTAL_PUBLIC_HOSTS) serve the public schema; `<slug>.<base>` serves
    that tenant while it is active or suspended; any other host is a 404 page. No header or
    body field can select a tenant.
    """

    def process_request(self, request):
        connection.set_schema_to_public()
        hostname = remove_www(request.get_host().split(":")[0]).lower()
        if hostname in settings.PORTAL_PUBLIC_HOSTS:
            public = get_public_schema_name()
            model = get_tenant_model()
            # The row comes from a data migration; an unsaved stand-in keeps the public host
            # up if it is missing (it only carries the schema name).
            tenant = model.objects.filter(schema_name=public).first() or model(
                schema_name=public, name="Platform", slug="public", status="active"
            )
        else:
            tenant = (
                get_tenant_model()
                .objects.select_related("tier")
                .filter(domains__domain=hostname, status__in=("active", "suspended"))
                .first()
            )
            if tenant is None:
                raise Http404(f"No tenant for host {hostname!r}")
        tenant.domain_url = hostname
        request.tenant = tenant
        connection.set_tenant(tenant)
        self.setup_url_routing(request)


class RequestIdMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        incoming = request.headers.get("X-Request-ID", "")
        request.id = incoming if _REQUEST_ID_RE.match(incoming) else uuid.uuid4().hex
        # The server's access line is written once this context is gone: it reads the request
        # id, tenant and user from the WSGI environ (portal/gunicorn_conf.py).
        context = request.META[LOG_CONTEXT_KEY] = {"request_id": request.id}
        token = set_request_id(request.id)
        try:
            response = self.get_response(request)
        finally:
            reset_request_id(token)
            context["tenant"] = getattr(getattr(request, "tenant", None), "schema_name", None)
        response["X-Request-ID"] = request.id
        return response


class LogUserMiddleware:
    """After authentication: log lines of this request carry the user's id."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = getattr(request, "user", None)
        user_id = str(user.pk) if user is not None and user.is_authenticated else None
        request.META.get(LOG_CONTEXT_KEY, {})["user"] = user_id
        token = set_user_id(user_id)
        try:
            return self.get_response(request)
        finally:
            reset_user_id(token)
