"""Tenant self-service pages for broker configuration (tenant host, `/config/`).

The same services as the API: every change is versioned, audited and relayed to DynamoDB.
Viewers see the page; developers and admins change things. One-time secrets (an API key, a
signing secret) are shown once, on the page that follows the change.
"""

import json

from django import forms
from django.contrib import messages
from django.db import connection
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from broker import services
from broker.models import Consumer, ConsumerAuth, Kind, OnHeadFailure, Producer, Subscription
from core.errors import ApplicationError
from portal.pages import one_time as one_time_secret
from portal.pages.forms import apply_application_error
from portal.pages.views import role_required
from tenants import roles


class ProducerForm(forms.Form):
    name = forms.CharField(max_length=100)
    kind = forms.ChoiceField(choices=Kind.choices)
    allowed_event_types = forms.CharField(
        required=False, help_text="Comma-separated patterns (order.*); empty: any type."
    )
    source_queue_arn = forms.CharField(required=False, max_length=256, label="Source queue ARN")

    def service_kwargs(self) -> dict:
        data = dict(self.cleaned_data)
        data["allowed_event_types"] = [
            t.strip() for t in data["allowed_event_types"].split(",") if t.strip()
        ]
        return data


def _rate_limit_field() -> forms.IntegerField:
    return forms.IntegerField(
        required=False, min_value=1, label="Rate limit (deliveries per second)"
    )


def _with_plan_rate(form: forms.Form) -> None:
    """The rate limit's help says the plan's bound (the service refuses above it)."""
    tenant = getattr(connection, "tenant", None)
    quotas = tenant.effective_quotas() if getattr(tenant, "tier_id", None) else {}
    most = quotas.get("max_consumer_rate_per_second")
    bound = f" At most {most} on your plan." if most else ""
    form.fields["rate_limit_per_second"].help_text = f"Empty: no limit.{bound}"


class ConsumerForm(forms.Form):
    name = forms.CharField(max_length=100)
    kind = forms.ChoiceField(choices=Kind.choices)
    url = forms.CharField(required=False, max_length=2048, label="URL (https)")
    queue_arn = forms.CharField(required=False, max_length=256, label="Queue ARN (sqs)")
    auth_type = forms.ChoiceField(choices=ConsumerAuth.choices, initial=ConsumerAuth.NONE)
    auth_username = forms.CharField(required=False, label="Header name / user name")
    auth_secret = forms.CharField(
        required=False, widget=forms.PasswordInput, label="Header value / password / token"
    )
    rate_limit_per_second = _rate_limit_field()

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        _with_plan_rate(self)

    def service_kwargs(self) -> dict:
        data = dict(self.cleaned_data)
        data["auth_secret"] = data["auth_secret"] or None
        return data


