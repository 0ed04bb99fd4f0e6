"""Who may do what: admins apply and roll back, developers export and plan, viewers read
revisions; another tenant's revisions do not exist for you."""

import pytest
from django_tenants.utils import tenant_context

from broker import services
from broker.configcode import revisions

pytestmark = pytest.mark.django_db

EMPTY = {"producers": [], "consumers": [], "subscriptions": [], "event_types": []}


@pytest.fixture
def revision_a(world):
    with tenant_context(world.a):
        services.producer_create(actor=world.admin_a, name="shop", kind="https")
        return revisions.head()


def _status(client, method, path, body=None):
    return getattr(client, method)(path, body, format="json").status_code


def test_viewers_read_revisions_but_neither_export_nor_plan_nor_apply(world, api, revision_a):
    viewer = api(world.viewer_a, world.a)
    assert _status(viewer, "get", "/api/v1/config/revisions/") == 200
    assert _status(viewer, "get", f"/api/v1/config/revisions/{revision_a}/") == 200
    assert _status(viewer, "get", f"/api/v1/config/diff/?from=0&to={revision_a}") == 200
    assert _status(viewer, "get", "/api/v1/config/export/") == 403
    assert _status(viewer, "post", "/api/v1/config/plan/", EMPTY) == 403
    assert _status(viewer, "post", "/api/v1/config/apply/", {"document": EMPTY, "plan": "x"}) == 403
    assert _status(viewer, "post", "/api/v1/config/rollback/", {"revision": 1}) == 403


def test_developers_export_and_plan_but_only_admins_apply_and_roll_back(world, api, revision_a):
    developer = api(world.developer_a, world.a)
    assert _status(developer, "get", "/api/v1/config/export/") == 200
    plan = developer.post("/api/v1/config/plan/", EMPTY, format="json").json()
    assert plan["changes"][0]["action"] == "delete"
    body = {"document": EMPTY, "plan": plan["hash"]}
    assert _status(developer, "post", "/api/v1/config/apply/", body) == 403
    dry = {"revision": revision_a, "dry_run": True}
    assert _status(developer, "post", "/api/v1/config/rollback/", dry) == 200
    assert _status(developer, "post", "/api/v1/config/rollback/", {"revision": revision_a}) == 403

    admin = api(world.admin_a, world.a)
    assert _status(admin, "post", "/api/v1/config/apply/", body) == 200


def test_another_tenants_revisions_are_not_found(world, api, revision_a):
    with tenant_context(world.b):
        assert revisions.head() < revision_a
    b = api(world.admin_b, world.b)
    assert _status(b, "get", f"/api/v1/config/revisions/{revision_a}/") == 404
    assert all(
        "shop" not in r["summary"] for r in b.get("/api/v1/config/revisions/").json()["results"]
    )
    # A token for tenant a is no key to tenant b's host.
    from tests.helpers import HostClient, host_of, token_for

    stranger = HostClient(host_of(world.b), token_for(world.admin_a, world.a))
    assert stranger.get("/api/v1/config/export/").status_code in (401, 404)
