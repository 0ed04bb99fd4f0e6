"""The portal's own AWS calls (core/aws.py's clients, principal "portal") checked against
deploy/portal-policy.json, the role a deployment gives the web, worker and beat processes: a
silo tenant's life (onboarding with its queue, a consumer with a KMS-sealed secret, dead
letters ingested and replayed, the delivery log read, offboarding) recorded with
AWS_CALL_LOG, then `iam.check` on moto's evaluator."""

import boto3
import pytest
from django_tenants.utils import tenant_context

from broker import services as broker_services
from broker.deadletters import ingest, runner
from broker.deadletters import services as deadletter_services
from broker.deliveries import selectors
from broker.functions import aws as dataplane_aws
from broker.functions.local import iam
from core import aws
from portal.observability import health
from tenants import services as tenant_services
from tests.helpers import PUBLIC_URL, make_user, onboard
from tests.helpers.deadletters import dead_letter

pytestmark = pytest.mark.django_db


def portal_policy(settings, account: str) -> dict:
    return iam.portal_policy(
        AWS__AccountId=account,
        AWS__Region=settings.AWS_REGION,
        QueuePrefix=settings.SQS_QUEUE_PREFIX,
        StackName="broker",  # the stack tests/conftest.py deploys, as `make run` does
        ConfigTableName=settings.DYNAMODB_CONFIG_TABLE,
        DataplaneTableName=settings.DATAPLANE_TABLE,
        SecretsKmsKeyArn=settings.SECRETS_KMS_KEY_ID,
        TenantQueuePrefix="tenant-",
    )


@pytest.fixture
def recorded(settings, tmp_path, monkeypatch, django_capture_on_commit_callbacks, fake_dns):
    """A silo tenant's life through the services, every portal AWS call recorded."""
    region = settings.AWS_REGION
    # The test's own set-up calls go through clients of its own: never recorded.
    key = boto3.client("kms", region_name=region).create_key()["KeyMetadata"]
    settings.SECRETS_KMS_KEY_ID = key["Arn"]
    path = tmp_path / "calls.jsonl"
    monkeypatch.setenv("AWS_CALL_LOG", str(path))
    # The portal's calls through the data plane's client module (offboarding deletes the held
    # events with broker.functions.shared.held) are made with the portal's role too.
    monkeypatch.setenv("AWS_CALL_PRINCIPAL", "portal")
    dataplane_aws.reset_clients()
    aws.reset_clients()
    try:
        tenant = onboard("iamsilo", tier="dedicated")
        admin = make_user("admin@iamsilo.test")
        with tenant_context(tenant):
            with django_capture_on_commit_callbacks(execute=True):
                consumer, _ = broker_services.consumer_create(
                    actor=admin, name="hook", kind="https", url=PUBLIC_URL
                )
            letter = dead_letter(tenant, consumer.pk)
        dlq = boto3.client("sqs", region_name=region)
        dlq.send_message(
            QueueUrl=ingest.dlq_url(),
            MessageBody=letter.body(),
            MessageAttributes=letter.attributes(),
        )
        ingest.run(max_batches=5, wait_seconds=0)
        with tenant_context(tenant):
            with django_capture_on_commit_callbacks(execute=False):
                (job,) = deadletter_services.replay_start(
                    tenant=tenant, actor=admin, filter={"consumer": str(consumer.pk)}
                ).jobs
            assert runner.replay_job_run(tenant=tenant, job_id=job.pk, sleep=lambda s: None) == (
                "completed"
            )
        selectors.query(f"TENANT#{tenant.pk}", limit=10)
        selectors.batch_get([(f"TENANT#{tenant.pk}", "X")])
        health._aws()
        # Another silo tenant leaves: dropping the first one's schema would meet the pending
        # trigger events of its dead letters, written in this test's transaction.
        leaving = onboard("iamgone", tier="dedicated")
        with django_capture_on_commit_callbacks(execute=True):
            tenant_services.tenant_offboard(tenant=leaving)
        leaving.refresh_from_db()
        assert leaving.status == "deleted", leaving.offboarding_report
    finally:
        monkeypatch.delenv("AWS_CALL_LOG")
        dataplane_aws.reset_clients()
        aws.reset_clients()
    account = boto3.client("sts", region_name=region).get_caller_identity()["Account"]
    return iam.read_calls(path), portal_policy(settings, account)


def test_every_call_the_portal_makes_is_allowed_by_the_portal_policy(recorded):
    calls, policy = recorded
    assert {c.principal for c in calls} == {"portal"}
    actions = {c.action for c in calls}
    assert {  # the life above reached each part of the policy
        "sqs:CreateQueue",
        "sqs:DeleteQueue",
        "sqs:GetQueueAttributes",
        "sqs:ReceiveMessage",
        "sqs:DeleteMessage",
        "sqs:SendMessage",
        "dynamodb:PutItem",
        "dynamodb:Query",
        "dynamodb:BatchGetItem",
        "dynamodb:DescribeTable",
        "kms:GenerateDataKey",
        "kms:Decrypt",
        "lambda:ListEventSourceMappings",
        "lambda:CreateEventSourceMapping",
        "lambda:GetFunctionConfiguration",
    } <= actions, actions
    denied = iam.check(calls, [policy])
    assert denied == [], iam.report(calls, denied)


