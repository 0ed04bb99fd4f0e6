"""Tenant pages about deliveries: the dashboard's chart data, a consumer's endpoint health and
delivery log, one delivery with its attempts and event."""

import logging

from django.contrib import messages
from django.http import Http404, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from broker import services as config_services
from broker.deliveries import held_keys, services
from broker.deliveries import selectors as deliveries
from broker.functions.shared import records
from broker.models import Consumer, Subscription
from core.errors import ApplicationError
from core.handled import handled
from portal.pages.views import role_required
from tenants import roles

logger = logging.getLogger(__name__)


def _quota(tenant) -> int | None:
    return tenant.effective_quotas().get("daily_event_quota")


@role_required(*roles.TENANT_READ_ROLES)
def dashboard_data(request):
    try:
        hours = int(request.GET.get("hours", 24))
    except ValueError:
        hours = 24
    if hours not in deliveries.DASHBOARD_HOURS:
        hours = 24
    consumer_ids = list(Consumer.objects.order_by("name").values_list("pk", flat=True)[:200])
    data = deliveries.tenant_dashboard(
        request.tenant.pk,
        consumer_ids=consumer_ids,
        daily_quota=_quota(request.tenant),
        hours=hours,
    )
    return JsonResponse(data, headers={"Cache-Control": "private, max-age=10"})


STATUS_CHOICES = (("", "All attempts"), *((s, s) for s in records.STATUSES))


@role_required(*roles.TENANT_READ_ROLES)
def consumer_page(request, consumer_id):
    consumer = get_object_or_404(Consumer, pk=consumer_id)
    status = request.GET.get("status", "")
    if status not in records.STATUSES:
        status = ""
    before = request.GET.get("before") or None
    unavailable = ""
    throttled = None
    subscriptions = list(consumer.subscriptions.order_by("name"))
    held, held_unavailable = _held_section(request.tenant, subscriptions)
    try:
        health = deliveries.consumer_health(request.tenant.pk, consumer.pk)
        log = deliveries.consumer_log(
            request.tenant.pk, consumer.pk, status=status or None, before=before, limit=50
        )
        throttled = deliveries.consumer_throttled(request.tenant.pk, consumer.pk)
    except Exception as exc:  # the page stays up when the data plane's table is not
        handled(
            logger,
            "consumer_page_records",
            "consumer page: delivery records unavailable: %s",
            exc,
            level=logging.WARNING,
        )
        health, log = None, []
        unavailable = "Delivery records are unavailable right now."
    return render(
        request,
        "portal/consumer.html",
        {
            "consumer": consumer,
            "subscriptions": subscriptions,
            "held_keys": held,
            # The section shows where keys can be held (or still are, after a change).
            "holds": bool(held or held_unavailable)
            or any(s.ordered and s.on_head_failure == "hold" for s in subscriptions),
            "held_unavailable": held_unavailable,
            "throttled": throttled,
            "health": health,
            "log": log,
            "status": status,
            "statuses": STATUS_CHOICES,
            "next_cursor": log[-1]["cursor"] if len(log) == 50 else None,
            "unavailable": unavailable,
            "can_write": roles.resolve_role(request) in roles.TENANT_WRITE_ROLES,
        },
    )


def _held_section(tenant, subscriptions) -> tuple[list[dict], str]:
    """The held keys, or none and why: the page stays up when the data plane's table is not."""
    try:
        return _held_keys(tenant, subscriptions), ""
    except Exception as exc:
        handled(
            logger,
            "consumer_page_held_keys",
            "consumer page: held keys unavailable: %s",
            exc,
            level=logging.WARNING,
        )
        return [], "Held keys are unavailable right now."


def _held_keys(tenant, subscriptions) -> list[dict]:
    """The held keys of the consumer's subscriptions, each with its subscription: one read of
    the tenant's summary, then one per subscription that holds keys."""
    holding = held_keys.tenant_held_summary(tenant)["subscriptions"]
    ours = {str(s.pk): s for s in subscriptions}
    out = []
    for row in holding:
        sub = ours.get(row["subscription_id"])
        if sub is not None:
            keys = held_keys.held_keys_list(tenant=tenant, subscription=sub)
            out.extend(
                {"subscription": sub, "oldest_display": k["oldest"][:19].replace("T", " "), **k}
                for k in keys
            )
    return out


@role_required(*roles.TENANT_READ_ROLES)
def delivery_page(request, delivery_id):
    history = deliveries.delivery_history(request.tenant.pk, delivery_id)
    if history is None:
        raise Http404
    consumer_id = history["attempts"][0].get("consumer_id") if history["attempts"] else None
    consumer = Consumer.objects.filter(pk=consumer_id).first() if consumer_id else None
    return render(
        request,
        "portal/delivery.html",
        {
            "delivery": history,
            "event_json": deliveries.pretty_json(history["event"]),
            "consumer": consumer,
            "can_write": roles.resolve_role(request) in roles.TENANT_WRITE_ROLES,
        },
    )


@require_POST
@role_required(*roles.TENANT_WRITE_ROLES)
def delivery_resend(request, delivery_id):
    try:
        answer = services.delivery_resend(
            tenant=request.tenant, actor=request.user, delivery_id=delivery_id
        )
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Sent again (replay {answer['replay']}); it shows in the log.")
    return redirect(f"/deliveries/{delivery_id}/")


@require_POST
@role_required(*roles.TENANT_WRITE_ROLES)
def consumer_test_event(request, consumer_id):
    consumer = get_object_or_404(Consumer, pk=consumer_id)
    try:
        answer = services.consumer_test_event(
            tenant=request.tenant, actor=request.user, consumer=consumer
        )
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(
            request,
            f"Test event sent to {consumer.name} (delivery {answer['delivery_id']}); "
            "its attempt shows in the log below once delivered.",
        )
    return redirect(f"/consumers/{consumer.pk}/")


@require_POST
@role_required(*roles.TENANT_WRITE_ROLES)
def consumer_enable(request, consumer_id):
    consumer = get_object_or_404(Consumer, pk=consumer_id)
    try:
        config_services.consumer_update(actor=request.user, consumer=consumer, enabled=True)
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"{consumer.name} is enabled again; deliveries resume.")
    return redirect(f"/consumers/{consumer.pk}/")


HELD_ACTIONS = {"retry": held_keys.held_key_retry, "skip": held_keys.held_key_skip}


@require_POST
@role_required(*roles.TENANT_WRITE_ROLES)
def held_key_action(request, consumer_id, subscription_id, action):
    """Retry or skip a held key from the consumer page (its form names the key)."""
    consumer = get_object_or_404(Consumer, pk=consumer_id)
    sub = get_object_or_404(Subscription, pk=subscription_id, consumer=consumer)
    if action not in HELD_ACTIONS or not isinstance(request.POST.get("key"), str):
        raise Http404
    key = request.POST["key"]
    try:
        answer = HELD_ACTIONS[action](
            tenant=request.tenant, actor=request.user, subscription=sub, key=key
        )
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        if action == "retry":
            done = f"its head is sent again, then {answer['released'] - 1} held event(s) in order"
        else:
            done = f"its head is dead-lettered; {answer['released']} held event(s) follow in order"
        messages.success(request, f"Key {key!r} of {sub.name}: {done}.")
    return redirect(f"/consumers/{consumer.pk}/#held")
