"""Provisioning and offboarding with real worker processes killed mid-way (SIGKILL, no ack)
while AWS is unreachable: a new worker's resume job picks the run up and finishes it once AWS
is back. These tests commit (the worker must see the data), so they use their own tenants."""

import pytest

from broker.sync import contract, dynamo
from core import aws
from portal.celery import app
from tenants import services
from tenants.models import Tenant, TenantStatus
from tests.broker.sync._processes import Proxy, Worker, wait_for
from tests.helpers import onboard

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

S = TenantStatus


@pytest.fixture
def real_tasks(monkeypatch, settings, tmp_path):
    monkeypatch.setenv("TENANT_RESUME_INTERVAL_SECONDS", "1")
    monkeypatch.setenv("TENANT_RESUME_AFTER_SECONDS", "2")
    # The first retry would wait 60 s: the worker is killed during that wait.
    monkeypatch.setenv("TENANT_LIFECYCLE_RETRY_BACKOFF_SECONDS", "60")
    monkeypatch.setenv("TENANT_LIFECYCLE_RETRY_BACKOFF_MAX_SECONDS", "60")
    monkeypatch.setenv("OFFBOARD_EXPORT_DIR", str(tmp_path / "exports"))
    monkeypatch.setenv("DLQ_INGEST_INTERVAL_SECONDS", "3600")
    settings.OFFBOARD_EXPORT_DIR = str(tmp_path / "exports")
    app.control.purge()
    app.conf.task_always_eager = False
    yield
    app.conf.task_always_eager = True
    app.control.purge()


def _log(path):
    return path.read_text()[-3000:] if path.exists() else "(no log)"


def _tenant(pk):
    return Tenant.objects.get(pk=pk)


def test_an_offboarding_whose_worker_is_killed_mid_way_is_resumed_and_completes(
    live_aws, real_tasks, tmp_path
):
    app.conf.task_always_eager = True  # provisioning runs here, AWS reachable
    tenant = onboard("fault-leaving", tier="dedicated")
    app.conf.task_always_eager = False
    proxy = Proxy(live_aws)
    proxy.up = False
    worker = Worker(aws_endpoint=proxy.url, log=tmp_path / "worker-1.log")
    try:
        services.tenant_offboard(tenant=tenant)
        failed = wait_for(lambda: "error" in _tenant(tenant.pk).offboarding_report, timeout=90)
        assert failed, _log(tmp_path / "worker-1.log")
    finally:
        worker.kill()
    assert _tenant(tenant.pk).status == S.OFFBOARDING

    proxy.up = True
    worker = Worker(aws_endpoint=proxy.url, log=tmp_path / "worker-2.log")
    try:
        done = wait_for(lambda: _tenant(tenant.pk).status == S.DELETED, timeout=90)
        assert done, _log(tmp_path / "worker-2.log")
    finally:
        worker.stop()
        proxy.close()
    report = _tenant(tenant.pk).offboarding_report
    # Its silo queue and its FIFO queue (ordered subscriptions), each deleted once.
    assert report["deleted_queues"] == [tenant.silo_queue_url, *tenant.ordered_queues]
    assert "error" not in report
    assert report["failed_attempts"] >= 1
    assert dynamo.get_item(contract.tenant_pk(tenant.pk), "TENANT")["deleted"] is True
    prefix = aws.silo_queue_name(tenant.pk)
    assert aws.sqs().list_queues(QueueNamePrefix=prefix).get("QueueUrls", []) == []


def test_a_provisioning_whose_worker_is_killed_mid_way_is_resumed_and_ends_active(
    live_aws, real_tasks, tmp_path
):
    proxy = Proxy(live_aws)
    proxy.up = False
    worker = Worker(aws_endpoint=proxy.url, log=tmp_path / "worker-1.log")
    try:
        tenant = services.tenant_onboard(name="Fault", slug="fault-new", tier="dedicated")
        failed = wait_for(lambda: _tenant(tenant.pk).provisioning_error != "", timeout=90)
        assert failed, _log(tmp_path / "worker-1.log")
    finally:
        worker.kill()
    assert _tenant(tenant.pk).status == S.PROVISIONING  # retries left: not failed

    proxy.up = True
    worker = Worker(aws_endpoint=proxy.url, log=tmp_path / "worker-2.log")
    try:
        done = wait_for(lambda: _tenant(tenant.pk).status == S.ACTIVE, timeout=90)
        assert done, _log(tmp_path / "worker-2.log")
    finally:
        worker.stop()
        proxy.close()
    tenant = Tenant.objects.select_related("tier").get(pk=tenant.pk)
    item = dynamo.get_item(contract.tenant_pk(tenant.pk), "TENANT")
    assert item["status"] == "active" and item["version"] == tenant.version
    prefix = aws.silo_queue_name(tenant.pk)
    # One silo queue and one FIFO queue (ordered subscriptions), whatever the retries.
    url, fifo = sorted(aws.sqs().list_queues(QueueNamePrefix=prefix)["QueueUrls"])
    assert url.rsplit("/", 1)[1] == tenant.silo_queue_url.rsplit("/", 1)[1] == prefix
    assert [u.rsplit("/", 1)[1] for u in tenant.ordered_queues] == [f"{prefix}.fifo"]
    assert fifo.rsplit("/", 1)[1] == f"{prefix}.fifo"
