import pytest
from django.conf import settings
from django.db import connection, transaction
from django_tenants.utils import schema_exists

from broker.sync import contract, dynamo, relay, tenant_items
from core import aws
from core.errors import ApplicationError
from tenants import services
from tenants.models import Tenant, TenantStatus
from tests.helpers import onboard

pytestmark = pytest.mark.django_db

S = TenantStatus
ALL = list(S.values)
LEGAL = {
    (S.PROVISIONING, S.ACTIVE),
    (S.PROVISIONING, S.FAILED),
    (S.FAILED, S.PROVISIONING),
    (S.FAILED, S.OFFBOARDING),
    (S.ACTIVE, S.SUSPENDED),
    (S.ACTIVE, S.OFFBOARDING),
    (S.SUSPENDED, S.ACTIVE),
    (S.SUSPENDED, S.OFFBOARDING),
    (S.OFFBOARDING, S.DELETED),
}


def tenant_item(tenant):
    return dynamo.get_item(contract.tenant_pk(tenant.pk), "TENANT")


@pytest.mark.parametrize("src", ALL)
@pytest.mark.parametrize("dst", ALL)
def test_the_transition_table_allows_exactly_the_documented_moves(src, dst):
    if (src, dst) in LEGAL:
        services.check_transition(src, dst, action="x")
    else:
        with pytest.raises(ApplicationError) as exc:
            services.check_transition(src, dst, action="x")
        assert exc.value.code == "invalid_transition"


def test_onboarding_a_pool_tenant_creates_schema_shard_item_and_invitation(
    mailoutbox, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        tenant = services.tenant_onboard(
            name="Acme", slug="acme", tier="basic", admin_email="Boss@Acme.test"
        )
    tenant.refresh_from_db()
    assert tenant.status == S.ACTIVE
    assert schema_exists(tenant.schema_name)
    assert len(tenant.delivery_queues) == 2 and len(set(tenant.delivery_queues)) == 2
    assert tenant.silo_queue_url == ""
    item = tenant_item(tenant)
    assert item["status"] == "active" and item["tier"] == "basic"
    assert item["deployment_model"] == "pool"
    assert item["version"] == tenant.version == tenant.synced_version
    assert item["delivery_queues"] == tenant.delivery_queues
    # Ordered subscriptions: every shared FIFO queue, which the template's stack made.
    assert [u.rsplit("/", 1)[1] for u in item["ordered_queues"]] == [
        f"{settings.SQS_QUEUE_PREFIX}-ordered-{i:02d}.fifo"
        for i in range(settings.SHARED_ORDERED_QUEUES)
    ]
    for url in item["ordered_queues"]:
        assert aws.queue_url(url.rsplit("/", 1)[1]) == url
    assert item["quotas"]["max_producers"] == 5
    assert [m.to for m in mailoutbox] == [["boss@acme.test"]]
    assert "http://acme.localhost" in mailoutbox[0].body and "/invitations/" in mailoutbox[0].body
    assert list(tenant.events.values_list("action", flat=True)) == ["onboard", "provisioned"]


def test_onboarding_a_silo_tenant_creates_one_queue_redriving_to_the_central_dlq(
    django_capture_on_commit_callbacks,
):
    with django_capture_on_commit_callbacks(execute=True):
        tenant = services.tenant_onboard(
            name="Big", slug="big", tier="dedicated", admin_email="a@big.test"
        )
    tenant.refresh_from_db()
    assert tenant.status == S.ACTIVE
    assert tenant.delivery_queues == [tenant.silo_queue_url]
    attrs = aws.sqs().get_queue_attributes(QueueUrl=tenant.silo_queue_url, AttributeNames=["All"])
    assert aws.central_dlq_name() in attrs["Attributes"]["RedrivePolicy"]
    # Its own FIFO queue for ordered subscriptions, redriving to the FIFO DLQ, mapped like the
    # silo queue (no batching window: AWS refuses one on a FIFO queue's mapping).
    [ordered] = tenant_item(tenant)["ordered_queues"]
    assert ordered == aws.queue_url(f"{aws.silo_queue_name(tenant.pk)}.fifo")
    attrs = aws.sqs().get_queue_attributes(QueueUrl=ordered, AttributeNames=["All"])["Attributes"]
    assert attrs["FifoQueue"] == "true"
    assert aws.central_fifo_dlq_name() in attrs["RedrivePolicy"]
    [mapping] = aws.mappings_of_queue(aws.queue_arn(ordered))
    assert mapping["FunctionArn"] == settings.EGRESS_FUNCTION_ARN
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]


def test_a_failure_at_the_aws_call_marks_failed_and_a_retry_ends_active_with_one_queue(
    monkeypatch, settings, django_capture_on_commit_callbacks
):
    settings.TENANT_LIFECYCLE_MAX_RETRIES = 0  # the task's own retries: test_lifecycle_retries
    real_put = dynamo.put_versioned
    calls = {"n": 0}

    def flaky_put(item):
        calls["n"] += 1
        if calls["n"] == 1:
            raise aws.dynamodb().exceptions.ResourceNotFoundException(
                {"Error": {"Code": "ResourceNotFoundException", "Message": "table gone"}}, "PutItem"
            )
        return real_put(item)

    monkeypatch.setattr(dynamo, "put_versioned", flaky_put)
    with django_capture_on_commit_callbacks(execute=True):
        tenant = services.tenant_onboard(
            name="Flaky", slug="flaky", tier="dedicated", admin_email="a@flaky.test"
        )
    tenant.refresh_from_db()
    assert tenant.status == S.FAILED
    assert "table gone" in tenant.provisioning_error
    assert tenant_item(tenant) is None

    with django_capture_on_commit_callbacks(execute=True):
        services.tenant_retry_provisioning(tenant=tenant)
    tenant.refresh_from_db()
    assert tenant.status == S.ACTIVE and tenant.provisioning_error == ""
    urls = aws.sqs().list_queues(QueueNamePrefix=aws.silo_queue_name(tenant.pk))["QueueUrls"]
    # One silo queue, and its FIFO twin for ordered subscriptions, each made once.
    assert sorted(urls) == [tenant.silo_queue_url, tenant.silo_queue_url + ".fifo"]
    assert tenant_item(tenant)["status"] == "active"
    assert list(tenant.events.values_list("action", flat=True)) == [
        "onboard",
        "provisioning_failed",
        "retry_provisioning",
        "provisioned",
    ]


