"""A silo tenant's events reach its consumer only because provisioning mapped its queue: the
runner polls what has an event source mapping in the emulator, as Lambda does. Deleting the
mapping stops delivery (the event waits in the silo queue); the reconciler puts the mapping
back and the event goes through; suspending the tenant disables the mapping."""

import time
import uuid

import pytest
from django.conf import settings
from django.test import TestCase
from django_tenants.utils import tenant_context

from broker import services
from broker.sync import mappings, reconcile, relay
from broker.sync.models import SyncState
from core import aws
from tenants import services as tenant_services
from tests.helpers import onboard
from tests.helpers.e2e import Runner, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.django_db]

ORDER = {"type": "order.created", "data": {"order_id": "S-1"}}


@pytest.fixture(scope="module")
def runner(moto_server, tmp_path_factory):
    r = Runner(aws_endpoint=moto_server, log=tmp_path_factory.mktemp("runner") / "runner.log")
    yield r
    assert r.stop() == 0


@pytest.fixture
def silo(live_aws, runner, receiver, world, settings):
    settings.CONSUMER_PRIVATE_TARGETS = ("127.0.0.1:8200-8299",)
    tag = uuid.uuid4().hex[:8]
    tenant = onboard(f"silo-{tag}", tier="dedicated")
    queue_arn = aws.queue_arn(tenant.silo_queue_url)
    with tenant_context(tenant):
        _, key = services.producer_create(actor=world.operator, name="shop", kind="https")
        consumer, _ = services.consumer_create(
            actor=world.operator,
            name="hooks",
            kind="https",
            url=f"{receiver.url}/silo/{tag}",
        )
        services.subscription_create(actor=world.operator, consumer=consumer, event_type="order.*")
    relay.drain()
    yield tenant, key, queue_arn, f"/silo/{tag}"
    aws.mapping_delete(queue_arn=queue_arn)
    aws.queue_delete(url=tenant.silo_queue_url)


def _arrived(receiver, path):
    return [m for m in receiver.messages() if m["path"] == path]


def _polled(runner, queue_arn) -> bool:
    """Whether the runner's log says it polls the queue now (started, not stopped since)."""
    name = queue_arn.rsplit(":", 1)[1]
    text = runner.log.read_text(errors="replace")
    return text.count(f"polling {name} →") > text.count(f"stopped polling {name} (")


def _waiting(url) -> int:
    a = aws.sqs().get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    return int(a["ApproximateNumberOfMessages"]) + int(a["ApproximateNumberOfMessagesNotVisible"])


def test_a_silo_tenants_event_is_delivered_through_the_mapping_provisioning_made(
    silo, runner, receiver
):
    tenant, key, queue_arn, path = silo
    (mapping,) = aws.mappings_of_queue(queue_arn)
    assert mapping["FunctionArn"] == settings.EGRESS_FUNCTION_ARN
    assert mapping["State"] == "Enabled"
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    # The dedicated tier's delivery concurrency, within AWS's 2–1,000.
    assert mapping["ScalingConfig"]["MaximumConcurrency"] == min(
        max(tenant.effective_quotas()["delivery_concurrency"], 2), 1000
    )

    status, answer, _ = runner.post("/v1/events", ORDER, headers={"Authorization": f"Bearer {key}"})
    assert status == 202 and answer["deliveries"] == 1, answer
    assert wait_for(lambda: _arrived(receiver, path), timeout=15)


def test_without_its_mapping_the_silo_queue_is_not_read_until_the_reconciler_repairs_it(
    silo, runner, receiver
):
    tenant, key, queue_arn, path = silo
    assert aws.mapping_delete(queue_arn=queue_arn) == 1
    # Like Lambda, the runner stops polling a deleted mapping's queue at its next look at the
    # mappings (every 0.5 s here), not at once: an event sent before that may still be read.
    time.sleep(1.5)
    assert wait_for(lambda: not _polled(runner, queue_arn), timeout=10)

    status, answer, _ = runner.post("/v1/events", ORDER, headers={"Authorization": f"Bearer {key}"})
    assert status == 202 and answer["deliveries"] == 1
    # Accepted and queued, but nothing reads the queue: as on AWS without the mapping.
    wait_for(lambda: _arrived(receiver, path), timeout=4)
    assert _arrived(receiver, path) == []
    assert _waiting(tenant.silo_queue_url) == 1

    job = reconcile.job_create(kind="reconcile", tenant=tenant)
    done = reconcile.run_job(job.pk)
    assert done.status == "done" and done.counts["mappings_created"] == 1
    state = SyncState.objects.get(tenant=tenant, object_type=mappings.MAPPING)
    assert state.status == "in_sync" and state.last_error == ""
    assert wait_for(lambda: _arrived(receiver, path), timeout=15)
    assert wait_for(lambda: _waiting(tenant.silo_queue_url) == 0, timeout=5)


def test_suspending_a_silo_tenant_disables_its_mapping_and_resuming_enables_it(silo, world):
    tenant, _, queue_arn, _ = silo
    with TestCase.captureOnCommitCallbacks(execute=True):
        tenant = tenant_services.tenant_suspend(tenant=tenant, actor=world.operator)
    relay.drain()
    (mapping,) = aws.mappings_of_queue(queue_arn)
    assert mapping["State"] == "Disabled"
    with TestCase.captureOnCommitCallbacks(execute=True):
        tenant_services.tenant_resume(tenant=tenant, actor=world.operator)
    relay.drain()
    (mapping,) = aws.mappings_of_queue(queue_arn)
    assert mapping["State"] == "Enabled"
