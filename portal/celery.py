import os

from celery import signals
from tenant_schemas_celery.app import CeleryApp as TenantAwareCeleryApp

from core.context import (
    current_request_id,
    current_user_id,
    reset_request_id,
    reset_user_id,
    set_request_id,
    set_user_id,
)

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

# Every module that defines tasks, by name. The worker imports exactly these at start, so a
# task is registered because it is listed here, never because the URL conf or another import
# chain happened to reach its module (autodiscovery found broker.deliveries only when told,
# and broker.deadletters only by such a chain). tests/portal/test_celery_app.py starts the
# app as `celery -A portal` does and checks every beat job's task is registered.
TASK_MODULES = (
    "tenants.tasks",
    "broker.tasks",
    "broker.sync.tasks",
    "broker.deliveries.tasks",
    "broker.deadletters.tasks",
    "broker.activity.tasks",
)

# Tasks sent while a tenant schema is active carry that schema and run in it on the worker;
# tasks sent from the public schema run in public.
app = TenantAwareCeleryApp("portal", include=TASK_MODULES)
app.config_from_object("django.conf:settings", namespace="CELERY")


# Log lines of a task carry the request id and user of the request that enqueued it (the
# tenant comes from the schema the task runs in).
@signals.before_task_publish.connect
def _stamp_context(headers=None, **kwargs):
    if headers is not None:
        headers.setdefault("request_id", current_request_id())
        headers.setdefault("user_id", current_user_id())


# The tokens to restore, by task id: an eager task that runs another one of the same kind
# (the relay kicking itself) must not overwrite its own tokens on the shared task object,
# or its context outlives it and the next request's log lines carry a stale id.
_CONTEXT_TOKENS: dict[str, tuple] = {}


@signals.task_prerun.connect
def _enter_context(task_id=None, task=None, **kwargs):
    request = getattr(task, "request", None)
    # Eager tasks (tests) run inside the request: keep its context.
    request_id = getattr(request, "request_id", None) or current_request_id()
    _CONTEXT_TOKENS[task_id] = (
        set_request_id(request_id or getattr(request, "id", None)),
        set_user_id(getattr(request, "user_id", None) or current_user_id()),
    )


@signals.task_postrun.connect
def _leave_context(task_id=None, **kwargs):
    tokens = _CONTEXT_TOKENS.pop(task_id, None)
    if tokens:
        reset_user_id(tokens[1])
        reset_request_id(tokens[0])
