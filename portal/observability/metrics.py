"""Prometheus `/metrics`: django-prometheus's request/DB metrics, the platform's own gauges
(read from PostgreSQL at scrape time) and Celery task outcomes.

Under gunicorn (several worker processes) and with the Celery worker, set
PROMETHEUS_MULTIPROC_DIR to one empty directory shared by web and worker (prometheus_client's
multiprocess mode): every process writes its counters there and a scrape sums them.

Label sets are bounded: tenant statuses, object types, Celery task names (the registered
tasks) and outcomes; never a tenant id, user or URL.

Answered only to loopback and private addresses, or to `Authorization: Bearer METRICS_TOKEN`.
"""

import hmac
import ipaddress
import os

from celery import signals
from django.conf import settings
from django.db.models import Count, Max, Min, Q, Sum
from django.http import HttpResponse
from django.utils import timezone
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily

from broker.dlq.models import QuarantinedMessage, QuarantineStatus, TenantDlqState
from broker.sync.models import OutboxEntry, SyncJob, SyncState
from tenants.models import Tenant, TenantStatus

CELERY_TASKS = Counter(
    "broker_celery_tasks_total",
    "Celery tasks finished, by task name and outcome (success, failure, retry).",
    ["task", "outcome"],
)


def _task_name(sender) -> str:
    name = getattr(sender, "name", None) or str(sender)
    # Only our own task names (a bounded set); anything else is counted as "other".
    return name if name.split(".", 1)[0] in ("broker", "tenants", "portal") else "other"


@signals.task_success.connect
def _on_success(sender=None, **kwargs):
    CELERY_TASKS.labels(_task_name(sender), "success").inc()


@signals.task_failure.connect
def _on_failure(sender=None, **kwargs):
    CELERY_TASKS.labels(_task_name(sender), "failure").inc()


@signals.task_retry.connect
def _on_retry(sender=None, **kwargs):
    CELERY_TASKS.labels(_task_name(sender), "retry").inc()


class PlatformCollector:
    """Gauges read at scrape time, a handful of aggregate queries (no per-tenant loop)."""

    def collect(self):
        now = timezone.now()
        statuses = dict(
            Tenant.objects.exclude(schema_name="public")
            .values_list("status")
            .annotate(n=Count("pk"))
            .values_list("status", "n")
        )
        tenants = GaugeMetricFamily(
            "broker_tenants", "Tenants by lifecycle status.", labels=["status"]
        )
        for status in TenantStatus.values:
            tenants.add_metric([status], statuses.get(status, 0))
        yield tenants

        failures = GaugeMetricFamily(
            "broker_lifecycle_failures",
            "Tenants whose provisioning failed, or whose offboarding stopped on an error.",
            labels=["stage"],
        )
        failures.add_metric(["provisioning"], statuses.get(TenantStatus.FAILED, 0))
        failures.add_metric(
            ["offboarding"],
            Tenant.objects.filter(
                status=TenantStatus.OFFBOARDING, offboarding_report__has_key="error"
            ).count(),
        )
        yield failures

        outbox = OutboxEntry.objects.aggregate(
            n=Count("pk"), oldest=Min("created_at"), failing=Count("pk", filter=~Q(last_error=""))
        )
        yield GaugeMetricFamily(
            "broker_outbox_depth", "Configuration changes waiting for the relay.", value=outbox["n"]
        )
        yield GaugeMetricFamily(
            "broker_outbox_failing",
            "Queued changes whose last write failed.",
            value=outbox["failing"],
        )
        yield GaugeMetricFamily(
            "broker_sync_lag_seconds",
            "Age of the oldest configuration change not yet in DynamoDB (0: none queued).",
            value=(now - outbox["oldest"]).total_seconds() if outbox["oldest"] else 0,
        )
        failing = GaugeMetricFamily(
            "broker_sync_failing_objects",
            "Objects whose last DynamoDB write failed, by object type.",
            labels=["object_type"],
        )
        for object_type, n in (
            SyncState.objects.exclude(last_error="")
            .values_list("object_type")
            .annotate(n=Count("pk"))
            .values_list("object_type", "n")
        ):
            failing.add_metric([object_type], n)
        yield failing

        dlq = TenantDlqState.objects.aggregate(
            backlog=Sum("backlog"),
            oldest=Min("oldest_at"),
            alerting=Count("pk", filter=Q(alerting=True)),
            replay_queued=Sum("replay_jobs_queued"),
            replay_running=Sum("replay_jobs_running"),
        )
        yield GaugeMetricFamily(
            "broker_dlq_backlog",
            "Dead letters pending, all tenants (last measured).",
            value=dlq["backlog"] or 0,
        )
        yield GaugeMetricFamily(
            "broker_dlq_oldest_age_seconds",
            "Age of the oldest pending dead letter.",
            value=(now - dlq["oldest"]).total_seconds() if dlq["oldest"] else 0,
        )
        yield GaugeMetricFamily(
            "broker_dlq_tenants_alerting",
            "Tenants over their DLQ alert thresholds.",
            value=dlq["alerting"],
        )
        # Replay jobs live in each tenant's schema: every job state change recounts its
        # tenant's active jobs into TenantDlqState (broker/deadletters/replay_counts.py), so
        # this is a sum in the query above, not one query per tenant at each scrape.
        replay = GaugeMetricFamily(
            "broker_replay_jobs",
            "Dead-letter replay jobs waiting or sending, all tenants, by status.",
            labels=["status"],
        )
        replay.add_metric(["queued"], dlq["replay_queued"] or 0)
        replay.add_metric(["running"], dlq["replay_running"] or 0)
        yield replay
        yield GaugeMetricFamily(
            "broker_dlq_quarantined",
            "DLQ messages in the operators' quarantine (open).",
            value=QuarantinedMessage.objects.filter(status=QuarantineStatus.OPEN).count(),
        )
        jobs = GaugeMetricFamily(
            "broker_sync_jobs", "Resync and reconcile jobs by status.", labels=["status"]
        )
        for status, n in (
            SyncJob.objects.values_list("status").annotate(n=Count("pk")).values_list("status", "n")
        ):
            jobs.add_metric([status], n)
        yield jobs
        latest = SyncJob.objects.aggregate(at=Max("finished_at"))["at"]
        yield GaugeMetricFamily(
            "broker_sync_last_job_finished_timestamp_seconds",
            "When the last resync or reconcile job finished (epoch seconds; 0: never).",
            value=latest.timestamp() if latest else 0,
        )


_PLATFORM = PlatformCollector()


def _allowed(request) -> bool:
    token = getattr(settings, "METRICS_TOKEN", "")
    header = request.headers.get("Authorization", "")
    if token and header.startswith("Bearer "):
        return hmac.compare_digest(header[7:].encode(), token.encode())
    if "X-Forwarded-For" in request.headers:
        return False  # came through a proxy: the proxy's own private address proves nothing
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    return address.is_loopback or address.is_private


def metrics_view(request):
    if not _allowed(request):
        return HttpResponse("Forbidden\n", status=403, content_type="text/plain")
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = CollectorRegistry()
        registry.register(_Default())
    registry.register(_PLATFORM)
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)


class _Default:
    """This process's metrics (django-prometheus's and ours) without re-registering them."""

    def collect(self):
        yield from REGISTRY.collect()
