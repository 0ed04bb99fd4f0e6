"""The offboarding export holds the tenant's configuration, not its secrets or key hashes."""

import json

import pytest
from django.db import connection
from django_tenants.utils import tenant_context

from broker import services as broker_services
from tenants import services
from tests.helpers import PUBLIC_URL, onboard

pytestmark = pytest.mark.django_db


def test_the_export_leaves_out_encrypted_secrets_and_key_hashes(
    world, tmp_path, settings, fake_dns, django_capture_on_commit_callbacks
):
    settings.OFFBOARD_EXPORT_DIR = str(tmp_path)
    tenant = onboard("exporting")
    with tenant_context(tenant):
        producer, key = broker_services.producer_create(actor=None, name="shop", kind="https")
        consumer, signing = broker_services.consumer_create(
            actor=None,
            name="hook",
            kind="https",
            url=PUBLIC_URL,
            auth_type="bearer",
            auth_secret="bearer-secret-value",
        )
        stored = {
            "key_hash": producer.api_keys.get().key_hash,
            "auth": consumer.auth_secret_encrypted,
            "signing": consumer.signing_secret_encrypted,
        }
        # the schema is dropped inside this test's transaction: check the new rows' foreign
        # keys now rather than at a commit that never comes
        with connection.cursor() as cursor:
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
    with django_capture_on_commit_callbacks(execute=True):
        services.tenant_offboard(tenant=tenant)

    text = (tmp_path / f"exporting-{tenant.pk}.json").read_text()
    export = json.loads(text)
    names = {o["fields"].get("name") for o in export["objects"]}
    assert {"shop", "hook"} <= names
    for value in (*stored.values(), key, signing, "bearer-secret-value"):
        assert value not in text
    for obj in export["objects"]:
        assert not any(f.endswith("_encrypted") or f == "key_hash" for f in obj["fields"])
