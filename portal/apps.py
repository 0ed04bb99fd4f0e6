from django.apps import AppConfig


class PortalConfig(AppConfig):
    name = "portal"

    def ready(self):
        # Connects the Celery task-outcome counters (web and worker both load the apps); in
        # ready() because it imports models, which the app registry loads after apps.py.
        from portal.observability import metrics  # noqa: F401
