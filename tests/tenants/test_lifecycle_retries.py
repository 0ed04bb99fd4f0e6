"""Provisioning and offboarding retry a failed step with backoff, then stop for an operator,
who can retry or resume them; a run whose worker died is re-queued by the resume job.
(Celery runs eagerly here, so the retries run at once; tests/tenants/test_lifecycle_faults.py
kills real workers.)"""

from datetime import timedelta

import pytest
from django.utils import timezone

from broker.sync import contract, dynamo
from tenants import services, tasks
from tenants.models import Tenant, TenantStatus
from tests.helpers import HostClient, host_of, onboard, token_for

pytestmark = pytest.mark.django_db

S = TenantStatus


def failing(monkeypatch, module, name, times):
    """Makes module.name raise `times` times, then behave; returns the call counter."""
    real = getattr(module, name)
    calls = {"n": 0}

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] <= times:
            raise dynamo_error()
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, flaky)
    return calls


def dynamo_error():
    from botocore.exceptions import EndpointConnectionError

    return EndpointConnectionError(endpoint_url="http://dynamodb.unreachable")


def test_a_provisioning_step_that_fails_twice_is_retried_and_the_tenant_ends_active(
    monkeypatch, settings, django_capture_on_commit_callbacks
):
    settings.TENANT_LIFECYCLE_MAX_RETRIES = 3
    calls = failing(monkeypatch, dynamo, "put_versioned", times=2)
    with django_capture_on_commit_callbacks(execute=True):
        tenant = services.tenant_onboard(name="Retry", slug="retried", tier="basic")
    tenant.refresh_from_db()
    assert tenant.status == S.ACTIVE and tenant.provisioning_error == ""
    assert calls["n"] == 3
    assert dynamo.get_item(contract.tenant_pk(tenant.pk), "TENANT")["status"] == "active"
    assert list(tenant.events.values_list("action", flat=True)) == ["onboard", "provisioned"]


def test_provisioning_that_keeps_failing_is_failed_after_its_last_retry(
    monkeypatch, settings, django_capture_on_commit_callbacks
):
    settings.TENANT_LIFECYCLE_MAX_RETRIES = 2
    calls = failing(monkeypatch, dynamo, "put_versioned", times=100)
    with django_capture_on_commit_callbacks(execute=True):
        tenant = services.tenant_onboard(name="Down", slug="down-for-good", tier="basic")
    tenant.refresh_from_db()
    assert calls["n"] == 3  # the first attempt and two retries
    assert tenant.status == S.FAILED and "EndpointConnectionError" in tenant.provisioning_error
    assert list(tenant.events.values_list("action", flat=True)) == [
        "onboard",
        "provisioning_failed",
    ]


def test_the_retry_waits_longer_each_time_up_to_the_maximum(settings):
    settings.TENANT_LIFECYCLE_RETRY_BACKOFF_SECONDS = 5
    settings.TENANT_LIFECYCLE_RETRY_BACKOFF_MAX_SECONDS = 300

    class Request:
        retries = 0

    class Task:
        request = Request()

    ceilings = []
    for retries in range(8):
        Task.request.retries = retries
        waits = [tasks._attempt(Task)[1] for _ in range(200)]
        assert min(waits) >= 0
        ceilings.append(max(waits))
    assert ceilings[0] <= 5 and ceilings[2] <= 20 and 20 < ceilings[3] <= 40
    assert max(ceilings) <= 300


def test_an_offboarding_failing_once_is_retried_and_completes(
    monkeypatch, settings, tmp_path, django_capture_on_commit_callbacks
):
    settings.OFFBOARD_EXPORT_DIR = str(tmp_path)
    settings.TENANT_LIFECYCLE_MAX_RETRIES = 3
    tenant = onboard("leaving-once")
    calls = failing(monkeypatch, dynamo, "query_partition", times=1)
    with django_capture_on_commit_callbacks(execute=True):
        services.tenant_offboard(tenant=tenant)
    tenant.refresh_from_db()
    assert calls["n"] == 2
    assert tenant.status == S.DELETED
    assert "error" not in tenant.offboarding_report
    assert tenant.offboarding_report["failed_attempts"] == 1


