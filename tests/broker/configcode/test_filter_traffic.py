"""A changed filter's plan says how much of the tenant's recent traffic the old and the new
filter match: a filter that would drop everything is seen before it ships."""

import uuid

import pytest
from django_tenants.utils import tenant_context

from broker import services
from tests import dataplane_items as dp
from tests.helpers import PUBLIC_URL

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("empty_dataplane")]


def test_the_plan_counts_the_sample_the_old_and_the_new_filter_match(world, api):
    with tenant_context(world.a):
        orders, _ = services.consumer_create(
            actor=world.admin_a, name="orders", kind="https", url=PUBLIC_URL
        )
        audit, _ = services.consumer_create(
            actor=world.admin_a, name="audit", kind="https", url="https://receiver.example.net/"
        )
        services.subscription_create(
            actor=world.admin_a,
            consumer=orders,
            event_type="order.created",
            filter={"data": {"total": [{"numeric": [">", 100]}]}},
        )
        services.subscription_create(actor=world.admin_a, consumer=audit, event_type="order.*")
    # Recent traffic: the audit consumer saw every order, the orders consumer the big ones.
    for i, total in enumerate([5, 50, 150, 500]):
        event = {"id": f"evt_{i}", "type": "order.created", "data": {"total": total}}
        for consumer in [audit] + ([orders] if total > 100 else []):
            dp.attempt(
                world.a,
                consumer.pk,
                delivery_id=str(uuid.uuid4()),
                at=dp.minutes_ago(i + 1),
                event_id=f"evt_{i}",
                event=event,
            )
    dp.attempt(  # another type: not in the sample
        world.a, audit.pk, delivery_id="d-other", at=dp.minutes_ago(9), event_type="order.paid"
    )

    client = api(world.developer_a, world.a)
    doc = client.get("/api/v1/config/export/").json()
    sub = next(s for s in doc["subscriptions"] if s["name"] == "orders.order.created")
    sub["filter"] = {"data": {"total": [{"numeric": [">", 1000]}]}}
    plan = client.post("/api/v1/config/plan/", doc, format="json").json()
    (change,) = plan["changes"]
    traffic = change["traffic"]
    assert (traffic["sample"], traffic["old_filter_matches"], traffic["new_filter_matches"]) == (
        4,
        2,
        0,
    )
    assert "no subscription delivered" in traffic["leaves_out"]
    # The figures are not part of the plan's hash: new traffic does not make it stale.
    again = client.post("/api/v1/config/plan/", doc, format="json").json()
    assert again["hash"] == plan["hash"]
