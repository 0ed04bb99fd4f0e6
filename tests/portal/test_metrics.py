"""/metrics: the platform's gauges and Celery task outcomes with bounded labels, answered to
loopback and private addresses or the bearer token only."""

import uuid

import pytest
from django.test import Client
from django_tenants.utils import tenant_context
from prometheus_client.parser import text_string_to_metric_families

from broker.deadletters import alerts, replay_counts
from broker.deadletters.models import JobStatus, ReplayJob
from broker.sync.models import OutboxEntry
from portal.celery import app
from tenants.models import Tenant, TenantStatus

pytestmark = pytest.mark.django_db


def scrape(**extra) -> dict:
    response = Client(HTTP_HOST="localhost", **extra).get("/metrics")
    assert response.status_code == 200, response.content
    return {
        sample.name: sample
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
        if not sample.labels
    } | {
        (sample.name, tuple(sorted(sample.labels.items()))): sample
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
        if sample.labels
    }


def test_platform_gauges_are_exported(world):
    Tenant.objects.create(
        name="Broken",
        slug="broken",
        schema_name="broken",
        tier=world.a.tier,
        status=TenantStatus.FAILED,
    )
    OutboxEntry.objects.create(tenant=world.a, object_type="producer", object_id="x", version=3)
    metrics = scrape()
    assert metrics["broker_outbox_depth"].value >= 1
    assert metrics["broker_sync_lag_seconds"].value >= 0
    assert metrics[("broker_lifecycle_failures", (("stage", "provisioning"),))].value == 1
    assert metrics[("broker_tenants", (("status", "active"),))].value >= 2
    assert "broker_dlq_backlog" in metrics and "broker_dlq_oldest_age_seconds" in metrics


def test_replay_jobs_are_counted_by_status_across_tenants(world):
    """Queued and running replay jobs of every tenant, from the recount each job change (or
    the minutely alert check) stores in the public DLQ state."""
    for tenant, status in ((world.a, JobStatus.QUEUED), (world.b, JobStatus.QUEUED)):
        with tenant_context(tenant):
            ReplayJob.objects.create(consumer_id=str(uuid.uuid4()), status=status)
            replay_counts.replay_jobs_recount()
    with tenant_context(world.b):
        ReplayJob.objects.create(consumer_id=str(uuid.uuid4()), status=JobStatus.RUNNING)
        ReplayJob.objects.create(consumer_id=str(uuid.uuid4()), status=JobStatus.COMPLETED)
    # Not recounted yet: the figure is the last one stored...
    metrics = scrape()
    assert metrics[("broker_replay_jobs", (("status", "queued"),))].value == 2
    assert metrics[("broker_replay_jobs", (("status", "running"),))].value == 0
    # ...until the alert check (every minute) measures the tenant again.
    alerts.evaluate(tenant=world.b)
    metrics = scrape()
    assert metrics[("broker_replay_jobs", (("status", "queued"),))].value == 2
    assert metrics[("broker_replay_jobs", (("status", "running"),))].value == 1
    family = next(
        f
        for f in text_string_to_metric_families(
            Client(HTTP_HOST="localhost").get("/metrics").content.decode()
        )
        if f.name == "broker_replay_jobs"
    )
    assert family.type == "gauge"
    assert sorted(s.labels["status"] for s in family.samples) == ["queued", "running"]


def test_labels_are_bounded_sets_never_ids(world):
    body = Client(HTTP_HOST="localhost").get("/metrics").content.decode()
    for family in text_string_to_metric_families(body):
        if family.name.startswith("broker_"):
            for sample in family.samples:
                assert set(sample.labels) <= {
                    "status",
                    "stage",
                    "object_type",
                    "task",
                    "outcome",
                    "where",
                }
                values = " ".join(sample.labels.values())
                assert str(world.a.pk) not in values and world.a.slug not in values


def test_celery_task_outcomes_are_counted(world):
    @app.task(name="portal.tests.metrics_probe")
    def probe(fail=False):
        if fail:
            raise ValueError("no")
        return 1

    probe.apply()
    probe.apply(kwargs={"fail": True}, throw=False)
    metrics = scrape()
    ok = metrics[
        (
            "broker_celery_tasks_total",
            (("outcome", "success"), ("task", "portal.tests.metrics_probe")),
        )
    ]
    bad = metrics[
        (
            "broker_celery_tasks_total",
            (("outcome", "failure"), ("task", "portal.tests.metrics_probe")),
        )
    ]
    assert ok.value >= 1 and bad.value >= 1


def test_django_request_metrics_are_there(world):
    Client(HTTP_HOST="localhost").get("/login/")
    body = Client(HTTP_HOST="localhost").get("/metrics").content.decode()
    assert "django_http_requests_total_by_method_total" in body


def test_public_addresses_need_the_token(world, settings):
    settings.METRICS_TOKEN = "s3cret-metrics-token"
    outside = Client(HTTP_HOST="localhost", REMOTE_ADDR="93.184.215.14")
    assert outside.get("/metrics").status_code == 403
    assert outside.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 403
    ok = outside.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-metrics-token")
    assert ok.status_code == 200
    private = Client(HTTP_HOST="localhost", REMOTE_ADDR="10.1.2.3")
    assert private.get("/metrics").status_code == 200
    proxied = private.get("/metrics", HTTP_X_FORWARDED_FOR="93.184.215.14")
    assert proxied.status_code == 403


def test_tenant_hosts_do_not_serve_metrics(world):
    response = Client(HTTP_HOST=f"{world.a.slug}.localhost").get("/metrics")
    assert response.status_code == 404
