"""Server-rendered pages: the operator console (public host) and tenant self-service."""

import functools

from django.contrib import messages
from django.contrib.auth import authenticate, login, logout
from django.db import connection
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST
from django_tenants.utils import get_public_schema_name

from broker.models import Consumer, Producer, Subscription
from broker.sync.selectors import tenant_sync_status
from core.errors import ApplicationError
from portal.console.overview import ConsoleQuery, console_page
from portal.pages.forms import (
    AcceptInvitationForm,
    InviteForm,
    LoginForm,
    OnboardForm,
    RoleForm,
    apply_application_error,
)
from tenants import roles, selectors, services
from tenants.models import Invitation


def _is_public() -> bool:
    return connection.schema_name == get_public_schema_name()


def _tenant_suspended(request) -> bool:
    """A suspended tenant's pages read, never write (as its API: tenants.permissions)."""
    tenant = getattr(request, "tenant", None)
    return not _is_public() and tenant is not None and tenant.status == "suspended"


def role_required(*allowed):
    """Anonymous → login page; signed in without one of `allowed` on this host → 404."""

    def decorator(view):
        @functools.wraps(view)
        def wrapper(request, *args, **kwargs):
            if not request.user.is_authenticated:
                return redirect(f"/login/?next={request.path}")
            if roles.resolve_role(request) not in allowed:
                raise Http404
            if request.method == "POST" and _tenant_suspended(request):
                return render(request, "portal/tenant_suspended.html", status=403)
            return view(request, *args, **kwargs)

        return wrapper

    return decorator


def login_view(request):
    form = LoginForm(request, data=request.POST or None)
    if request.method == "POST" and form.is_valid():
        login(request, form.user, backend="django.contrib.auth.backends.ModelBackend")
        target = request.GET.get("next", "/")
        return redirect(target if target.startswith("/") and not target.startswith("//") else "/")
    return render(request, "portal/login.html", {"form": form}, status=200)


def admin_login_redirect(request):
    query = request.META.get("QUERY_STRING", "")
    return redirect(f"/login/?{query}" if query else "/login/")


@require_POST
def logout_view(request):
    if request.user.is_authenticated:
        services.user_end_tokens(user=request.user)  # signing out ends the API tokens too
    logout(request)
    return redirect("/login/")


def home(request):
    if not request.user.is_authenticated:
        return redirect("/login/")
    if _is_public():
        return console(request)
    return tenant_dashboard(request)


# --- operator console --------------------------------------------------------------------


@role_required(roles.OPERATOR, roles.SUPPORT)
def console(request):
    can_write = roles.resolve_role(request) == roles.OPERATOR
    form = OnboardForm(request.POST or None)
    if request.method == "POST":
        if not can_write:
            raise Http404
        if form.is_valid():
            try:
                tenant = services.tenant_onboard(
                    name=form.cleaned_data["name"],
                    slug=form.cleaned_data["slug"],
                    tier=form.cleaned_data["tier"].name,
                    admin_email=form.cleaned_data["admin_email"],
                    actor=request.user,
                )
            except ApplicationError as exc:
                apply_application_error(form, exc)
            else:
                messages.success(
                    request,
                    f"Onboarding {tenant.slug}: an invitation goes to {tenant.admin_email}.",
                )
                return redirect("/")
    return render(
        request,
        "portal/console.html",
        {
            **console_page(ConsoleQuery.from_get(request.GET)),
            "form": form,
            "can_write": can_write,
        },
    )


# --- tenant self-service -----------------------------------------------------------------


def _broker_overview(tenant) -> dict:
    """The tenant's broker configuration and where it stands in DynamoDB (read-only here;
    changes go through the API)."""
    summary, objects = tenant_sync_status(tenant)
    return {
        "producers": Producer.objects.prefetch_related("api_keys").order_by("name")[:100],
        "consumers": Consumer.objects.order_by("name")[:100],
        "subscriptions": Subscription.objects.select_related("consumer", "producer").order_by(
            "event_type"
        )[:100],
        "sync": summary,
        "unsynced": [o for o in objects if o["status"] != "in_sync"][:20],
    }


