"""A subscription's tools on its edit page (tenant host): the filter tester (a pasted sample
event against the filter as typed, unsaved: which paths match and why) and "Send test event"
(to the subscription's consumer, through the data plane's routing code)."""

import json

from django.contrib import messages
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from broker import services
from broker.deliveries import services as delivery_services
from broker.models import Subscription
from core.errors import ApplicationError
from portal.pages.config import SubscriptionEditForm
from portal.pages.views import role_required
from tenants import roles


def _subscription(object_id) -> Subscription:
    sub = Subscription.objects.select_related("consumer").filter(pk=object_id).first()
    if sub is None:
        raise Http404
    return sub


def _json_object(text: str, what: str, example: str):
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise ApplicationError(f"{what} is not valid JSON ({exc.msg}, line {exc.lineno}).")
    if not isinstance(value, dict):
        raise ApplicationError(f"{what} must be a JSON object, such as {example}.")
    return value


def filter_test(post) -> dict:
    """{sample, result | error} for the tester's part of the page."""
    tester = {"sample": post.get("sample", "")}
    try:
        event = _json_object(tester["sample"], "The sample event", '{"type": "order.created"}')
        pattern = _json_object(post.get("filter") or "{}", "The filter", "{}")
        tester["result"] = services.subscription_filter_test(
            pattern=pattern, event=event, event_type=post.get("event_type", "").strip() or None
        )
    except ApplicationError as exc:
        details = [f"{name}: {'; '.join(errors)}" for name, errors in exc.fields.items()]
        tester["error"] = " ".join(details) if details else exc.message
    return tester


@require_POST
@role_required(*roles.TENANT_WRITE_ROLES)
def subscription_test_filter(request, object_id):
    sub = _subscription(object_id)
    return render(
        request,
        "portal/config_edit.html",
        {
            "form": SubscriptionEditForm(request.POST),
            "object": sub,
            "tester": filter_test(request.POST),
        },
    )


@require_POST
@role_required(*roles.TENANT_WRITE_ROLES)
def subscription_test_event(request, object_id):
    sub = _subscription(object_id)
    try:
        answer = delivery_services.subscription_test_event(
            tenant=request.tenant, actor=request.user, subscription=sub
        )
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return redirect(f"/config/subscription/{sub.pk}/edit/")
    messages.success(
        request,
        f"Test event {answer['event_type']} sent to {sub.consumer.name} through this "
        f"subscription (delivery {answer['delivery_id']}); its attempt shows in the log below "
        "once delivered.",
    )
    return redirect(f"/consumers/{sub.consumer_id}/")
