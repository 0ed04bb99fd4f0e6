"""Export, plan and apply over the tenant API: what a team keeping its broker in git relies on."""

import json

import pytest
import yaml
from django_tenants.utils import tenant_context

from broker import services
from broker.configcode import revisions
from broker.models import Consumer, Producer, Subscription
from tests.helpers import PUBLIC_URL

pytestmark = pytest.mark.django_db

QUEUE = "arn:aws:sqs:eu-west-1:123456789012:sink"


def configure(actor):
    """A configuration with one of everything, filters and a schema included."""
    shop, _ = services.producer_create(
        actor=actor, name="shop", kind="https", allowed_event_types=["order.*"], ingest_burst=5
    )
    services.producer_create(actor=actor, name="billing", kind="https", description="invoices")
    orders, _ = services.consumer_create(
        actor=actor, name="orders-api", kind="https", url=PUBLIC_URL, timeout_ms=5000
    )
    # https: a queue belongs to one tenant, and these tests copy the configuration to another.
    sink, _ = services.consumer_create(
        actor=actor, name="sink", kind="https", url="https://receiver.example.net/in"
    )
    services.subscription_create(
        actor=actor,
        consumer=orders,
        event_type="order.created",
        producer=shop,
        filter={"data": {"total": [{"numeric": [">", 100]}], "country": ["FR", "DE"]}},
    )
    services.subscription_create(actor=actor, consumer=sink, event_type="order.*", enabled=False)
    services.event_type_create(
        actor=actor,
        name="order.created",
        schema={"type": "object", "properties": {"total": {"type": "number"}}},
    )


def test_an_export_applied_to_another_tenant_reproduces_it_byte_for_byte(world, api):
    with tenant_context(world.a):
        configure(world.admin_a)
    a = api(world.developer_a, world.a)
    first = a.get("/api/v1/config/export/")
    assert first.status_code == 200, first.content
    assert a.get("/api/v1/config/export/").content == first.content
    doc = first.json()
    assert list(doc) == ["producers", "consumers", "subscriptions", "event_types"]
    assert [p["name"] for p in doc["producers"]] == ["billing", "shop"]
    sub = next(s for s in doc["subscriptions"] if s["event_type"] == "order.created")
    assert sub["name"] == "orders-api.order.created"
    assert (sub["consumer"], sub["producer"]) == ("orders-api", "shop")
    # No ids, no secrets: a reference where a secret exists.
    assert "id" not in first.content.decode() and "consumer_id" not in first.content.decode()
    orders = next(c for c in doc["consumers"] if c["name"] == "orders-api")
    assert orders["signing_secret"] == {"ref": "stored"}

    b = api(world.admin_b, world.b)
    plan = b.post("/api/v1/config/plan/", doc, format="json")
    assert plan.status_code == 200, plan.content
    assert {c["action"] for c in plan.json()["changes"]} == {"create"}
    applied = b.post(
        "/api/v1/config/apply/", {"document": doc, "plan": plan.json()["hash"]}, format="json"
    )
    assert applied.status_code == 200, applied.content
    body = applied.json()
    assert body["changes"] == len(plan.json()["changes"]) == 7
    shown = {(s["name"], s["field"]) for s in body["secrets"]}
    assert shown == {
        ("shop", "api_key"),
        ("billing", "api_key"),
        ("orders-api", "signing_secret"),
        ("sink", "signing_secret"),
    }

    assert b.get("/api/v1/config/export/").content == first.content
    # Nothing left to do: the plan of the same document is empty.
    assert b.post("/api/v1/config/plan/", doc, format="json").json()["changes"] == []
    # One apply, one revision.
    with tenant_context(world.b):
        assert revisions.head() == body["revision"]
        assert revisions.document_at(body["revision"]) == doc


def test_the_export_is_yaml_when_asked(world, api):
    with tenant_context(world.a):
        configure(world.admin_a)
    a = api(world.developer_a, world.a)
    as_yaml = a.get("/api/v1/config/export/", HTTP_ACCEPT="application/yaml")
    assert as_yaml.status_code == 200
    assert as_yaml["Content-Type"].startswith("application/yaml")
    assert yaml.safe_load(as_yaml.content) == a.get("/api/v1/config/export/").json()


@pytest.mark.parametrize("value, status", [("json", 200), ("yaml", 200), ("", 404), ("xml", 404)])
def test_the_export_takes_only_the_formats_its_schema_names(world, api, value, status):
    a = api(world.developer_a, world.a)
    answer = a.get(f"/api/v1/config/export/?format={value}")
    assert answer.status_code == status
    if status == 404:
        assert answer.json()["error"]["code"] == "not_found"


def test_a_change_between_plan_and_apply_is_a_409_conflict(world, api):
    with tenant_context(world.a):
        configure(world.admin_a)
    a = api(world.admin_a, world.a)
    doc = a.get("/api/v1/config/export/").json()
    doc["consumers"][0]["description"] = "changed in git"
    plan = a.post("/api/v1/config/plan/", doc, format="json").json()
    assert [c["fields"] for c in plan["changes"]] == [{"description": ["", "changed in git"]}]

    with tenant_context(world.a):  # someone changes something else meanwhile
        services.producer_update(
            actor=world.admin_a,
            producer=Producer.objects.get(name="shop"),
            enabled=False,
        )
    stale = a.post("/api/v1/config/apply/", {"document": doc, "plan": plan["hash"]}, format="json")
    assert stale.status_code == 409, stale.content
    assert stale.json()["error"]["code"] == "conflict"
    with tenant_context(world.a):
        assert Consumer.objects.get(name=doc["consumers"][0]["name"]).description == ""

    fresh = a.post("/api/v1/config/plan/", doc, format="json").json()
    assert fresh["base_revision"] == plan["base_revision"] + 1
    done = a.post("/api/v1/config/apply/", {"document": doc, "plan": fresh["hash"]}, format="json")
    assert done.status_code == 200, done.content


