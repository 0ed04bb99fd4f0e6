"""Subscriptions get a name (unique per tenant, made unique in 0009), named from their
consumer and event type; configuration revisions start, with a baseline revision 1 holding
what a tenant had configured before."""

import django.utils.timezone
from django.conf import settings
from django.db import migrations, models


def name_subscriptions(apps, schema_editor):
    Subscription = apps.get_model("broker", "Subscription")
    taken = set()
    for sub in Subscription.objects.select_related("consumer").order_by("created_at", "id"):
        base = f"{sub.consumer.name}.{sub.event_type}"[:96]
        name, n = base, 1
        while name in taken:
            n += 1
            name = f"{base}-{n}"
        taken.add(name)
        sub.name = name
        sub.save(update_fields=["name"])


def baseline(apps, schema_editor):
    from broker.configcode import document

    Revision = apps.get_model("broker", "ConfigRevision")
    Entry = apps.get_model("broker", "ConfigRevisionEntry")
    kinds = [
        (document.PRODUCER, apps.get_model("broker", "Producer")),
        (document.CONSUMER, apps.get_model("broker", "Consumer")),
        (document.SUBSCRIPTION, apps.get_model("broker", "Subscription")),
        (document.EVENT_TYPE, apps.get_model("broker", "EventType")),
    ]
    entries = [(t, o) for t, model in kinds for o in model.objects.all()]
    if not entries:
        return
    revision = Revision.objects.create(number=1, summary="baseline", objects_changed=len(entries))
    Entry.objects.bulk_create(
        Entry(revision=revision, object_type=t, object_id=str(o.pk), body=document.body(t, o))
        for t, o in entries
    )


class Migration(migrations.Migration):
    dependencies = [
        ("broker", "0007_replay_counter"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name="subscription",
            name="name",
            field=models.CharField(default="", max_length=100),
            preserve_default=False,
        ),
        migrations.RunPython(name_subscriptions, migrations.RunPython.noop),
        migrations.CreateModel(
            name="ConfigRevision",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("number", models.PositiveBigIntegerField(unique=True)),
                ("created_at", models.DateTimeField(default=django.utils.timezone.now)),
                ("actor_email", models.CharField(blank=True, max_length=254)),
                ("summary", models.CharField(blank=True, max_length=500)),
                ("objects_changed", models.PositiveIntegerField(default=0)),
                (
                    "actor",
                    models.ForeignKey(
                        blank=True,
                        db_constraint=False,
                        null=True,
                        on_delete=models.deletion.SET_NULL,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            options={"ordering": ["-number"]},
        ),
        migrations.CreateModel(
            name="ConfigRevisionEntry",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("object_type", models.CharField(max_length=32)),
                ("object_id", models.CharField(max_length=64)),
                ("body", models.JSONField(blank=True, null=True)),
                (
                    "revision",
                    models.ForeignKey(
                        on_delete=models.deletion.CASCADE,
                        related_name="entries",
                        to="broker.configrevision",
                    ),
                ),
            ],
            options={
                "indexes": [
                    models.Index(
                        fields=["object_type", "object_id", "revision"],
                        name="broker_conf_object__idx",
                    )
                ],
                "constraints": [
                    models.UniqueConstraint(
                        fields=("revision", "object_type", "object_id"), name="config_entry_once"
                    )
                ],
            },
        ),
        migrations.RunPython(baseline, migrations.RunPython.noop),
    ]
