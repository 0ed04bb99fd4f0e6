from django.apps import AppConfig


class SyncConfig(AppConfig):
    """Sync bookkeeping (public schema): per-object sync state and resync/reconcile runs."""

    name = "broker.sync"
    label = "sync"
    default_auto_field = "django.db.models.BigAutoField"
