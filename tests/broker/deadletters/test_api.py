"""Dead-letter API: roles, isolation, filters, constant queries, replay and jobs, alerts,
quarantine."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django_tenants.utils import tenant_context

from broker.deadletters.models import DeadLetter
from broker.dlq.models import QuarantinedMessage
from tests.helpers import HostClient, host_of, token_for
from tests.helpers.deadletters import dead_letter, ingest_all, send_to_dlq

pytestmark = pytest.mark.django_db


def _fill(world, consumer, n, tenant=None, **kwargs):
    tenant = tenant or world.a
    bodies = [dead_letter(tenant, consumer.pk, **kwargs) for _ in range(n)]
    send_to_dlq(*bodies)
    ingest_all()
    return bodies


def _ids(tenant):
    with tenant_context(tenant):
        return [str(i) for i in DeadLetter.objects.values_list("pk", flat=True)]


def test_every_member_reads_and_only_developers_and_admins_act(world, api, dlq, consumer_a):
    _fill(world, consumer_a, 1)
    for user in (world.viewer_a, world.developer_a, world.admin_a):
        assert api(user, world.a).get("/api/v1/dead-letters/").status_code == 200
    viewer = api(world.viewer_a, world.a)
    body = {"filter": {}, "dry_run": True}
    assert viewer.post("/api/v1/dead-letters/replay/", body, format="json").status_code == 403
    assert (
        viewer.post("/api/v1/dead-letters/discard/", {"filter": {}}, format="json").status_code
        == 403
    )
    developer = api(world.developer_a, world.a)
    assert developer.post("/api/v1/dead-letters/replay/", body, format="json").status_code == 200
    token_of_b = token_for(world.admin_b, world.b)
    assert HostClient(host_of(world.a), token_of_b).get("/api/v1/dead-letters/").status_code == 401
    assert api(None, world.a).get("/api/v1/dead-letters/").status_code == 401


def test_another_tenants_letter_is_a_404_like_an_unknown_one(world, api, dlq, consumer_b):
    _fill(world, consumer_b, 1, tenant=world.b)
    [theirs] = _ids(world.b)
    client = api(world.admin_a, world.a)
    assert client.get(f"/api/v1/dead-letters/{theirs}/").status_code == 404
    assert (
        client.get("/api/v1/dead-letters/00000000-0000-4000-8000-000000000000/").status_code == 404
    )
    assert client.get("/api/v1/dead-letters/not-an-id/").status_code == 404
    response = client.post("/api/v1/dead-letters/replay/", {"ids": [theirs]}, format="json")
    assert response.status_code == 400
    assert theirs in response.json()["error"]["fields"]["ids"][0]
    with tenant_context(world.b):
        assert DeadLetter.objects.get().status == "pending"


def test_the_detail_shows_the_payload_and_the_history(world, api, dlq, consumer_a):
    [body] = _fill(world, consumer_a, 1, data={"sku": "A-1"})
    [letter_id] = _ids(world.a)
    data = api(world.viewer_a, world.a).get(f"/api/v1/dead-letters/{letter_id}/").json()
    assert data["payload"] == body.event
    assert data["delivery_id"] == body.delivery.delivery_id
    assert data["consumer_name"] == "orders-hook"
    assert data["failure"] == "503"
    assert [h["event"] for h in data["history"]] == ["dead_lettered"]


def test_the_list_filters_and_refuses_unknown_filters(world, api, dlq, consumer_a):
    _fill(world, consumer_a, 2, status=503)
    _fill(world, consumer_a, 1, status=410, event_type="order.paid")
    client = api(world.viewer_a, world.a)
    assert client.get("/api/v1/dead-letters/").json()["count"] == 3
    assert client.get("/api/v1/dead-letters/", {"event_type": "order.paid"}).json()["count"] == 1
    assert client.get("/api/v1/dead-letters/", {"error": "HTTP 50"}).json()["count"] == 2
    assert client.get("/api/v1/dead-letters/", {"error_kind": "410"}).json()["count"] == 1
    assert (
        client.get("/api/v1/dead-letters/", {"consumer": str(consumer_a.pk)}).json()["count"] == 3
    )
    assert client.get("/api/v1/dead-letters/", {"status": "replayed"}).json()["count"] == 0
    assert (
        client.get("/api/v1/dead-letters/", {"since": "2000-01-01T00:00:00Z"}).json()["count"] == 3
    )
    assert (
        client.get("/api/v1/dead-letters/", {"until": "2000-01-01T00:00:00Z"}).json()["count"] == 0
    )
    for bad in ({"colour": "red"}, {"status": "lost"}, {"since": "2026-01-01T00:00:00+23:00"}):
        response = client.get("/api/v1/dead-letters/", bad)
        assert response.status_code == 400, bad
        assert response.json()["error"]["code"] == "invalid"


def _count_queries(client, path):
    with CaptureQueriesContext(connection) as queries:
        response = client.get(path, {"page_size": 100})
    assert response.status_code == 200
    return len(queries)


def test_the_list_and_the_groups_run_a_constant_number_of_queries(world, api, dlq, consumer_a):
    client = api(world.viewer_a, world.a)
    _fill(world, consumer_a, 1)
    small = [
        _count_queries(client, p) for p in ("/api/v1/dead-letters/", "/api/v1/dead-letters/groups/")
    ]
    for i in range(6):
        _fill(world, consumer_a, 10, status=500 + i, event_type=f"type.{i}")
    large = [
        _count_queries(client, p) for p in ("/api/v1/dead-letters/", "/api/v1/dead-letters/groups/")
    ]
    assert small == large


def test_groups_count_by_consumer_failure_and_type(world, api, dlq, consumer_a):
    _fill(world, consumer_a, 3, status=503)
    _fill(world, consumer_a, 1, status=503, event_type="order.paid")
    _fill(world, consumer_a, 2, error_kind="timeout")
    groups = api(world.viewer_a, world.a).get("/api/v1/dead-letters/groups/").json()["groups"]
    summary = {(g["consumer_name"], g["failure"], g["event_type"]): g["count"] for g in groups}
    assert summary == {
        ("orders-hook", "503", "order.created"): 3,
        ("orders-hook", "503", "order.paid"): 1,
        ("orders-hook", "timeout", "order.created"): 2,
    }
    assert all(g["oldest"] <= g["newest"] for g in groups)


def test_replay_dry_run_then_jobs_with_progress_and_cancel(
    world, api, dlq, consumer_a, django_capture_on_commit_callbacks
):
    _fill(world, consumer_a, 4)
    client = api(world.developer_a, world.a)
    dry = client.post(
        "/api/v1/dead-letters/replay/", {"filter": {}, "dry_run": True}, format="json"
    )
    assert dry.status_code == 200
    assert dry.json()["count"] == 4
    assert dry.json()["by_consumer"][str(consumer_a.pk)]["count"] == 4
    with django_capture_on_commit_callbacks(execute=False):
        response = client.post("/api/v1/dead-letters/replay/", {"filter": {}}, format="json")
    assert response.status_code == 202, response.content
    [job] = response.json()["jobs"]
    assert (job["status"], job["total"], job["consumer_name"]) == ("queued", 4, "orders-hook")
    detail = client.get(f"/api/v1/replay-jobs/{job['id']}/").json()
    assert detail["eta_seconds"] == round(4 / 50, 1)
    again = client.post("/api/v1/dead-letters/replay/", {"filter": {}}, format="json")
    assert again.status_code == 409 and job["id"] in again.json()["error"]["message"]
    assert client.get("/api/v1/replay-jobs/").json()["count"] == 1
    cancelled = client.post(f"/api/v1/replay-jobs/{job['id']}/cancel/")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert client.post(f"/api/v1/replay-jobs/{job['id']}/cancel/").status_code == 409
    assert api(world.admin_b, world.b).get(f"/api/v1/replay-jobs/{job['id']}/").status_code == 404


def test_replay_honours_the_idempotency_key(
    world, api, dlq, consumer_a, django_capture_on_commit_callbacks
):
    _fill(world, consumer_a, 2)
    client = api(world.admin_a, world.a)
    headers = {"HTTP_IDEMPOTENCY_KEY": "replay-2026-11-30"}
    with django_capture_on_commit_callbacks(execute=False):
        first = client.post(
            "/api/v1/dead-letters/replay/", {"filter": {}}, format="json", **headers
        )
        second = client.post(
            "/api/v1/dead-letters/replay/", {"filter": {}}, format="json", **headers
        )
    assert first.status_code == second.status_code == 202
    assert second["Idempotent-Replayed"] == "true"
    assert first.json()["jobs"][0]["id"] == second.json()["jobs"][0]["id"]


def test_bodies_are_strict(world, api, dlq, consumer_a):
    client = api(world.admin_a, world.a)
    for body in (
        {"filter": {}, "colour": "red"},
        {},
        {"ids": [], "filter": {}},
        {"filter": {"status": "discarded"}},
        {"ids": "abc"},
    ):
        response = client.post("/api/v1/dead-letters/replay/", body, format="json")
        assert response.status_code == 400, body
        assert set(response.json()["error"]) == {"code", "message", "fields"}


def test_discard_answers_the_count(world, api, dlq, consumer_a):
    _fill(world, consumer_a, 3)
    client = api(world.admin_a, world.a)
    response = client.post("/api/v1/dead-letters/discard/", {"filter": {}}, format="json")
    assert response.status_code == 200 and response.json() == {"count": 3}
    assert client.get("/api/v1/dead-letters/", {"status": "discarded"}).json()["count"] == 3


def test_dlq_alert_thresholds_are_read_by_members_and_changed_by_admins(world, api):
    assert api(world.viewer_a, world.a).get("/api/v1/dlq-alerts/").json()["backlog"] == 100
    developer = api(world.developer_a, world.a)
    assert developer.patch("/api/v1/dlq-alerts/", {"backlog": 5}, format="json").status_code == 403
    admin = api(world.admin_a, world.a)
    response = admin.patch("/api/v1/dlq-alerts/", {"backlog": 5, "age_minutes": 10}, format="json")
    assert response.status_code == 200
    assert (response.json()["backlog"], response.json()["age_minutes"]) == (5, 10)
    assert admin.patch("/api/v1/dlq-alerts/", {"backlog": 0}, format="json").status_code == 400
    assert admin.patch("/api/v1/dlq-alerts/", {"colour": 1}, format="json").status_code == 400
    reset = admin.patch("/api/v1/dlq-alerts/", {"backlog": None}, format="json").json()
    assert reset["backlog"] == 100 and reset["backlog_is_default"]
    assert api(world.admin_b, world.b).get("/api/v1/dlq-alerts/").json()["age_minutes"] == 60


def test_the_quarantine_is_for_operators_and_support_reads_it(world, api, dlq, consumer_a):
    message = dead_letter(world.a, consumer_a.pk)
    body = message.body().replace(str(world.a.pk), "00000000-0000-4000-8000-0000000000aa")
    send_to_dlq(body)
    send_to_dlq("garbage")
    ingest_all()
    support = api(world.support)
    listed = support.get("/api/v1/quarantine/").json()
    assert listed["count"] == 2
    entries = {e["reason"]: e for e in listed["results"]}
    lost = entries["unknown tenant"]
    assert support.post(f"/api/v1/quarantine/{lost['id']}/discard/").status_code == 403
    assert api(None).get("/api/v1/quarantine/").status_code == 401
    assert api(world.admin_a, world.a).get("/api/v1/quarantine/").status_code == 404
    operator = api(world.operator)
    assigned = operator.post(
        f"/api/v1/quarantine/{lost['id']}/assign/", {"tenant": world.a.slug}, format="json"
    )
    assert assigned.status_code == 200 and assigned.json()["status"] == "assigned"
    with tenant_context(world.a):
        assert DeadLetter.objects.get().delivery_id == message.delivery.delivery_id
    garbage = next(e for e in listed["results"] if e["body"] == "garbage")
    refused = operator.post(
        f"/api/v1/quarantine/{garbage['id']}/assign/", {"tenant": world.a.slug}, format="json"
    )
    assert refused.status_code == 400
    assert operator.post(f"/api/v1/quarantine/{garbage['id']}/discard/").status_code == 200
    assert QuarantinedMessage.objects.filter(status="open").count() == 0
