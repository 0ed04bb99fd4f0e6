"""The seed's control-plane endpoints (shared/seeds/002) answer with its documented shapes."""

import pytest

from tenants.models import Tenant

pytestmark = pytest.mark.django_db

SEED_TENANT_KEYS = {
    "tenantName",
    "status",
    "tenantId",
    "created",
    "deploymentType",
    "tenantSafeName",
}
SEED_RESOURCE_KEYS = {
    "LogicalResourceId",
    "PhysicalResourceId",
    "ResourceType",
    "ResourceStatus",
    "LastUpdatedTimestamp",
}


def test_get_tenants_lists_every_tenant_in_the_seed_shape(world, api):
    body = api(world.support).get("/tenants").json()
    assert isinstance(body, list)
    assert all(set(t) == SEED_TENANT_KEYS for t in body)
    a = next(t for t in body if t["tenantId"] == str(world.a.pk))
    assert a["status"] == "running" and a["deploymentType"] == "pool"
    assert a["tenantSafeName"] == "t_tenant_a"
    float(a["created"])  # an epoch timestamp as a string, like the seed


@pytest.mark.parametrize("deployment, tier", [("silo", "dedicated"), ("pool", "basic")])
def test_onboarding_picks_the_default_tier_of_the_deployment_type(
    world, api, deployment, tier, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = api(world.operator).post(
            "/onboarding",
            {"tenantName": f"seed_{deployment}", "deploymentType": deployment},
            format="json",
        )
    assert response.status_code == 202
    body = response.json()
    assert set(body) == SEED_TENANT_KEYS
    tenant = Tenant.objects.get(pk=body["tenantId"])
    assert tenant.tier.name == tier and tenant.slug == f"seed-{deployment}"
    assert tenant.status == "active"


def test_onboarding_with_an_unknown_deployment_type_is_a_400(world, api):
    response = api(world.operator).post(
        "/onboarding", {"tenantName": "x", "deploymentType": "hybrid"}, format="json"
    )
    assert response.status_code == 400
    assert "deploymentType" in response.json()["error"]["fields"]


def test_tenant_info_lists_the_provisioned_resources(
    world, api, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        tenant_id = (
            api(world.operator)
            .post(
                "/onboarding", {"tenantName": "info_silo", "deploymentType": "silo"}, format="json"
            )
            .json()["tenantId"]
        )
    resources = (
        api(world.support).post("/tenant-info", {"tenantId": tenant_id}, format="json").json()
    )
    assert all(SEED_RESOURCE_KEYS <= set(r) for r in resources)
    types = {r["ResourceType"] for r in resources}
    assert {"AWS::SQS::Queue", "Custom::PostgresSchema", "Custom::DynamoDBItem"} <= types
    assert {r["ResourceStatus"] for r in resources} == {"CREATE_COMPLETE"}
    queue = next(r for r in resources if r["ResourceType"] == "AWS::SQS::Queue")
    assert queue["PhysicalResourceId"] == Tenant.objects.get(pk=tenant_id).silo_queue_url


def test_tenant_info_of_an_unknown_tenant_is_404(world, api):
    response = api(world.operator).post(
        "/tenant-info", {"tenantId": "00000000-0000-0000-0000-000000000001"}, format="json"
    )
    assert response.status_code == 404


def test_delete_needs_the_name_and_id_of_the_same_tenant(
    world, api, settings, tmp_path, django_capture_on_commit_callbacks
):
    settings.OFFBOARD_EXPORT_DIR = str(tmp_path)
    client = api(world.operator)
    with django_capture_on_commit_callbacks(execute=True):
        tenant_id = client.post(
            "/onboarding", {"tenantName": "doomed", "deploymentType": "pool"}, format="json"
        ).json()["tenantId"]
    wrong = client.post("/delete", {"tenantName": "Tenant-A", "tenantId": tenant_id}, format="json")
    assert wrong.status_code == 404
    assert Tenant.objects.get(pk=tenant_id).status == "active"
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/delete", {"tenantName": "doomed", "tenantId": tenant_id}, format="json"
        )
    assert response.status_code == 202 and set(response.json()) == SEED_TENANT_KEYS
    assert Tenant.objects.get(pk=tenant_id).status == "deleted"
