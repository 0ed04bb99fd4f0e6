from django.apps import AppConfig


class ActivityConfig(AppConfig):
    """Public-schema snapshot of each tenant's data-plane activity, read by a periodic job so
    the operator console lists every tenant's figures without a DynamoDB call."""

    name = "broker.activity"
    label = "activity"
    default_auto_field = "django.db.models.BigAutoField"
