from django.apps import AppConfig


class TenantsConfig(AppConfig):
    name = "tenants"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        # The services queue these tasks (which import the services): registered, not imported.
        from . import tasks
        from .services import _common

        _common.TASKS.update(
            provision=tasks.tenant_provision_task, offboard=tasks.tenant_offboard_task
        )
