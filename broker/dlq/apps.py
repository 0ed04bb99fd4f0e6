from django.apps import AppConfig

from tenants import hooks


class DlqConfig(AppConfig):
    """Public-schema side of dead letters: the quarantine and each tenant's DLQ alert state."""

    name = "broker.dlq"
    label = "dlq"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        # tenants sits below broker: offboarding reaches the dead letters through this hook.
        # In ready(): it imports models, which the app registry loads only after apps.py.
        from .hooks import offboard_dead_letters

        hooks.register(tenant_purge_dead_letters=offboard_dead_letters)
