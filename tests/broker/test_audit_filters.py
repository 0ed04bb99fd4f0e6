"""Audit log time filters: what PostgreSQL cannot hold is a 400, not a 500."""

import pytest

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("offset", ["+16:00", "-16:00", "+23:59"])
def test_an_audit_time_with_an_offset_postgresql_cannot_hold_is_a_400(world, api, offset):
    client = api(world.admin_a, world.a)
    for name in ("since", "until"):
        response = client.get("/api/v1/audit-events/", {name: f"2026-01-01T00:00:00{offset}"})
        assert response.status_code == 400, response.content
        error = response.json()["error"]
        assert name in error["fields"]


def test_an_audit_time_with_an_ordinary_offset_still_filters(world, api):
    client = api(world.admin_a, world.a)
    response = client.get("/api/v1/audit-events/", {"since": "2026-01-01T00:00:00+14:00"})
    assert response.status_code == 200