def test_a_bad_document_is_a_400_naming_each_path(world, api):
    a = api(world.developer_a, world.a)
    doc = {
        "producers": [{"name": "p", "kind": "https"}, {"name": "p", "kind": "https"}],
        "consumers": [
            {"name": "c", "kind": "https", "url": "https://hooks.example.com/"},
            {"name": "d", "kind": "https"},
            {"name": "e", "kind": "carrier-pigeon", "url": 7, "colour": "red"},
        ],
    }
    response = a.post("/api/v1/config/plan/", doc, format="json")
    assert response.status_code == 400
    fields = response.json()["error"]["fields"]
    assert set(fields) == {"consumers[2].kind", "consumers[2].url", "consumers[2].colour"}
    assert fields["consumers[2].colour"] == ["Unknown field."]

    doc["consumers"] = doc["consumers"][:1]
    doc["subscriptions"] = [{"name": "s", "consumer": "nobody", "event_type": "a.b"}]
    fields = a.post("/api/v1/config/plan/", doc, format="json").json()["error"]["fields"]
    assert set(fields) == {"producers[1].name", "subscriptions[0].consumer"}


def test_a_service_refusing_a_change_at_apply_is_a_400_with_the_path_and_keeps_nothing(world, api):
    a = api(world.admin_a, world.a)
    doc = {
        "producers": [{"name": "ok", "kind": "sqs", "source_queue_arn": QUEUE}],
        "consumers": [{"name": "inside", "kind": "https", "url": "https://intranet.example.com/"}],
    }
    plan = a.post("/api/v1/config/plan/", doc, format="json").json()
    response = a.post(
        "/api/v1/config/apply/", {"document": doc, "plan": plan["hash"]}, format="json"
    )
    assert response.status_code == 400, response.content
    assert list(response.json()["error"]["fields"]) == ["consumers[0].url"]
    with tenant_context(world.a):
        assert not Consumer.objects.exists()
        assert not Producer.objects.exists()


def test_names_are_the_identity_unless_the_document_says_previous_name(world, api):
    with tenant_context(world.a):
        configure(world.admin_a)
        sub_id = Subscription.objects.get(name="sink.order.*").pk
    a = api(world.admin_a, world.a)
    doc = a.get("/api/v1/config/export/").json()
    sub = next(s for s in doc["subscriptions"] if s["name"] == "sink.order.*")
    sub["name"] = "all-orders"
    plan = a.post("/api/v1/config/plan/", doc, format="json").json()
    assert [(c["action"], c["name"]) for c in plan["changes"]] == [
        ("delete", "sink.order.*"),
        ("create", "all-orders"),
    ]
    sub["previous_name"] = "sink.order.*"
    plan = a.post("/api/v1/config/plan/", doc, format="json").json()
    assert [(c["action"], c["name"], c["fields"]) for c in plan["changes"]] == [
        ("update", "all-orders", {"name": ["sink.order.*", "all-orders"]})
    ]
    done = a.post("/api/v1/config/apply/", {"document": doc, "plan": plan["hash"]}, format="json")
    assert done.status_code == 200, done.content
    with tenant_context(world.a):
        assert Subscription.objects.get(name="all-orders").pk == sub_id


def test_filters_are_compared_as_json_not_as_text(world, api):
    with tenant_context(world.a):
        configure(world.admin_a)
    a = api(world.admin_a, world.a)
    text = a.get("/api/v1/config/export/").content.decode()
    doc = json.loads(text)
    sub = next(s for s in doc["subscriptions"] if s["name"] == "orders-api.order.created")
    sub["filter"] = {"data": {"country": ["FR", "DE"], "total": [{"numeric": [">", 100]}]}}
    assert a.post("/api/v1/config/plan/", doc, format="json").json()["changes"] == []


def test_the_command_exports_plans_and_applies_for_ci(world, tmp_path):
    from django.core.management import CommandError, call_command

    with tenant_context(world.a):
        configure(world.admin_a)
    exported = tmp_path / "broker.yaml"
    with exported.open("w") as out:
        call_command(
            "broker_config", "export", "--tenant", world.a.slug, "--format", "yaml", stdout=out
        )
    doc = yaml.safe_load(exported.read_text())
    assert [c["name"] for c in doc["consumers"]] == ["orders-api", "sink"]

    doc["consumers"][1]["enabled"] = False
    changed = tmp_path / "changed.json"
    changed.write_text(json.dumps(doc))
    planned = tmp_path / "plan.json"
    with planned.open("w") as out:
        call_command("broker_config", "plan", str(changed), "--tenant", world.a.slug, stdout=out)
    plan = json.loads(planned.read_text())
    assert [(c["name"], c["fields"]) for c in plan["changes"]] == [
        ("sink", {"enabled": [True, False]})
    ]
    applied = tmp_path / "applied.json"
    with applied.open("w") as out:
        call_command(
            "broker_config",
            "apply",
            str(changed),
            "--tenant",
            world.a.slug,
            "--plan",
            plan["hash"],
            "--actor",
            world.admin_a.email,
            stdout=out,
        )
    assert json.loads(applied.read_text())["changes"] == 1
    with pytest.raises(CommandError) as stale:
        call_command(
            "broker_config", "apply", str(changed), "--tenant", world.a.slug, "--plan", plan["hash"]
        )
    assert stale.value.returncode == 2 and "conflict" in str(stale.value)
