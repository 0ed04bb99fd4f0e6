"""The reconciler repairs drift; the operator's resync runs as a job with progress."""

import pytest
from django_tenants.utils import tenant_context

from broker import services
from broker.sync import dynamo, reconcile, relay
from broker.sync.models import SyncJob
from tests.helpers import PUBLIC_URL

pytestmark = pytest.mark.django_db

QUEUE = "arn:aws:sqs:eu-west-1:123456789012:sink"


def _configure(world, tenant, n=3):
    with tenant_context(tenant):
        actor = world.admin_a if tenant == world.a else world.admin_b
        out = []
        for i in range(n):
            producer, _ = services.producer_create(actor=actor, name=f"p{i}", kind="https")
            consumer, _ = services.consumer_create(
                actor=actor, name=f"c{i}", kind="https", url=PUBLIC_URL
            )
            sub = services.subscription_create(actor=actor, consumer=consumer, event_type=f"t{i}")
            out.append((producer, consumer, sub))
    relay.drain()
    return out


def test_the_reconciler_repairs_a_removed_an_altered_and_an_extra_item(world):
    t = world.a
    (producer, consumer, sub), *_ = _configure(world, t)
    pk = f"TENANT#{t.pk}"
    table = dynamo.aws.dynamodb()
    from django.conf import settings

    name = settings.DYNAMODB_CONFIG_TABLE
    table.delete_item(TableName=name, Key={"PK": {"S": pk}, "SK": {"S": f"ROUTE#t0#{sub.pk}"}})
    table.update_item(
        TableName=name,
        Key={"PK": {"S": pk}, "SK": {"S": f"CONSUMER#{consumer.pk}"}},
        UpdateExpression="SET target = :t",
        ExpressionAttributeValues={":t": {"M": {"url": {"S": "https://evil.example/"}}}},
    )
    extra = {"PK": pk, "SK": "PRODUCER#not-in-postgres", "version": 7, "enabled": True}
    table.put_item(TableName=name, Item=dynamo.serialize(extra))

    counts = reconcile.sync_tenant(t)

    assert (counts["missing"], counts["altered"], counts["extra"]) == (1, 1, 1)
    assert counts["drift"] == 3
    assert dynamo.get_item(pk, f"ROUTE#t0#{sub.pk}")["version"] == sub.version
    repaired = dynamo.get_item(pk, f"CONSUMER#{consumer.pk}")
    assert repaired["target"] == {"url": PUBLIC_URL}
    with tenant_context(t):
        consumer.refresh_from_db()
    assert repaired["version"] == consumer.version == 2  # bumped past the altered copy
    gone = dynamo.get_item(pk, "PRODUCER#not-in-postgres")
    assert gone["deleted"] is True and gone["version"] == 8

    assert reconcile.sync_tenant(t)["drift"] == 0


def test_an_api_key_item_missing_or_left_over_is_repaired(world):
    t = world.a
    (producer, _, _), *_ = _configure(world, t, n=1)
    with tenant_context(t):
        key = producer.api_keys.get()
    from django.conf import settings

    name = settings.DYNAMODB_CONFIG_TABLE
    dynamo.aws.dynamodb().delete_item(
        TableName=name, Key={"PK": {"S": f"APIKEY#{key.key_hash}"}, "SK": {"S": "APIKEY"}}
    )
    orphan = {
        "PK": "APIKEY#" + "0" * 64,
        "SK": "APIKEY",
        "tenant_id": str(t.pk),
        "apikey_tenant_id": str(t.pk),
        "version": 1,
    }
    dynamo.aws.dynamodb().put_item(TableName=name, Item=dynamo.serialize(orphan))

    counts = reconcile.sync_tenant(t)

    assert counts["missing"] == 1 and counts["extra"] == 1
    assert dynamo.get_item(f"APIKEY#{key.key_hash}", "APIKEY")["producer_id"] == str(producer.pk)
    assert dynamo.get_item(orphan["PK"], "APIKEY")["deleted"] is True