class SubscriptionForm(forms.Form):
    consumer = forms.ModelChoiceField(queryset=Consumer.objects.none())
    event_type = forms.CharField(max_length=200, help_text="order.created, order.* or *")
    producer = forms.ModelChoiceField(
        queryset=Producer.objects.none(), required=False, empty_label="any producer"
    )
    filter = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 2}), help_text="JSON; empty: all"
    )
    ordered = forms.BooleanField(
        required=False,
        label="Ordered per key",
        help_text="The events of one key reach the consumer one at a time, in order.",
    )
    ordering_key_path = forms.CharField(
        required=False,
        max_length=200,
        label="Ordering key path",
        help_text="A dotted path into the event (data.order_id); empty: its ordering_key.",
    )
    on_head_failure = forms.ChoiceField(
        choices=[
            (OnHeadFailure.SKIP, "skip: dead-letter the failed event, the key flows on"),
            (OnHeadFailure.HOLD, "hold: hold the key until you retry or skip"),
        ],
        initial=OnHeadFailure.SKIP,
        required=False,
        label="When a key's head fails for good",
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Querysets of the active tenant schema only.
        self.fields["consumer"].queryset = Consumer.objects.order_by("name")
        self.fields["producer"].queryset = Producer.objects.order_by("name")

    def clean_filter(self):
        text = self.cleaned_data["filter"].strip()
        if not text:
            return {}
        try:
            return json.loads(text)
        except ValueError as exc:
            raise forms.ValidationError(f"Not valid JSON: {exc}") from None

    def clean_on_head_failure(self):
        # Not sent (a client that predates the field): the stored value, or the default.
        return (
            self.cleaned_data["on_head_failure"]
            or self.initial.get("on_head_failure")
            or OnHeadFailure.SKIP
        )

    def service_kwargs(self) -> dict:
        return dict(self.cleaned_data)


FORMS = {
    "producer": (ProducerForm, services.producer_create),
    "consumer": (ConsumerForm, services.consumer_create),
    "subscription": (SubscriptionForm, services.subscription_create),
}


def _can_write(request) -> bool:
    return roles.resolve_role(request) in roles.TENANT_WRITE_ROLES


@role_required(*roles.TENANT_READ_ROLES)
def config_page(request):
    bound = {}
    status = 200
    if request.method == "POST":
        if not _can_write(request):
            raise Http404
        which = request.POST.get("form")
        if which not in FORMS:
            raise Http404
        form_class, create = FORMS[which]
        form = form_class(request.POST, prefix=which)
        bound[which] = form
        if form.is_valid():
            try:
                result = create(actor=request.user, **form.service_kwargs())
            except ApplicationError as exc:
                apply_application_error(form, exc)
            else:
                obj, secret = result if isinstance(result, tuple) else (result, None)
                messages.success(request, f"{which.title()} {obj} created.")
                response = redirect("/config/")
                if secret:
                    one_time_secret.stash(request, response, label=str(obj), value=secret)
                return response
        status = 400
    one_time = one_time_secret.take(request)
    forms_ = {name: bound.get(name) or cls(prefix=name) for name, (cls, _) in FORMS.items()}
    response = render(
        request,
        "portal/config.html",
        {
            "tenant": request.tenant,
            "can_write": _can_write(request),
            "forms": forms_,
            "one_time": one_time,
            "producers": Producer.objects.prefetch_related("api_keys").order_by("name"),
            "consumers": Consumer.objects.order_by("name"),
            "subscriptions": Subscription.objects.select_related("consumer", "producer").order_by(
                "event_type"
            ),
        },
        status=status,
    )
    return one_time_secret.forget_key(request, response)


def _rotate_key(actor, obj):
    _, raw = services.producer_rotate_key(actor=actor, producer=obj)
    return raw


def _rotate_secret(actor, obj):
    _, raw = services.consumer_rotate_signing_secret(actor=actor, consumer=obj)
    return raw


ACTIONS = {
    "producer": (
        Producer,
        {
            "enable": lambda a, o: services.producer_update(actor=a, producer=o, enabled=True),
            "disable": lambda a, o: services.producer_update(actor=a, producer=o, enabled=False),
            "rotate-key": _rotate_key,
            "delete": lambda a, o: services.producer_delete(actor=a, producer=o),
        },
    ),
    "consumer": (
        Consumer,
        {
            "enable": lambda a, o: services.consumer_update(actor=a, consumer=o, enabled=True),
            "disable": lambda a, o: services.consumer_update(actor=a, consumer=o, enabled=False),
            "rotate-signing-secret": _rotate_secret,
            "delete": lambda a, o: services.consumer_delete(actor=a, consumer=o),
        },
    ),
    "subscription": (
        Subscription,
        {
            "enable": lambda a, o: services.subscription_update(
                actor=a, subscription=o, enabled=True
            ),
            "disable": lambda a, o: services.subscription_update(
                actor=a, subscription=o, enabled=False
            ),
            "delete": lambda a, o: services.subscription_delete(actor=a, subscription=o),
        },
    ),
}


@require_POST
@role_required(*roles.TENANT_WRITE_ROLES)
def config_action(request, kind, object_id, action):
    if kind not in ACTIONS or action not in ACTIONS[kind][1]:
        raise Http404
    model, actions = ACTIONS[kind]
    obj = model.objects.filter(pk=object_id).first()  # this tenant's schema only
    if obj is None:
        raise Http404
    try:
        result = actions[action](request.user, obj)
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"{kind.title()} {obj}: {action.replace('-', ' ')} done.")
        if action.startswith("rotate"):
            response = redirect("/config/")
            one_time_secret.stash(request, response, label=str(obj), value=result)
            return response
    return redirect("/config/")


class ConsumerEditForm(forms.Form):
    url = forms.CharField(required=False, max_length=2048, label="URL (https)")
    queue_arn = forms.CharField(required=False, max_length=256, label="Queue ARN (sqs)")
    auth_type = forms.ChoiceField(choices=ConsumerAuth.choices)
    auth_username = forms.CharField(required=False, label="Header name / user name")
    auth_secret = forms.CharField(
        required=False,
        widget=forms.PasswordInput,
        label="New header value / password / token",
        help_text="Empty: keep the stored one.",
    )
    timeout_ms = forms.IntegerField(min_value=1, label="Timeout (ms)")
    delivery_concurrency = forms.IntegerField(
        required=False, min_value=1, help_text="Empty: the tier's."
    )
    rate_limit_per_second = _rate_limit_field()

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        _with_plan_rate(self)


