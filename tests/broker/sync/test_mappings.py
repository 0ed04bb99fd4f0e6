"""Event source mappings of a tenant's own queues (broker/sync/mappings.py): what AWS needs so
that Lambda reads a silo queue or an SQS producer's source queue. Made by the relay, repaired
by the reconciler, refused visibly where AWS would refuse them. In-process moto, with the data
plane's stack deployed (tests/conftest.py)."""

import json

import pytest
from django.test import TestCase
from django_tenants.utils import tenant_context

from broker import services
from broker.sync import mappings, reconcile, relay
from broker.sync.models import SyncState
from broker.sync.selectors import tenant_sync_summaries
from core import aws
from tenants import services as tenant_services
from tests.helpers import onboard, source_queue

pytestmark = pytest.mark.django_db


def _sqs_producer(world, queue_arn, **extra):
    with tenant_context(world.a):
        producer, _ = services.producer_create(
            actor=world.admin_a, name="orders-in", kind="sqs", source_queue_arn=queue_arn, **extra
        )
    relay.drain()
    return producer


def _only_mapping(queue_arn) -> dict:
    (mapping,) = aws.mappings_of_queue(queue_arn)
    return mapping


def test_an_sqs_producers_queue_is_mapped_to_the_sqs_producer_function(world, settings):
    queue = source_queue("orders-mapped")
    _sqs_producer(world, queue)
    mapping = _only_mapping(queue)
    assert mapping["FunctionArn"] == settings.SQS_PRODUCER_FUNCTION_ARN
    assert mapping["State"] == "Enabled"
    assert mapping["BatchSize"] == 10
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["ScalingConfig"] == {"MaximumConcurrency": 2}


def test_disabling_the_producer_disables_its_mapping_and_deleting_it_removes_it(world):
    queue = source_queue("orders-toggled")
    producer = _sqs_producer(world, queue)
    with tenant_context(world.a):
        producer = services.producer_update(actor=world.admin_a, producer=producer, enabled=False)
    relay.drain()
    assert _only_mapping(queue)["State"] == "Disabled"
    with tenant_context(world.a):
        services.producer_delete(actor=world.admin_a, producer=producer)
    relay.drain()
    assert aws.mappings_of_queue(queue) == []


def test_a_source_queue_aws_would_refuse_to_map_fails_the_producers_sync_visibly(world):
    """Its visibility timeout (30 s) is below the SQS producer function's timeout (60 s):
    AWS refuses the mapping, moto would not, so we refuse it, and the sync says why."""
    url = aws.sqs().create_queue(QueueName="orders-short", Attributes={"VisibilityTimeout": "30"})
    queue = aws.queue_arn(url["QueueUrl"])
    producer = _sqs_producer(world, queue)
    assert aws.mappings_of_queue(queue) == []
    state = SyncState.objects.get(tenant=world.a, object_id=str(producer.pk))
    assert state.status == "failing"
    assert "visibility timeout of 30 s" in state.last_error and "60 s" in state.last_error
    summary = tenant_sync_summaries([world.a])[world.a.pk]
    assert summary["status"] == "failing"


def test_a_silo_tenant_is_mapped_at_provisioning_and_suspension_disables_it(world, settings):
    tenant = onboard("silo-unit", tier="dedicated")
    queue = aws.queue_arn(tenant.silo_queue_url)
    mapping = _only_mapping(queue)
    assert mapping["FunctionArn"] == settings.EGRESS_FUNCTION_ARN
    assert mapping["State"] == "Enabled"
    concurrency = tenant.effective_quotas()["delivery_concurrency"]
    assert mapping["ScalingConfig"]["MaximumConcurrency"] == min(max(concurrency, 2), 1000)
    attrs = aws.sqs().get_queue_attributes(QueueUrl=tenant.silo_queue_url, AttributeNames=["All"])
    attrs = attrs["Attributes"]
    assert attrs["VisibilityTimeout"] == "360" and attrs["MaximumMessageSize"] == "262144"
    redrive = json.loads(attrs["RedrivePolicy"])
    assert int(redrive["maxReceiveCount"]) == 10 and redrive["deadLetterTargetArn"].endswith("-dlq")

    with TestCase.captureOnCommitCallbacks(execute=True):
        tenant = tenant_services.tenant_suspend(tenant=tenant)
    relay.drain()
    assert _only_mapping(queue)["State"] == "Disabled"


def test_the_reconciler_repairs_a_deleted_or_changed_mapping(world):
    tenant = onboard("silo-repair", tier="dedicated")
    queue = aws.queue_arn(tenant.silo_queue_url)
    aws.lambda_client().update_event_source_mapping(
        UUID=_only_mapping(queue)["UUID"], BatchSize=1, ScalingConfig={"MaximumConcurrency": 50}
    )
    job = reconcile.run_job(reconcile.job_create(kind="reconcile", tenant=tenant).pk)
    assert job.counts["mappings_updated"] == 1
    assert _only_mapping(queue)["BatchSize"] == 10

    aws.mapping_delete(queue_arn=queue)
    job = reconcile.run_job(reconcile.job_create(kind="reconcile", tenant=tenant).pk)
    assert job.counts["mappings_created"] == 1 and _only_mapping(queue)["State"] == "Enabled"
    state = SyncState.objects.get(tenant=tenant, object_type=mappings.MAPPING)
    assert state.status == "in_sync"


