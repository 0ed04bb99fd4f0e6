import pytest

pytestmark = pytest.mark.django_db


def test_healthz_reports_every_dependency_ok(client):
    response = client.get("/healthz", HTTP_HOST="localhost")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "checks": {"database": {"ok": True}, "redis": {"ok": True}, "aws": {"ok": True}},
    }


def test_healthz_is_503_naming_what_is_down(client, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    settings.DYNAMODB_CONFIG_TABLE = "no-such-table"
    response = client.get("/healthz", HTTP_HOST="localhost")
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["database"]["ok"] is True
    assert checks["redis"]["ok"] is False and checks["aws"]["ok"] is False


def test_the_api_schema_and_offline_swagger_ui_are_served(client):
    schema = client.get("/api/schema/", HTTP_HOST="localhost")
    assert schema.status_code == 200 and b"/api/v1/tenants/" in schema.content
    docs = client.get("/api/docs/", HTTP_HOST="localhost")
    assert docs.status_code == 200
    assert (
        b"cdn" not in docs.content.lower() and b"/static/drf_spectacular_sidecar/" in docs.content
    )


def test_each_host_documents_its_own_api(world, client):
    tenant_schema = client.get("/api/schema/", HTTP_HOST="tenant-a.localhost").content
    assert b"/api/v1/members/" in tenant_schema and b"/api/v1/tenants/" not in tenant_schema
