from django.db import migrations

TIERS = [
    # name, model, default, rate/s, burst, daily, producers, consumers, subscriptions,
    # concurrency, attempts, dlq days, api rpm, max event bytes
    ("basic", "pool", True, 10, 20, 100_000, 5, 5, 20, 2, 5, 7, 300, 65_536),
    ("standard", "pool", False, 50, 100, 1_000_000, 20, 20, 100, 5, 8, 14, 1_200, 131_072),
    ("premium", "pool", False, 200, 400, 10_000_000, 100, 100, 500, 20, 12, 30, 6_000, 262_144),
    ("dedicated", "silo", True, 1_000, 2_000, 100_000_000, 500, 500, 2_000, 50, 16, 90, 30_000, 262_144),
]
FIELDS = [
    "ingest_rate_per_second", "ingest_burst", "daily_event_quota", "max_producers",
    "max_consumers", "max_subscriptions", "delivery_concurrency", "max_delivery_attempts",
    "dlq_retention_days", "api_requests_per_minute", "max_event_size_bytes",
]
DESCRIPTIONS = {
    "basic": "Shared queues, small quotas: evaluation and small integrations.",
    "standard": "Shared queues, production quotas.",
    "premium": "Shared queues, high quotas and concurrency.",
    "dedicated": "Dedicated delivery queue and concurrency (silo).",
}


def seed(apps, schema_editor):
    Tier = apps.get_model("tenants", "Tier")
    Tenant = apps.get_model("tenants", "Tenant")
    for name, model, default, *quotas in TIERS:
        Tier.objects.update_or_create(
            name=name,
            defaults={
                "deployment_model": model,
                "is_default_for_model": default,
                "description": DESCRIPTIONS[name],
                **dict(zip(FIELDS, quotas, strict=True)),
            },
        )
    # django-tenants needs a row for the public schema; the host middleware maps the base
    # domain to it, so it has no Domain row and no tier.
    Tenant.objects.get_or_create(
        schema_name="public", defaults={"name": "Platform", "slug": "public", "status": "active"}
    )


class Migration(migrations.Migration):
    dependencies = [("tenants", "0001_initial")]
    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