def test_a_stopped_offboarding_waits_for_an_operator_who_resumes_it_through_the_api(
    monkeypatch, settings, tmp_path, world, django_capture_on_commit_callbacks
):
    settings.OFFBOARD_EXPORT_DIR = str(tmp_path)
    settings.TENANT_LIFECYCLE_MAX_RETRIES = 1
    settings.TENANT_RESUME_AFTER_SECONDS = 0
    tenant = onboard("leaving-stuck")
    failing(monkeypatch, dynamo, "query_partition", times=2)
    with django_capture_on_commit_callbacks(execute=True):
        services.tenant_offboard(tenant=tenant)
    tenant.refresh_from_db()
    assert tenant.status == S.OFFBOARDING
    assert tenant.offboarding_report["stopped"] is True
    assert "EndpointConnectionError" in tenant.offboarding_report["error"]
    assert tenant not in services.tenants_stalled(idle_seconds=0)  # left to the operator

    operator = HostClient(host_of(), token_for(world.operator))
    with django_capture_on_commit_callbacks(execute=True):
        response = operator.post(f"/api/v1/tenants/{tenant.pk}/resume-offboarding/")
    assert response.status_code == 202, response.content
    tenant.refresh_from_db()
    assert tenant.status == S.DELETED
    assert "error" not in tenant.offboarding_report and "stopped" not in tenant.offboarding_report
    assert dynamo.get_item(contract.tenant_pk(tenant.pk), "TENANT")["deleted"] is True
    actions = list(tenant.events.values_list("action", flat=True))
    assert actions[-2:] == ["resume_offboarding", "offboarded"]

    again = operator.post(f"/api/v1/tenants/{tenant.pk}/resume-offboarding/")
    assert again.status_code == 400 and again.json()["error"]["code"] == "invalid_transition"


def test_support_cannot_resume_an_offboarding(world):
    support = HostClient(host_of(), token_for(world.support))
    response = support.post(f"/api/v1/tenants/{world.a.pk}/resume-offboarding/")
    assert response.status_code == 403


def test_the_console_offers_resume_for_a_stopped_offboarding_and_runs_it(
    monkeypatch, settings, tmp_path, world, client, django_capture_on_commit_callbacks
):
    settings.OFFBOARD_EXPORT_DIR = str(tmp_path)
    settings.TENANT_LIFECYCLE_MAX_RETRIES = 0
    tenant = onboard("leaving-console")
    failing(monkeypatch, dynamo, "query_partition", times=1)
    with django_capture_on_commit_callbacks(execute=True):
        services.tenant_offboard(tenant=tenant)
    client.force_login(world.operator)
    page = client.get("/", HTTP_HOST=host_of())
    resume = f"/console/tenants/{tenant.pk}/resume-offboarding/"
    assert resume.encode() in page.content
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(resume, HTTP_HOST=host_of())
    assert response.status_code == 302
    tenant.refresh_from_db()
    assert tenant.status == S.DELETED


def test_the_resume_job_requeues_a_provisioning_whose_worker_died(
    settings, django_capture_on_commit_callbacks
):
    settings.TENANT_RESUME_AFTER_SECONDS = 60
    # Onboarded, but its provisioning task never ran (the worker died with it).
    tenant = services.tenant_onboard(name="Orphan", slug="orphan", tier="basic")
    Tenant.objects.filter(pk=tenant.pk).update(updated_at=timezone.now() - timedelta(minutes=5))
    fresh = services.tenant_onboard(name="Fresh", slug="fresh-one", tier="basic")
    with django_capture_on_commit_callbacks(execute=True):
        resumed = tasks.tenant_lifecycle_resume()
    assert resumed == [str(tenant.pk)]
    assert Tenant.objects.get(pk=tenant.pk).status == S.ACTIVE
    assert Tenant.objects.get(pk=fresh.pk).status == S.PROVISIONING  # not idle yet
