from django.apps import AppConfig

from tenants import hooks


class BrokerConfig(AppConfig):
    name = "broker"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        # tenants cannot import broker (it sits below it): member changes reach the tenant's
        # audit log through this hook.
        # In ready(): it imports models, which the app registry loads only after apps.py.
        from .audit import audit_in_tenant

        hooks.register(tenant_audit=audit_in_tenant)
