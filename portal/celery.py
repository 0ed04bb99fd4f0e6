import os

from tenant_schemas_celery.app import CeleryApp as TenantAwareCeleryApp

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

# Tasks sent while a tenant schema is active carry that schema and run in it on the worker;
# tasks sent from the public schema run in public.
app = TenantAwareCeleryApp("portal")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
# Task modules outside an app's own tasks.py.
app.autodiscover_tasks(["broker.deliveries"])