def test_a_statement_missing_from_the_portal_policy_names_the_calls_it_allowed(recorded, settings):
    calls, policy = recorded
    policy["Statement"] = [s for s in policy["Statement"] if s["Sid"] != "ProvisionSiloQueues"]

    denied = iam.check(calls, [policy])

    assert {(d.principal, d.action) for d in denied} == {
        ("portal", "sqs:CreateQueue"),
        ("portal", "sqs:DeleteQueue"),
    }
    silo = f":{settings.SQS_QUEUE_PREFIX}-silo-"
    assert all(silo in d.resource for d in denied)


def _hold_subscription(world, name: str):
    """An ordered `hold` subscription of tenant a, to an SQS consumer named `name`."""
    with tenant_context(world.a):
        consumer, _ = broker_services.consumer_create(
            actor=world.admin_a,
            name=name,
            kind="sqs",
            queue_arn=f"arn:aws:sqs:eu-west-1:123456789012:{name}",
        )
        return broker_services.subscription_create(
            actor=world.admin_a,
            consumer=consumer,
            event_type="order.*",
            ordered=True,
            on_head_failure="hold",
        )


@pytest.mark.usefixtures("empty_dataplane")
def test_releasing_held_keys_from_the_portal_is_allowed_by_the_portal_policy(
    world, settings, tmp_path, monkeypatch
):
    """Listing, retrying and skipping held keys (broker/deliveries/held_keys.py, through the
    data plane's shared/held.py and its clients) as the portal's role."""
    from broker.deliveries import held_keys
    from tests.helpers.held import dead_letters, hold_key

    sub = _hold_subscription(world, "held-iam")
    # The pool's FIFO queue the template made: a key's queue is one of them.
    queue = aws.sqs().get_queue_url(QueueName=aws.shared_ordered_queue_names()[0])["QueueUrl"]
    for key in ("k-retry", "k-skip"):
        hold_key(world.a, sub, key, n=2, queue_url=queue)
    dead_letters()
    path = tmp_path / "calls.jsonl"
    monkeypatch.setenv("AWS_CALL_LOG", str(path))
    monkeypatch.setenv("AWS_CALL_PRINCIPAL", "portal")
    dataplane_aws.reset_clients()
    try:
        with tenant_context(world.a):
            assert len(held_keys.held_keys_list(tenant=world.a, subscription=sub)) == 2
            held_keys.held_key_retry(
                tenant=world.a, actor=world.admin_a, subscription=sub, key="k-retry"
            )
            held_keys.held_key_skip(
                tenant=world.a, actor=world.admin_a, subscription=sub, key="k-skip"
            )
            held_keys.tenant_held_summary(world.a)
    finally:
        monkeypatch.delenv("AWS_CALL_LOG")
        dataplane_aws.reset_clients()
        aws.sqs().purge_queue(QueueUrl=queue)
    calls = iam.read_calls(path)
    actions = {c.action for c in calls}
    assert {"dynamodb:Query", "dynamodb:GetItem", "sqs:SendMessage"} <= actions, actions
    account = boto3.client("sts", region_name=settings.AWS_REGION).get_caller_identity()["Account"]
    denied = iam.check(calls, [portal_policy(settings, account)])
    assert denied == [], iam.report(calls, denied)


@pytest.mark.usefixtures("empty_dataplane")
def test_discarding_a_deleted_subscriptions_held_events_is_allowed_by_the_portal_policy(
    world, settings, tmp_path, monkeypatch
):
    """The relay syncing a hold-subscription's deletion (its ROUTE tombstoned, its held items
    and summary row deleted with BatchWriteItem and DeleteItem) as the portal's role."""
    from broker.functions.shared import held
    from broker.sync import relay
    from tests.helpers.held import hold_key

    sub = _hold_subscription(world, "held-gone")
    relay.drain()
    hold_key(world.a, sub, "k-gone", n=2, queue_url="https://q/held-gone.fifo")
    path = tmp_path / "calls.jsonl"
    monkeypatch.setenv("AWS_CALL_LOG", str(path))
    monkeypatch.setenv("AWS_CALL_PRINCIPAL", "portal")
    dataplane_aws.reset_clients()
    aws.reset_clients()
    try:
        with tenant_context(world.a):
            broker_services.subscription_delete(actor=world.admin_a, subscription=sub)
        assert relay.drain()["failed"] == 0
    finally:
        monkeypatch.delenv("AWS_CALL_LOG")
        dataplane_aws.reset_clients()
        aws.reset_clients()
    assert held.list_keys(str(world.a.pk), str(sub.pk)) == []
    calls = iam.read_calls(path)
    dataplane = f":table/{settings.DATAPLANE_TABLE}"
    assert {
        ("dynamodb:Query", dataplane),
        ("dynamodb:BatchWriteItem", dataplane),
        ("dynamodb:DeleteItem", dataplane),
    } <= {(c.action, r[r.index(":table/") :]) for c in calls for r in c.resources if ":table/" in r}
    account = boto3.client("sts", region_name=settings.AWS_REGION).get_caller_identity()["Account"]
    denied = iam.check(calls, [portal_policy(settings, account)])
    assert denied == [], iam.report(calls, denied)
