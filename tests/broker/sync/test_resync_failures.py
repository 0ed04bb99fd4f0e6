"""One tenant whose sync fails does not stop the others, at start-up or in a resync job."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from broker.sync import dynamo, reconcile
from broker.sync.models import SyncJob
from tenants.models import Tenant

pytestmark = pytest.mark.django_db


@pytest.fixture
def broken_a(world):
    """Tenant a with a quota no DynamoDB number can hold (stored before ranges existed)."""
    Tenant.objects.filter(pk=world.a.pk).update(quota_overrides={"max_consumers": 10**40})


def _forget_tenant_item(tenant):
    from django.conf import settings

    dynamo.aws.dynamodb().delete_item(
        TableName=settings.DYNAMODB_CONFIG_TABLE,
        Key={"PK": {"S": f"TENANT#{tenant.pk}"}, "SK": {"S": "TENANT"}},
    )


def test_the_start_up_resync_reports_the_failing_tenant_and_syncs_the_others(world, broken_a):
    _forget_tenant_item(world.b)
    out, err = StringIO(), StringIO()

    call_command("sync_dynamodb", stdout=out, stderr=err)

    assert "FAILED tenant-a" in err.getvalue()
    assert "tenant-b" not in err.getvalue()
    assert dynamo.get_item(f"TENANT#{world.b.pk}", "TENANT")["status"] == "active"


def test_the_command_can_be_told_to_fail_when_a_tenant_failed(world, broken_a):
    with pytest.raises(CommandError, match="tenant-a"):
        call_command("sync_dynamodb", "--fail-on-error", stdout=StringIO(), stderr=StringIO())


def test_a_resync_job_marks_itself_failed_naming_the_tenant_and_counts_the_rest(world, broken_a):
    _forget_tenant_item(world.b)
    job = reconcile.run_job(SyncJob.objects.create(kind="resync").pk)

    assert job.status == "failed"
    assert "tenant-a" in job.error and "tenant-b" not in job.error
    assert job.counts["failed_tenants"] == 1 and job.counts["tenants"] >= 2
    assert dynamo.get_item(f"TENANT#{world.b.pk}", "TENANT")["status"] == "active"
