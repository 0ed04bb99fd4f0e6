from django.apps import AppConfig

from tenants import hooks


class BrokerConfig(AppConfig):
    name = "broker"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        # tenants cannot import broker (it sits below it): member changes reach the tenant's
        # audit log, and the offboarding export the tenant's tables, through these hooks.
        # In ready(): they import models, which the app registry loads only after apps.py.
        from .audit import audit_in_tenant
        from .export import export_objects

        hooks.register(tenant_audit=audit_in_tenant, tenant_export_objects=export_objects)
