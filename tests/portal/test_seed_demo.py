"""seed_demo gives the demo tenant what `make run`'s data plane needs, and running it again
changes nothing."""

import io

import pytest
from django.core.management import call_command
from django_tenants.utils import tenant_context

from broker import secrets
from broker.models import Consumer, Producer, Subscription
from broker.services.producers import hash_key
from tenants.models import Tenant

pytestmark = pytest.mark.django_db


@pytest.fixture
def demo_env(tmp_path, monkeypatch, settings):
    monkeypatch.setenv("DEMO_DIR", str(tmp_path))
    monkeypatch.setenv("RECEIVER_PORT", "8200")
    settings.CONSUMER_PRIVATE_TARGETS = ("127.0.0.1:8200-8299",)
    return tmp_path


def test_seed_demo_sets_up_the_demo_receiver_consumers_and_a_working_key_once(demo_env):
    out = io.StringIO()
    call_command("seed_demo", stdout=out)
    key = (demo_env / "api-key").read_text().strip()
    assert key in out.getvalue()  # shown once, when issued
    assert (demo_env / "api-key").stat().st_mode & 0o077 == 0

    tenant = Tenant.objects.get(slug="demo")
    with tenant_context(tenant):
        producer = Producer.objects.get(name="web-shop")
        assert producer.api_keys.filter(key_hash=hash_key(key), expires_at__isnull=True).exists()
        receiver = Consumer.objects.get(name="demo-receiver")
        failing = Consumer.objects.get(name="always-failing")
        assert receiver.url == "http://127.0.0.1:8200/webhooks/demo"
        assert failing.url == "http://127.0.0.1:8200/fail/demo"
        assert failing.retry_policy["strategy"] == "schedule"
        assert Subscription.objects.filter(consumer__in=[receiver, failing]).count() == 2
        # One subscription is ordered, per order: make run shows ordered delivery too.
        (ledger,) = Subscription.objects.filter(consumer__name="order-ledger")
        assert ledger.consumer.url == "http://127.0.0.1:8200/webhooks/demo/ledger"
        assert (ledger.ordered, ledger.ordering_key_path, ledger.on_head_failure) == (
            True,
            "data.order_id",
            "hold",
        )
    secrets = (demo_env / "receiver-secrets").read_text().split()
    # Both tenants' consumers (demo, and the silo tenant's) post to the one receiver.
    assert len(secrets) == 6 and all(s.startswith("whsec_") for s in secrets)

    again = io.StringIO()
    call_command("seed_demo", stdout=again)
    assert (demo_env / "api-key").read_text().strip() == key and key not in again.getvalue()
    assert (demo_env / "receiver-secrets").read_text().split() == secrets
    with tenant_context(tenant):
        assert (
            Consumer.objects.filter(
                name__in=["demo-receiver", "always-failing", "order-ledger"]
            ).count()
            == 3
        )
        assert Subscription.objects.filter(consumer__name="order-ledger").count() == 1


def test_a_signing_secret_made_under_another_key_is_replaced_not_a_crash(demo_env):
    call_command("seed_demo", stdout=io.StringIO())
    tenant = Tenant.objects.get(slug="demo")
    with tenant_context(tenant):
        Consumer.objects.filter(name="demo-receiver").update(
            signing_secret_encrypted="fernet1:gAAAAABnot-a-token-of-this-key"
        )
    before = (demo_env / "receiver-secrets").read_text().split()

    call_command("seed_demo", stdout=io.StringIO())
    after = (demo_env / "receiver-secrets").read_text().split()
    assert after[0] != before[0] and after[0].startswith("whsec_") and after[1:] == before[1:]
    with tenant_context(tenant):
        receiver = Consumer.objects.get(name="demo-receiver")
        assert (
            secrets.decrypt(tenant_id=str(tenant.pk), token=receiver.signing_secret_encrypted)
            == after[0]
        )


def test_the_silo_demo_tenant_gets_its_own_mapped_queue_and_key(demo_env, settings):
    """`make run`'s dedicated demo tenant: its events go through its own delivery queue, which
    provisioning mapped to the egress function."""
    from core import aws

    out = io.StringIO()
    call_command("seed_demo", stdout=out)
    silo = Tenant.objects.get(slug="silo")
    assert silo.status == "active" and silo.tier.deployment_model == "silo"
    key = (demo_env / "silo-api-key").read_text().strip()
    assert key in out.getvalue()
    (mapping,) = aws.mappings_of_queue(aws.queue_arn(silo.silo_queue_url))
    assert mapping["FunctionArn"] == settings.EGRESS_FUNCTION_ARN and mapping["State"] == "Enabled"
    with tenant_context(silo):
        assert Consumer.objects.get(name="demo-receiver").url == (
            "http://127.0.0.1:8200/webhooks/silo"
        )
