"""Tenant pages about deliveries: the dashboard's chart data, a consumer's endpoint health and
delivery log, one delivery with its attempts and event."""

import logging

from django.contrib import messages
from django.http import Http404, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from broker import services as config_services
from broker.deliveries import selectors as deliveries
from broker.deliveries import services
from broker.functions.shared import records
from broker.models import Consumer
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
            "subscriptions": consumer.subscriptions.order_by("name"),
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
