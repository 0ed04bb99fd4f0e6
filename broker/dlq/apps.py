from django.apps import AppConfig


class DlqConfig(AppConfig):
    """Public-schema side of dead letters: the quarantine and each tenant's DLQ alert state."""

    name = "broker.dlq"
    label = "dlq"
    default_auto_field = "django.db.models.BigAutoField"
