"""Issue 18's fields in the configuration document: exported, planned and applied like every
other field, and read as their defaults in revisions stored before they existed."""

import pytest
from django_tenants.utils import tenant_context

from broker import services
from broker.configcode import revisions
from broker.configcode.models import ConfigRevisionEntry
from broker.models import Consumer, Subscription
from tests.helpers import PUBLIC_URL

pytestmark = pytest.mark.django_db


def configure(actor):
    orders, _ = services.consumer_create(
        actor=actor, name="orders-api", kind="https", url=PUBLIC_URL, rate_limit_per_second=5
    )
    services.subscription_create(
        actor=actor,
        consumer=orders,
        event_type="order.*",
        ordered=True,
        ordering_key_path="data.order_id",
        on_head_failure="hold",
    )


def test_ordering_and_the_rate_limit_round_trip_through_export_and_apply(world, api):
    with tenant_context(world.a):
        configure(world.admin_a)
    a = api(world.developer_a, world.a)
    exported = a.get("/api/v1/config/export/")
    doc = exported.json()
    (consumer,) = doc["consumers"]
    (sub,) = doc["subscriptions"]
    assert consumer["rate_limit_per_second"] == 5
    assert list(sub)[-3:] == ["ordered", "ordering_key_path", "on_head_failure"]
    assert (sub["ordered"], sub["ordering_key_path"], sub["on_head_failure"]) == (
        True,
        "data.order_id",
        "hold",
    )

    b = api(world.admin_b, world.b)
    plan = b.post("/api/v1/config/plan/", doc, format="json").json()
    applied = b.post(
        "/api/v1/config/apply/", {"document": doc, "plan": plan["hash"]}, format="json"
    )
    assert applied.status_code == 200, applied.content
    assert b.get("/api/v1/config/export/").content == exported.content
    with tenant_context(world.b):
        stored = Subscription.objects.get()
        assert (stored.ordered, stored.ordering_key_path, stored.on_head_failure) == (
            True,
            "data.order_id",
            "hold",
        )
        assert Consumer.objects.get().rate_limit_per_second == 5


def test_a_plan_shows_a_change_of_ordering_and_rate_and_apply_makes_it(world, api):
    with tenant_context(world.a):
        configure(world.admin_a)
    a = api(world.admin_a, world.a)
    doc = a.get("/api/v1/config/export/").json()
    doc["subscriptions"][0]["on_head_failure"] = "skip"
    del doc["subscriptions"][0]["ordered"]  # omitted: the default, false
    doc["consumers"][0]["rate_limit_per_second"] = None
    plan = a.post("/api/v1/config/plan/", doc, format="json").json()
    fields = {c["object_type"]: c["fields"] for c in plan["changes"]}
    assert fields == {
        "consumer": {"rate_limit_per_second": [5, None]},
        "subscription": {"ordered": [True, False], "on_head_failure": ["hold", "skip"]},
    }
    done = a.post("/api/v1/config/apply/", {"document": doc, "plan": plan["hash"]}, format="json")
    assert done.status_code == 200, done.content
    with tenant_context(world.a):
        sub = Subscription.objects.get()
        assert (sub.ordered, sub.on_head_failure) == (False, "skip")


@pytest.mark.parametrize(
    "section, field, value",
    [
        ("subscriptions", "on_head_failure", "retry"),
        ("subscriptions", "ordered", "yes"),
        ("subscriptions", "ordering_key_path", 7),
        ("consumers", "rate_limit_per_second", 0),
        ("consumers", "rate_limit_per_second", "5"),
    ],
)
def test_a_document_with_a_wrong_ordering_or_rate_value_is_a_400_at_its_path(
    world, api, section, field, value
):
    with tenant_context(world.a):
        configure(world.admin_a)
    a = api(world.admin_a, world.a)
    doc = a.get("/api/v1/config/export/").json()
    doc[section][0][field] = value
    answer = a.post("/api/v1/config/plan/", doc, format="json")
    assert answer.status_code == 400
    assert f"{section}[0].{field}" in answer.json()["error"]["fields"]


def test_a_rate_above_the_tier_quota_is_refused_at_apply_with_its_path(world, api):
    with tenant_context(world.a):
        configure(world.admin_a)
    a = api(world.admin_a, world.a)
    doc = a.get("/api/v1/config/export/").json()
    doc["consumers"][0]["rate_limit_per_second"] = 100_000
    plan = a.post("/api/v1/config/plan/", doc, format="json").json()
    answer = a.post("/api/v1/config/apply/", {"document": doc, "plan": plan["hash"]}, format="json")
    assert answer.status_code == 400
    assert "consumers[0].rate_limit_per_second" in answer.json()["error"]["fields"]


def test_a_revision_stored_before_the_fields_existed_reads_them_as_defaults(world):
    with tenant_context(world.a):
        configure(world.admin_a)
        head = revisions.head()
        for entry in ConfigRevisionEntry.objects.filter(
            object_type__in=["consumer", "subscription"]
        ):
            for name in (
                "rate_limit_per_second",
                "ordered",
                "ordering_key_path",
                "on_head_failure",
            ):
                entry.body.pop(name, None)
            entry.save(update_fields=["body"])
        doc = revisions.document_at(head)
    assert doc["consumers"][0]["rate_limit_per_second"] is None
    sub = doc["subscriptions"][0]
    assert (sub["ordered"], sub["ordering_key_path"], sub["on_head_failure"]) == (False, "", "skip")
