from django import forms
from django.contrib.auth import authenticate

from core.errors import ApplicationError
from tenants import roles
from tenants.models import TenantRole, Tier


class LoginForm(forms.Form):
    email = forms.EmailField(
        widget=forms.EmailInput(attrs={"autofocus": True, "autocomplete": "email"})
    )
    password = forms.CharField(
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"})
    )

    def __init__(self, request, *args, **kwargs):
        self.request = request
        self.user = None
        super().__init__(*args, **kwargs)

    def clean(self):
        data = super().clean()
        if self.errors:
            return data
        # django-axes counts failures and locks out through this call.
        user = authenticate(self.request, username=data["email"].lower(), password=data["password"])
        if user is None:
            raise forms.ValidationError("Wrong email or password.", code="invalid_login")
        self.request.user = user
        if hasattr(self.request, "_portal_role"):
            del self.request._portal_role
        if roles.resolve_role(self.request) is None:
            raise forms.ValidationError(
                "This account has no access here. Sign in on your tenant's own address.",
                code="no_access",
            )
        self.user = user
        return data


def apply_application_error(form: forms.Form, exc: ApplicationError) -> None:
    """Shows a service's refusal on the form: field errors where it names fields."""
    placed = False
    for field, messages in (exc.fields or {}).items():
        if field in form.fields:
            msgs = messages if isinstance(messages, list) else [str(messages)]
            for message in msgs:
                form.add_error(field, str(message))
            placed = True
    if not placed:
        form.add_error(None, exc.message)


class InviteForm(forms.Form):
    email = forms.EmailField()
    role = forms.ChoiceField(choices=TenantRole.choices, initial=TenantRole.DEVELOPER)


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=TenantRole.choices)


class AcceptInvitationForm(forms.Form):
    full_name = forms.CharField(max_length=150, required=False)
    password = forms.CharField(widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}))


class OnboardForm(forms.Form):
    name = forms.CharField(max_length=100)
    slug = forms.CharField(max_length=50, help_text="Becomes <slug>.<portal domain>.")
    tier = forms.ModelChoiceField(queryset=Tier.objects.all(), to_field_name="name")
    admin_email = forms.EmailField()
