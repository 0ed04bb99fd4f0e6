from django.apps import AppConfig

from tenants import hooks


class SyncConfig(AppConfig):
    """Sync bookkeeping (public schema): per-object sync state and resync/reconcile runs."""

    name = "broker.sync"
    label = "sync"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        # tenants cannot import the sync (it sits below broker): it calls these hooks.
        # In ready(): it imports models, which the app registry loads only after apps.py.
        from . import selectors, tenant_items

        hooks.register(
            tenant_changed=tenant_items.queue,
            tenant_publish=tenant_items.publish,
            tenant_sync_summaries=selectors.tenant_sync_summaries,
            tenant_tear_down=tenant_items.tear_down,
        )