def test_without_the_egress_arn_the_silo_mapping_fails_and_the_sync_status_says_why(
    world, settings
):
    tenant = onboard("silo-noarn", tier="dedicated")
    aws.mapping_delete(queue_arn=aws.queue_arn(tenant.silo_queue_url))
    settings.EGRESS_FUNCTION_ARN = ""
    reconcile.run_job(reconcile.job_create(kind="reconcile", tenant=tenant).pk)
    state = SyncState.objects.get(tenant=tenant, object_type=mappings.MAPPING)
    assert state.status == "failing" and "EGRESS_FUNCTION_ARN is not set" in state.last_error
    assert tenant_sync_summaries([tenant])[tenant.pk]["status"] == "failing"


def test_offboarding_removes_the_tenants_mappings(world, django_capture_on_commit_callbacks):
    tenant = onboard("silo-leaving", tier="dedicated")
    queue = aws.queue_arn(tenant.silo_queue_url)
    assert aws.mappings_of_queue(queue)
    with django_capture_on_commit_callbacks(execute=True):
        tenant_services.tenant_offboard(tenant=tenant)
    assert aws.mappings_of_queue(queue) == []


@pytest.mark.parametrize(("asked", "given"), [(1, 2), (16, 16), (5000, 1000)])
def test_maximum_concurrency_is_clamped_to_what_aws_accepts(asked, given):
    spec = aws.mapping_spec(max_concurrency=asked, enabled=True)
    assert spec["ScalingConfig"] == {"MaximumConcurrency": given}


def test_a_tenant_queue_outside_the_tenant_prefix_is_refused(world, settings):
    settings.TENANT_QUEUE_PREFIX = "tenant-"
    with tenant_context(world.a), pytest.raises(Exception) as refused:
        services.consumer_create(
            actor=world.admin_a,
            name="elsewhere",
            kind="sqs",
            queue_arn="arn:aws:sqs:eu-west-1:123456789012:payments",
        )
    assert "must start with 'tenant-'" in str(getattr(refused.value, "fields", refused.value))
    with tenant_context(world.a):
        consumer, _ = services.consumer_create(
            actor=world.admin_a,
            name="ours",
            kind="sqs",
            queue_arn="arn:aws:sqs:eu-west-1:123456789012:tenant-payments",
        )
    assert consumer.pk


@pytest.mark.parametrize("tier", ["dedicated", "standard"])
def test_a_tenant_provisioned_before_ordered_delivery_is_given_its_fifo_queues_by_the_reconciler(
    world, tier, settings
):
    """Tenants provisioned before ordered delivery have no FIFO queues (their ordered
    subscriptions would go unordered): the reconciler's pass gives them what provisioning gives
    a tenant now, and publishes the TENANT item; once only."""
    from broker.sync import contract, dynamo
    from tenants.models import Tenant

    tenant = onboard(f"before-ordered-{tier}", tier=tier)
    wanted = list(tenant.ordered_queues)
    assert wanted
    silo = tier == "dedicated"
    if silo:  # as before: no FIFO queue, no mapping of it
        fifo_arn = aws.queue_arn(wanted[0])
        aws.mapping_delete(queue_arn=fifo_arn)
        aws.sqs().delete_queue(QueueUrl=wanted[0])
    Tenant.objects.filter(pk=tenant.pk).update(ordered_queues=[])
    tenant.refresh_from_db()
    aws.dynamodb().put_item(  # the TENANT item as it was: no FIFO queues
        TableName=settings.DYNAMODB_CONFIG_TABLE,
        Item=dynamo.serialize(contract.tenant_item(tenant)),
    )
    assert "ordered_queues" not in dynamo.get_item(f"TENANT#{tenant.pk}", "TENANT")

    job = reconcile.run_job(reconcile.job_create(kind="reconcile", tenant=tenant).pk)

    assert job.counts["ordered_queues_backfilled"] == 1
    tenant.refresh_from_db()
    assert tenant.ordered_queues == wanted
    assert dynamo.get_item(f"TENANT#{tenant.pk}", "TENANT")["ordered_queues"] == wanted
    if silo:  # its FIFO queue made again, and mapped to the egress
        assert _only_mapping(aws.queue_arn(wanted[0]))["State"] == "Enabled"
    again = reconcile.run_job(reconcile.job_create(kind="reconcile", tenant=tenant).pk)
    assert "ordered_queues_backfilled" not in again.counts