def test_suspend_and_resume_change_the_dynamodb_item_with_a_higher_version(
    django_capture_on_commit_callbacks,
):
    tenant = onboard("pausable")
    v0 = tenant_item(tenant)["version"]
    with django_capture_on_commit_callbacks(execute=True):
        services.tenant_suspend(tenant=tenant)
    item = tenant_item(tenant)
    assert item["status"] == "suspended" and item["version"] > v0
    with django_capture_on_commit_callbacks(execute=True):
        services.tenant_resume(tenant=tenant)
    assert tenant_item(tenant)["status"] == "active"
    with pytest.raises(ApplicationError):
        services.tenant_resume(tenant=tenant)


def test_an_older_write_never_overwrites_a_newer_tenant_item():
    tenant = onboard("versioned")
    tenant.refresh_from_db()
    newest = contract.tenant_item(tenant)
    stale = {**newest, "version": newest["version"] - 1, "status": "suspended"}
    assert dynamo.put_versioned(stale) is False
    assert tenant_item(tenant)["status"] == "active"


def test_offboarding_removes_queues_items_schema_and_keeps_a_report(
    tmp_path, settings, django_capture_on_commit_callbacks
):
    settings.OFFBOARD_EXPORT_DIR = str(tmp_path)
    tenant = onboard("leaving", tier="dedicated")
    with connection.cursor():
        pass
    from tenants.models import Membership
    from tests.helpers import make_user

    Membership.objects.create(user=make_user("m@leaving.test"), tenant=tenant, role="admin")
    with django_capture_on_commit_callbacks(execute=True):
        services.tenant_offboard(tenant=tenant)
    tenant.refresh_from_db()
    assert tenant.status == S.DELETED
    assert not schema_exists(tenant.schema_name)
    assert (
        aws.sqs().list_queues(QueueNamePrefix=aws.silo_queue_name(tenant.pk)).get("QueueUrls", [])
        == []
    )
    item = tenant_item(tenant)
    assert item["deleted"] is True and "ttl" in item
    report = tenant.offboarding_report
    [ordered] = tenant.ordered_queues
    assert report["deleted_queues"] == [tenant.silo_queue_url, ordered]
    assert report["tombstoned_items"] == 1
    assert report["removed_members"] == 1
    assert report["dropped_schema"] == tenant.schema_name
    assert report["removed_domains"] == ["leaving.localhost"]
    export = (tmp_path / f"leaving-{tenant.pk}.json").read_text()
    assert '"m@leaving.test"' in export
    assert not tenant.domains.exists()


def test_a_late_write_cannot_resurrect_an_offboarded_tenant(
    settings, tmp_path, django_capture_on_commit_callbacks
):
    settings.OFFBOARD_EXPORT_DIR = str(tmp_path)
    tenant = onboard("ghost")
    before = contract.tenant_item(Tenant.objects.select_related("tier").get(pk=tenant.pk))
    with django_capture_on_commit_callbacks(execute=True):
        services.tenant_offboard(tenant=tenant)
    assert dynamo.put_versioned(before) is False
    assert tenant_item(tenant)["deleted"] is True
    with transaction.atomic():  # a TENANT row queued late (a stale change) is dropped
        tenant_items.queue(Tenant.objects.select_related("tier").get(pk=tenant.pk))
    relay.drain()
    assert tenant_item(tenant)["deleted"] is True


def test_tier_quota_change_reaches_every_live_tenant_on_the_tier(
    django_capture_on_commit_callbacks,
):
    from tenants.models import Tier

    t1, t2 = onboard("premium-one", tier="premium"), onboard("premium-two", tier="premium")
    with django_capture_on_commit_callbacks(execute=True):
        services.tier_update(tier=Tier.objects.get(name="premium"), quotas={"max_producers": 123})
    for t in (t1, t2):
        assert tenant_item(t)["quotas"]["max_producers"] == 123


def test_quota_overrides_merge_over_the_tier_and_reach_dynamodb(django_capture_on_commit_callbacks):
    tenant = onboard("custom")
    with django_capture_on_commit_callbacks(execute=True):
        services.tenant_update_quotas(tenant=tenant, overrides={"max_consumers": 77})
    tenant.refresh_from_db()
    assert tenant.effective_quotas()["max_consumers"] == 77
    assert tenant.effective_quotas()["max_producers"] == tenant.tier.max_producers
    assert tenant_item(tenant)["quotas"]["max_consumers"] == 77
    with django_capture_on_commit_callbacks(execute=True):
        services.tenant_update_quotas(tenant=tenant, overrides={"max_consumers": None})
    tenant.refresh_from_db()
    assert tenant.quota_overrides == {}
    with pytest.raises(ApplicationError) as exc:
        services.tenant_update_quotas(tenant=tenant, overrides={"max_unicorns": 3})
    assert "max_unicorns" in exc.value.fields["quota_overrides"]