CHART_PERIODS = ((1, "last hour"), (6, "last 6 hours"), (24, "last 24 hours"), (168, "last 7 days"))


@role_required(*roles.TENANT_READ_ROLES)
def tenant_dashboard(request):
    tenant = request.tenant
    role = roles.resolve_role(request)
    return render(
        request,
        "portal/tenant_dashboard.html",
        {
            "tenant": tenant,
            "quotas": tenant.effective_quotas(),
            "members": selectors.membership_list(tenant=tenant),
            "pending": Invitation.objects.filter(
                tenant=tenant, accepted_at__isnull=True, revoked_at__isnull=True
            ).order_by("-created_at"),
            "is_admin": role == roles.ADMIN,
            **_broker_overview(tenant),
            "chart_periods": CHART_PERIODS,
            "invite_form": InviteForm(),
            "roles": RoleForm.base_fields["role"].choices,
        },
    )


@require_POST
@role_required(roles.ADMIN)
def member_invite(request):
    form = InviteForm(request.POST)
    if form.is_valid():
        try:
            services.member_invite(
                tenant=request.tenant, invited_by=request.user, **form.cleaned_data
            )
        except ApplicationError as exc:
            apply_application_error(form, exc)
        else:
            messages.success(request, f"Invitation sent to {form.cleaned_data['email']}.")
            return redirect("/")
    for field, errors in form.errors.items():
        for error in errors:
            messages.error(request, f"{field}: {error}" if field != "__all__" else error)
    return redirect("/")


@require_POST
@role_required(roles.ADMIN)
def member_change(request, membership_id):
    membership = get_object_or_404(
        selectors.membership_list(tenant=request.tenant), pk=membership_id
    )
    try:
        if request.POST.get("action") == "remove":
            services.membership_remove(membership=membership, actor=request.user)
            messages.success(request, f"{membership.user.email} removed.")
        else:
            form = RoleForm(request.POST)
            if not form.is_valid():
                raise ApplicationError("Choose a valid role.")
            services.membership_change_role(
                membership=membership, role=form.cleaned_data["role"], actor=request.user
            )
            messages.success(
                request, f"{membership.user.email} is now {form.cleaned_data['role']}."
            )
    except ApplicationError as exc:
        messages.error(request, exc.message)
    return redirect("/")


def _invitation_unusable(request, token):
    """A link that no longer works says why, and what to do, instead of a bare 404."""
    invitation = selectors.invitation_by_token(tenant=request.tenant, token=token)
    if invitation is None:
        reason = "This invitation link is not valid: check that it was copied whole."
    elif invitation.accepted_at:
        reason = (
            f"This invitation was already accepted on {invitation.accepted_at:%Y-%m-%d}. "
            "Sign in with that account instead."
        )
    elif invitation.revoked_at:
        reason = "This invitation was withdrawn by an administrator."
    else:
        reason = f"This invitation expired on {invitation.expires_at:%Y-%m-%d %H:%M} UTC."
    return render(
        request,
        "portal/invitation_unusable.html",
        {"reason": reason, "accepted": bool(invitation and invitation.accepted_at)},
        status=404,  # still "no usable invitation here", now with the reason
    )


def invitation_accept(request, token):
    try:
        invitation = services.invitation_get(tenant=request.tenant, token=token)
    except ApplicationError:
        return _invitation_unusable(request, token)
    form = AcceptInvitationForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        if selectors.user_exists(email=invitation.email):
            # Proving an existing account's password is a sign-in: django-axes counts the
            # failures and locks the account out as the login form would.
            authenticate(request, username=invitation.email, password=form.cleaned_data["password"])
            if getattr(request, "axes_locked_out", False):
                return render(request, "portal/locked_out.html", status=429)
        try:
            membership = services.invitation_accept(
                tenant=request.tenant, token=token, **form.cleaned_data
            )
        except ApplicationError as exc:
            apply_application_error(form, exc)
        else:
            login(request, membership.user, backend="django.contrib.auth.backends.ModelBackend")
            messages.success(request, f"Welcome to {request.tenant.name}.")
            return redirect("/")
    return render(
        request, "portal/invitation_accept.html", {"form": form, "invitation": invitation}
    )
