"""Every quota has a documented range; values outside it are a 400 naming the quota."""

import pytest

from tenants.models import QUOTA_FIELDS, QUOTA_RANGES, Tier

pytestmark = pytest.mark.django_db


def test_every_quota_has_a_range_and_the_seeded_tiers_sit_inside_it(world):
    assert set(QUOTA_RANGES) == set(QUOTA_FIELDS)
    for tier in Tier.objects.all():
        for name, value in tier.quotas().items():
            low, high = QUOTA_RANGES[name]
            assert low <= value <= high, (tier.name, name, value)


def test_every_quota_range_is_documented():
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "tenants.md").read_text()
    for name, (low, high) in QUOTA_RANGES.items():
        assert f"`{name}`" in doc and f"{high:,}" in doc, name


@pytest.mark.parametrize(
    "name,value",
    [
        ("max_consumers", 10**40),
        ("daily_event_quota", 2_000_000_001),
        ("max_event_size_bytes", 10_000_000),
        ("delivery_concurrency", 0),
        ("ingest_rate_per_second", 1.5),
        ("max_delivery_attempts", True),
    ],
)
def test_an_override_outside_its_range_is_a_400_naming_the_quota(world, api, name, value):
    client = api(world.operator)
    before = world.a.__class__.objects.get(pk=world.a.pk).quota_overrides
    response = client.patch(
        f"/api/v1/tenants/{world.a.pk}/", {"quota_overrides": {name: value}}, format="json"
    )
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert name in str(error["fields"]["quota_overrides"])
    assert world.a.__class__.objects.get(pk=world.a.pk).quota_overrides == before


def test_onboarding_and_tier_updates_check_the_ranges_too(world, api):
    client = api(world.operator)
    onboarding = client.post(
        "/api/v1/tenants/",
        {
            "name": "Huge",
            "slug": "huge",
            "tier": "basic",
            "admin_email": "a@huge.test",
            "quota_overrides": {"max_producers": 10**12},
        },
        format="json",
    )
    assert onboarding.status_code == 400 and "max_producers" in str(onboarding.json())
    tier = client.patch("/api/v1/tiers/basic/", {"api_requests_per_minute": 10**9}, format="json")
    assert tier.status_code == 400
    assert "api_requests_per_minute" in tier.json()["error"]["fields"]


def test_the_highest_value_of_a_range_is_accepted(world, api):
    client = api(world.operator)
    response = client.patch(
        f"/api/v1/tenants/{world.a.pk}/",
        {"quota_overrides": {"delivery_concurrency": QUOTA_RANGES["delivery_concurrency"][1]}},
        format="json",
    )
    assert response.status_code == 200, response.content