def test_a_tier_change_updates_the_tenant_item_of_every_tenant_on_it(
    world, api, django_capture_on_commit_callbacks
):
    from tenants.models import Tenant

    client = api(world.operator)
    quota = world.a.tier.ingest_burst + 1
    with django_capture_on_commit_callbacks(execute=True):
        response = client.patch(
            f"/api/v1/tiers/{world.a.tier.name}/", {"ingest_burst": quota}, format="json"
        )
    assert response.status_code == 200
    for tenant in Tenant.objects.filter(tier=world.a.tier, status="active"):
        stored = dynamo.get_item(f"TENANT#{tenant.pk}", "TENANT")
        assert stored["quotas"]["ingest_burst"] == quota, tenant.slug


def test_an_operator_resync_reports_progress_and_ends_with_no_drift(world, api, settings):
    _configure(world, world.a)
    _configure(world, world.b)
    # Hand-made drift on both tenants.
    for tenant in (world.a, world.b):
        for stored in dynamo.query_partition(f"TENANT#{tenant.pk}"):
            if stored["SK"].startswith("PRODUCER#"):
                dynamo.aws.dynamodb().delete_item(
                    TableName=settings.DYNAMODB_CONFIG_TABLE,
                    Key={"PK": {"S": stored["PK"]}, "SK": {"S": stored["SK"]}},
                )
    client = api(world.operator)

    from django.test import TestCase

    with TestCase.captureOnCommitCallbacks(execute=True):
        response = client.post("/api/v1/sync/resync/", {}, format="json")
    assert response.status_code == 202, response.content
    job = client.get(f"/api/v1/sync/jobs/{response.json()['id']}/").json()

    assert job["status"] == "done" and job["progress"] == 1.0
    assert job["total"] >= 2 * 3 * 4 and job["done"] == job["total"]
    assert job["counts"]["written"] == job["total"]  # a resync rewrites every item
    for tenant in (world.a, world.b):
        assert reconcile.sync_tenant(tenant)["drift"] == 0
    assert SyncJob.objects.count() == 1


def test_an_operator_reconcile_job_counts_the_drift_it_repaired(world, api, settings):
    (producer, _, _), *_ = _configure(world, world.a, n=1)
    dynamo.aws.dynamodb().delete_item(
        TableName=settings.DYNAMODB_CONFIG_TABLE,
        Key={"PK": {"S": f"TENANT#{world.a.pk}"}, "SK": {"S": f"PRODUCER#{producer.pk}"}},
    )
    from django.test import TestCase

    with TestCase.captureOnCommitCallbacks(execute=True):
        response = api(world.operator).post(
            "/api/v1/sync/resync/", {"tenant": str(world.a.pk), "kind": "reconcile"}, format="json"
        )
    job = api(world.operator).get(f"/api/v1/sync/jobs/{response.json()['id']}/").json()
    assert job["status"] == "done" and job["counts"]["missing"] == 1
    assert job["counts"]["drift"] == 1 and job["counts"]["tenants"] == 1
    overview = api(world.support).get(f"/api/v1/sync/?tenant={world.a.pk}").json()
    assert overview["tenants"][0]["queued_changes"] == 0
    assert overview["jobs"][0]["id"] == job["id"]


def test_support_reads_sync_status_but_only_operators_resync(world, api):
    assert api(world.support).get("/api/v1/sync/").status_code == 200
    assert api(world.support).post("/api/v1/sync/resync/", {}, format="json").status_code == 403
    assert api(world.admin_a, world.a).get("/api/v1/sync/").status_code in (403, 404)


def test_the_tenant_sees_what_is_in_sync_pending_and_failing(world, api):
    _configure(world, world.a, n=1)
    with tenant_context(world.a):
        services.event_type_create(actor=world.admin_a, name="not.yet.synced")
    body = api(world.viewer_a, world.a).get("/api/v1/sync-status/").json()

    summary = body["summary"]
    assert summary["pending"] == 1 and summary["failing"] == 0
    assert summary["in_sync"] == summary["objects"] - 1
    assert summary["oldest_pending_age_seconds"] is not None
    pending = [o for o in body["results"] if o["status"] == "pending"]
    assert pending[0]["name"] == "not.yet.synced" and pending[0]["synced_version"] == 0
    only = api(world.viewer_a, world.a).get("/api/v1/sync-status/?status=in_sync").json()
    assert {o["status"] for o in only["results"]} == {"in_sync"}
    assert {o["object_type"] for o in only["results"]} >= {"tenant", "producer", "apikey"}