class ProducerEditForm(forms.Form):
    name = forms.CharField(max_length=100)
    allowed_event_types = forms.CharField(
        required=False, help_text="Comma-separated patterns (order.*); empty: any type."
    )
    ingest_rate_per_second = forms.IntegerField(
        required=False,
        min_value=1,
        label="Rate (events per second)",
        help_text="Empty: the tier's.",
    )
    ingest_burst = forms.IntegerField(
        required=False, min_value=1, label="Burst (events)", help_text="Empty: the tier's."
    )

    def clean_allowed_event_types(self):
        text = self.cleaned_data["allowed_event_types"]
        return [t.strip() for t in text.split(",") if t.strip()]


class SubscriptionEditForm(forms.Form):
    event_type = forms.CharField(max_length=200)
    filter = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}))
    ordered = SubscriptionForm.base_fields["ordered"]
    ordering_key_path = SubscriptionForm.base_fields["ordering_key_path"]
    on_head_failure = SubscriptionForm.base_fields["on_head_failure"]

    clean_filter = SubscriptionForm.clean_filter
    clean_on_head_failure = SubscriptionForm.clean_on_head_failure


def _edit(request, *, obj, form_class, initial, update, fields):
    form = form_class(request.POST or None, initial=initial)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            data = {k: form.cleaned_data[k] for k in fields}
            try:
                update(data)
            except ApplicationError as exc:
                apply_application_error(form, exc)
            else:
                messages.success(request, f"{obj} saved.")
                return redirect("/config/")
        status = 400
    return render(request, "portal/config_edit.html", {"form": form, "object": obj}, status=status)


@role_required(*roles.TENANT_WRITE_ROLES)
def consumer_edit(request, object_id):
    consumer = Consumer.objects.filter(pk=object_id).first()
    if consumer is None:
        raise Http404

    def update(data):
        secret = data.pop("auth_secret") or None
        services.consumer_update(actor=request.user, consumer=consumer, auth_secret=secret, **data)

    return _edit(
        request,
        obj=consumer,
        form_class=ConsumerEditForm,
        initial={
            "url": consumer.url,
            "queue_arn": consumer.queue_arn,
            "auth_type": consumer.auth_type,
            "auth_username": consumer.auth_username,
            "timeout_ms": consumer.timeout_ms,
            "delivery_concurrency": consumer.delivery_concurrency,
            "rate_limit_per_second": consumer.rate_limit_per_second,
        },
        update=update,
        fields=[
            "url",
            "queue_arn",
            "auth_type",
            "auth_username",
            "auth_secret",
            "timeout_ms",
            "delivery_concurrency",
            "rate_limit_per_second",
        ],
    )


@role_required(*roles.TENANT_WRITE_ROLES)
def producer_edit(request, object_id):
    producer = Producer.objects.filter(pk=object_id).first()
    if producer is None:
        raise Http404
    return _edit(
        request,
        obj=producer,
        form_class=ProducerEditForm,
        initial={
            "name": producer.name,
            "allowed_event_types": ", ".join(producer.allowed_event_types),
            "ingest_rate_per_second": producer.ingest_rate_per_second,
            "ingest_burst": producer.ingest_burst,
        },
        update=lambda data: services.producer_update(actor=request.user, producer=producer, **data),
        fields=["name", "allowed_event_types", "ingest_rate_per_second", "ingest_burst"],
    )


@role_required(*roles.TENANT_WRITE_ROLES)
def subscription_edit(request, object_id):
    sub = Subscription.objects.filter(pk=object_id).first()
    if sub is None:
        raise Http404
    return _edit(
        request,
        obj=sub,
        form_class=SubscriptionEditForm,
        initial={
            "event_type": sub.event_type,
            "filter": json.dumps(sub.filter, indent=2),
            "ordered": sub.ordered,
            "ordering_key_path": sub.ordering_key_path,
            "on_head_failure": sub.on_head_failure,
        },
        update=lambda data: services.subscription_update(
            actor=request.user, subscription=sub, **data
        ),
        fields=["event_type", "filter", "ordered", "ordering_key_path", "on_head_failure"],
    )
