"""Django admin on the public host, for operators only. Lifecycle actions call the services."""

from django import forms
from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.contrib.auth.forms import BaseUserCreationForm
from django.contrib.auth.forms import UserChangeForm as BaseUserChangeForm
from django.core.exceptions import PermissionDenied
from django.db import connection
from django.utils.html import format_html, format_html_join
from django_tenants.utils import get_public_schema_name

from core.errors import ApplicationError
from tenants import roles

from . import services
from .models import (
    QUOTA_FIELDS,
    Invitation,
    Membership,
    PlatformEvent,
    Tenant,
    TenantEvent,
    Tier,
    User,
)


def _operators_only(request) -> bool:
    return (
        connection.schema_name == get_public_schema_name()
        and request.user.is_active
        and roles.resolve_role(request) == roles.OPERATOR
    )


def _admin_permission(request) -> bool:
    """Anonymous visitors are sent to sign in; a signed-in user who is not an operator (support,
    a tenant's member) gets the 403 page: signing in again would not help them."""
    if request.user.is_authenticated and not _operators_only(request):
        raise PermissionDenied
    return _operators_only(request)


def quota_words(name: str) -> str:
    """`daily_event_quota` → "Daily event quota"."""
    return name.replace("_", " ").capitalize()


admin.site.has_permission = _admin_permission
admin.site.site_header = "Event broker — operator admin"


class OperatorAdmin(admin.ModelAdmin):
    """Operators may use every admin page; Django model permissions are not used here."""

    def has_module_permission(self, request):
        return _operators_only(request)

    def has_view_permission(self, request, obj=None):
        return _operators_only(request)

    def has_change_permission(self, request, obj=None):
        return _operators_only(request)

    def has_add_permission(self, request):
        return _operators_only(request)

    def has_delete_permission(self, request, obj=None):
        return _operators_only(request)


@admin.register(Tier)
class TierAdmin(OperatorAdmin):
    list_display = ["name", "deployment_model", "is_default_for_model", *QUOTA_FIELDS[:6]]
    readonly_fields = ["name", "deployment_model", "is_default_for_model", "updated_at"]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        quotas = {
            name: form.cleaned_data[name] for name in QUOTA_FIELDS if name in form.changed_data
        }
        fresh = Tier.objects.get(pk=obj.pk)
        services.tier_update(tier=fresh, quotas=quotas, actor=request.user)