def test_the_sync_dynamodb_command_rebuilds_an_emptied_table(world, settings):
    from io import StringIO

    from django.core.management import CommandError, call_command

    (producer, _, _), *_ = _configure(world, world.a, n=1)
    client = dynamo.aws.dynamodb()
    for stored in dynamo.query_partition(f"TENANT#{world.a.pk}"):
        client.delete_item(
            TableName=settings.DYNAMODB_CONFIG_TABLE,
            Key={"PK": {"S": stored["PK"]}, "SK": {"S": stored["SK"]}},
        )

    out = StringIO()
    call_command("sync_dynamodb", "--tenant", world.a.slug, stdout=out)

    assert out.getvalue().startswith("resync done")
    assert dynamo.get_item(f"TENANT#{world.a.pk}", "TENANT")["status"] == "active"
    assert dynamo.get_item(f"TENANT#{world.a.pk}", f"PRODUCER#{producer.pk}")["version"] == 1
    assert reconcile.sync_tenant(world.a)["drift"] == 0
    with pytest.raises(CommandError):
        call_command("sync_dynamodb", "--tenant", "no-such-tenant")


def test_a_malformed_tenant_filter_is_a_400_naming_it_and_an_unknown_tenant_a_404(world, api):
    malformed = api(world.support).get("/api/v1/sync/?tenant=not-a-uuid")
    assert malformed.status_code == 400
    assert malformed.json()["error"]["fields"] == {"tenant": ["Not a tenant id."]}
    unknown = api(world.support).get("/api/v1/sync/?tenant=00000000-0000-0000-0000-000000000000")
    assert unknown.status_code == 404


def test_a_full_pass_reads_the_table_once_and_only_a_drifted_tenant_again(world, settings):
    """The periodic reconcile over every tenant: one Scan, then no Query for a tenant whose
    items match PostgreSQL; a tenant with drift is read again under its lock and repaired."""
    _configure(world, world.a, n=2)
    (producer_b, consumer_b, _), *_ = _configure(world, world.b, n=2)
    reconcile.run_job(reconcile.job_create(kind="reconcile").pk)  # whatever was left over
    name = settings.DYNAMODB_CONFIG_TABLE
    client = dynamo.aws.dynamodb()
    pk_b = f"TENANT#{world.b.pk}"
    client.delete_item(
        TableName=name, Key={"PK": {"S": pk_b}, "SK": {"S": f"PRODUCER#{producer_b.pk}"}}
    )
    client.update_item(
        TableName=name,
        Key={"PK": {"S": pk_b}, "SK": {"S": f"CONSUMER#{consumer_b.pk}"}},
        UpdateExpression="SET target = :t",
        ExpressionAttributeValues={":t": {"M": {"url": {"S": "https://evil.example/"}}}},
    )
    extra = {"PK": pk_b, "SK": "PRODUCER#not-in-postgres", "version": 3, "enabled": True}
    client.put_item(TableName=name, Item=dynamo.serialize(extra))

    calls = []

    def count(event_name, **kwargs):
        calls.append(event_name.rsplit(".", 1)[-1])

    client.meta.events.register("provide-client-params.dynamodb.Query", count)
    client.meta.events.register("provide-client-params.dynamodb.Scan", count)
    try:
        job = reconcile.run_job(reconcile.job_create(kind="reconcile").pk)
    finally:
        client.meta.events.unregister("provide-client-params.dynamodb.Query", count)
        client.meta.events.unregister("provide-client-params.dynamodb.Scan", count)

    assert job.status == "done", job.error
    # Scans: one per segment; Queries: the drifted tenant's partition and its API keys only.
    assert calls.count("Scan") == reconcile.SCAN_SEGMENTS
    assert calls.count("Query") == 2
    assert (job.counts["missing"], job.counts["altered"], job.counts["extra"]) == (1, 1, 1)
    assert job.counts["tenants"] >= 2 and job.done == job.total
    assert dynamo.get_item(pk_b, f"PRODUCER#{producer_b.pk}")["version"] == producer_b.version
    assert dynamo.get_item(pk_b, f"CONSUMER#{consumer_b.pk}")["target"] == {"url": PUBLIC_URL}
    assert dynamo.get_item(pk_b, "PRODUCER#not-in-postgres")["deleted"] is True
    assert reconcile.sync_tenant(world.b)["drift"] == 0
