"""A tenant's configuration and history as plain data, for its offboarding export
(tenants/services/offboarding.py reaches it through the `tenant_export_objects` hook)."""

import json

from django.apps import apps
from django.core import serializers
from django_tenants.utils import schema_context, schema_exists


def _secret_field(name: str) -> bool:
    """Encrypted credentials and API key hashes: useless to the tenant once its account is
    gone, and harmful in a file that outlives it."""
    return name.endswith("_encrypted") or name == "key_hash"


def export_objects(tenant) -> list[dict]:
    """Every row of the tenant's schema (broker's tables), secrets left out; [] once the
    schema is gone (a resumed offboarding)."""
    if not schema_exists(tenant.schema_name):
        return []
    objects = []
    with schema_context(tenant.schema_name):
        for model in apps.get_app_config("broker").get_models():
            objects.extend(json.loads(serializers.serialize("json", model.objects.all())))
    for obj in objects:
        obj["fields"] = {k: v for k, v in obj["fields"].items() if not _secret_field(k)}
    return objects