class OnboardTenantForm(forms.ModelForm):
    """The add form: exactly what onboarding needs; the service does the rest."""

    class Meta:
        model = Tenant
        fields = ["name", "slug", "tier", "admin_email"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # The seed API may onboard without one; a tenant added here always gets its first admin.
        self.fields["admin_email"].required = True
        self.fields["admin_email"].label = "First admin's e-mail"
        self.fields[
            "admin_email"
        ].help_text = "An invitation to become the tenant's admin goes to this address."

    def clean(self):
        data = super().clean()
        tier = data.get("tier")
        errors = services.onboarding_errors(
            name=data.get("name", ""),
            slug=data.get("slug", ""),
            tier=tier.name if tier else "",
            admin_email=data.get("admin_email", ""),
        )
        for field, messages_ in errors.items():
            if field not in self.errors:
                for message in messages_:
                    self.add_error(field if field in self.fields else None, message)
        return data


class UserCreationForm(BaseUserCreationForm):
    class Meta:
        model = User
        fields = ["email", "platform_role"]


class UserChangeForm(BaseUserChangeForm):
    class Meta:
        model = User
        fields = "__all__"

    def clean(self):
        data = super().clean()
        error = services.last_operator_error(
            self.instance,
            platform_role=data.get("platform_role", self.instance.platform_role),
            is_active=data.get("is_active", self.instance.is_active),
        )
        if error:
            raise forms.ValidationError(error)
        return data


class MembershipForm(forms.ModelForm):
    class Meta:
        model = Membership
        fields = ["role"]

    def clean_role(self):
        role = self.cleaned_data["role"]
        error = services.membership_change_error(self.instance, new_role=role)
        if error:
            raise forms.ValidationError(error)
        return role


class TenantEventInline(admin.TabularInline):
    model = TenantEvent
    extra = 0
    can_delete = False
    fields = ["created_at", "action", "from_status", "to_status", "actor", "detail"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    fields = ["user", "role", "created_at"]
    readonly_fields = ["user", "role", "created_at"]
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


def _lifecycle_action(service, label):
    def run(modeladmin, request, queryset):
        done = 0
        for tenant in queryset:
            try:
                service(tenant=tenant, actor=request.user)
                done += 1
            except ApplicationError as exc:
                messages.error(request, f"{tenant.slug}: {exc.message}")
        if done:
            messages.success(request, f"{label}: {done} tenant(s).")

    run.short_description = label
    run.__name__ = service.__name__
    return run


@admin.register(Tenant)
class TenantAdmin(OperatorAdmin):
    list_display = ["slug", "name", "tier", "status", "version", "synced_version", "created_at"]
    list_filter = ["status", "tier"]
    search_fields = ["slug", "name", "admin_email"]
    list_select_related = ["tier"]
    actions = [
        _lifecycle_action(services.tenant_suspend, "Suspend"),
        _lifecycle_action(services.tenant_resume, "Resume"),
        _lifecycle_action(services.tenant_retry_provisioning, "Retry provisioning"),
        _lifecycle_action(services.tenant_offboard, "Offboard (delete)"),
    ]
    inlines = [MembershipInline, TenantEventInline]

    def get_queryset(self, request):
        return super().get_queryset(request).exclude(schema_name=get_public_schema_name())

    def get_form(self, request, obj=None, **kwargs):
        if obj is None:
            kwargs["form"] = OnboardTenantForm
        return super().get_form(request, obj, **kwargs)

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["name", "slug", "tier", "admin_email"]
        return [
            "name",
            "slug",
            "tier",
            "status",
            "admin_email",
            "schema_name",
            "quota_overrides",
            "quotas_in_words",
            "provisioning_error",
            "delivery_queues",
            "silo_queue_url",
            "version",
            "synced_version",
            "offboarding_report",
            "created_at",
        ]

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        return [f for f in self.get_fields(request, obj) if f != "quota_overrides"]

    def save_model(self, request, obj, form, change):
        try:
            if not change:
                tenant = services.tenant_onboard(
                    name=form.cleaned_data["name"],
                    slug=form.cleaned_data["slug"],
                    tier=form.cleaned_data["tier"].name,
                    admin_email=form.cleaned_data["admin_email"],
                    actor=request.user,
                )
                obj.pk = tenant.pk
            elif "quota_overrides" in form.changed_data:
                current = Tenant.objects.get(pk=obj.pk).quota_overrides
                new = form.cleaned_data["quota_overrides"] or {}
                overrides = {**{k: None for k in current if k not in new}, **new}
                services.tenant_update_quotas(tenant=obj, overrides=overrides, actor=request.user)
        except ApplicationError as exc:
            # Validation already ran in the form; this is a race (e.g. the slug was taken
            # meanwhile). The admin has no way back to the form from here, so report it.
            messages.error(request, f"{exc.message} {exc.fields or ''}")

    def get_inlines(self, request, obj):
        return [] if obj is None else self.inlines

    @admin.display(description="Quotas in effect")
    def quotas_in_words(self, obj):
        overrides = obj.quota_overrides or {}
        return format_html(
            "<table>{}</table>",
            format_html_join(
                "",
                "<tr><th scope='row'>{}</th><td>{}</td><td>{}</td></tr>",
                (
                    (quota_words(name), value, "override" if name in overrides else "tier")
                    for name, value in obj.effective_quotas().items()
                ),
            ),
        )

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        field = super().formfield_for_dbfield(db_field, request, **kwargs)
        if db_field.name == "quota_overrides" and field is not None:
            field.help_text = "A JSON object of quota names and values; the names: " + ", ".join(
                f"{name} ({quota_words(name).lower()})" for name in QUOTA_FIELDS
            )
        return field

    def has_delete_permission(self, request, obj=None):
        return False  # deletion is offboarding, an action with a report


@admin.register(User)
class UserAdmin(OperatorAdmin, BaseUserAdmin):
    ordering = ["email"]
    list_display = ["email", "full_name", "platform_role", "is_active", "date_joined"]
    list_filter = ["platform_role", "is_active"]
    search_fields = ["email", "full_name"]
    fieldsets = [
        (None, {"fields": ["email", "password"]}),
        ("Profile", {"fields": ["full_name"]}),
        ("Access", {"fields": ["platform_role", "is_active", "is_staff", "is_superuser"]}),
        ("Dates", {"fields": ["last_login", "date_joined"]}),
    ]
    add_fieldsets = [
        (
            None,
            {"classes": ["wide"], "fields": ["email", "password1", "password2", "platform_role"]},
        )
    ]
    filter_horizontal = []
    form = UserChangeForm
    add_form = UserCreationForm
    readonly_fields = ["is_staff", "is_superuser", "last_login", "date_joined"]

    def save_model(self, request, obj, form, change):
        """Through the services: audited, admin access in step with the role, tokens ended
        when the role or access changes."""
        if not change:
            user = services.user_create(
                email=form.cleaned_data["email"],
                password=form.cleaned_data["password1"],
                platform_role=form.cleaned_data.get("platform_role", ""),
                actor=request.user,
            )
            obj.pk = user.pk
            return
        changes = {
            f: form.cleaned_data[f] for f in services.USER_EDITABLE if f in form.changed_data
        }
        if changes:
            services.user_update(user=obj, actor=request.user, **changes)


@admin.register(Membership)
class MembershipAdmin(OperatorAdmin):
    """Role changes and removals go through the services (last-admin guard, the tenant's
    audit log, the member's tokens ended); members join by invitation only."""

    list_display = ["user", "tenant", "role", "created_at"]
    list_filter = ["role"]
    list_select_related = ["user", "tenant"]
    search_fields = ["user__email", "tenant__slug"]
    form = MembershipForm
    fields = ["user", "tenant", "role", "created_at"]
    readonly_fields = ["user", "tenant", "created_at"]

    def has_add_permission(self, request):
        return False

    def save_model(self, request, obj, form, change):
        services.membership_change_role(
            membership=obj, role=form.cleaned_data["role"], actor=request.user
        )

    def delete_model(self, request, obj):
        try:
            services.membership_remove(membership=obj, actor=request.user)
        except ApplicationError as exc:
            messages.error(request, f"{obj}: {exc.message}")

    def delete_queryset(self, request, queryset):
        for membership in queryset:
            self.delete_model(request, membership)


@admin.register(PlatformEvent)
class PlatformEventAdmin(OperatorAdmin):
    """The platform's audit log (read-only): tier quotas, users' roles and access."""

    list_display = ["created_at", "action", "object_type", "object_id", "actor_email"]
    list_filter = ["action", "object_type"]
    search_fields = ["object_id", "actor_email", "request_id"]

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in PlatformEvent._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Invitation)
class InvitationAdmin(OperatorAdmin):
    list_display = [
        "email",
        "tenant",
        "role",
        "created_at",
        "expires_at",
        "accepted_at",
        "revoked_at",
    ]
    list_select_related = ["tenant"]
    exclude = ["token_hash"]
    readonly_fields = [
        "tenant",
        "email",
        "role",
        "invited_by",
        "created_at",
        "expires_at",
        "accepted_at",
        "revoked_at",
    ]

    def has_add_permission(self, request):
        return False
