"""Configuration as code pages: revisions with their diffs, a rollback that shows its plan
and asks first, the export and a pasted document's plan; the same roles as the API."""

import pytest
import yaml
from django.test import Client
from django_tenants.utils import tenant_context

from broker import services
from broker.configcode import revisions
from broker.models import Consumer
from tests.helpers import PUBLIC_URL, host_of

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _dns(fake_dns):
    return fake_dns


def page(user, tenant):
    client = Client(HTTP_HOST=host_of(tenant))
    client.force_login(user)
    return client


@pytest.fixture
def history(world):
    with tenant_context(world.a):
        consumer, _ = services.consumer_create(
            actor=world.admin_a, name="orders", kind="https", url=PUBLIC_URL
        )
        good = revisions.head()
        services.consumer_update(actor=world.admin_a, consumer=consumer, timeout_ms=2500)
    return good


def test_a_viewer_reads_the_revisions_and_a_diff_side_by_side_but_cannot_roll_back(world, history):
    client = page(world.viewer_a, world.a)
    body = client.get(f"/config/revisions/?show={history + 1}").content.decode()
    assert "consumer.update orders" in body
    assert "<code>timeout_ms</code>" in body and "<code>10000</code>" in body
    assert "<code>2500</code>" in body and "Roll back to this" not in body
    assert client.get(f"/config/revisions/{history}/rollback/").status_code == 404
    assert client.get("/config/as-code/").status_code == 404


def test_an_admin_rolls_back_after_seeing_the_plan(world, history):
    client = page(world.admin_a, world.a)
    shown = client.get(f"/config/revisions/{history}/rollback/").content.decode()
    assert "timeout_ms" in shown and 'data-testid="confirm"' in shown
    with tenant_context(world.a):
        assert Consumer.objects.get().timeout_ms == 2500  # nothing done before confirming
    plan_hash = shown.split('name="plan" value="')[1].split('"')[0]
    done = client.post(f"/config/revisions/{history}/rollback/", {"plan": plan_hash})
    assert 'data-testid="rolled-back"' in done.content.decode()
    with tenant_context(world.a):
        assert Consumer.objects.get().timeout_ms == 10_000
    # The same confirmation again is stale: the new plan is shown instead.
    again = client.post(f"/config/revisions/{history}/rollback/", {"plan": plan_hash})
    assert 'data-testid="error"' in again.content.decode()


def test_a_developer_exports_and_plans_a_pasted_document_but_cannot_apply(world, history):
    client = page(world.developer_a, world.a)
    body = client.get("/config/as-code/").content.decode()
    exported = body.split('<pre data-testid="export">')[1].split("</pre>")[0]
    doc = yaml.safe_load(exported.replace("&#x27;", "'").replace("&quot;", '"'))
    doc["consumers"][0]["enabled"] = False
    planned = client.post("/config/as-code/", {"document": yaml.safe_dump(doc)}).content.decode()
    assert "<code>enabled</code>" in planned and 'data-testid="apply"' not in planned
    bad = client.post("/config/as-code/", {"document": "consumers: [{name: x}]"}).content.decode()
    assert "consumers[0]" in bad

    admin = page(world.admin_a, world.a)
    planned = admin.post("/config/as-code/", {"document": yaml.safe_dump(doc)}).content.decode()
    plan_hash = planned.split('name="plan" value="')[1].split('"')[0]
    applied = admin.post(
        "/config/as-code/", {"document": yaml.safe_dump(doc), "plan": plan_hash, "apply": "yes"}
    )
    assert 'data-testid="applied"' in applied.content.decode()
    with tenant_context(world.a):
        assert Consumer.objects.get().enabled is False
