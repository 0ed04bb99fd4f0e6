from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("broker", "0008_subscription_name_config_revisions")]

    operations = [
        migrations.AlterField(
            model_name="subscription",
            name="name",
            field=models.CharField(max_length=100, unique=True),
        ),
    ]
