"""What the tenant services share: the status machine, locking, quota validation, URLs."""

from django.conf import settings
from django.db import transaction

from core import locks
from core.audit import actor_fields, diff
from core.context import current_request_id
from core.errors import ApplicationError

from ..models import QUOTA_FIELDS, QUOTA_RANGES, PlatformEvent, Tenant, TenantEvent, TenantStatus

S = TenantStatus
TRANSITIONS = {
    S.PROVISIONING: {S.ACTIVE, S.FAILED},
    S.FAILED: {S.PROVISIONING, S.OFFBOARDING},
    S.ACTIVE: {S.SUSPENDED, S.OFFBOARDING},
    S.SUSPENDED: {S.ACTIVE, S.OFFBOARDING},
    S.OFFBOARDING: {S.DELETED},
    S.DELETED: set(),
}


class StepFailed(Exception):
    """A provisioning or offboarding run failed before its last attempt: its task retries it
    with backoff (tenants/tasks.py). The error is already recorded on the tenant."""


def platform_audit(
    *, actor, action: str, object_type: str, object_id, before=None, after=None
) -> PlatformEvent:
    """A row in the platform's audit log (operator changes outside any tenant), in the
    caller's transaction."""
    return PlatformEvent.objects.create(
        **actor_fields(actor),
        action=action,
        object_type=object_type,
        object_id=str(object_id),
        diff=diff(before, after),
        request_id=current_request_id() or "",
    )


def _actor(user):
    return user if user is not None and getattr(user, "is_authenticated", False) else None


def check_transition(src: str, dst: str, *, action: str) -> None:
    """The one place that decides which status changes are legal."""
    if dst not in TRANSITIONS[src]:
        raise ApplicationError(
            f"Cannot {action.replace('_', ' ')} a tenant whose status is {src}.",
            code="invalid_transition",
        )


def _transition(tenant: Tenant, to: str, *, action: str, actor=None, detail=None) -> None:
    check_transition(tenant.status, to, action=action)
    TenantEvent.objects.create(
        tenant=tenant,
        action=action,
        from_status=tenant.status,
        to_status=to,
        actor=_actor(actor),
        detail=detail or {},
        request_id=current_request_id() or "",
    )
    tenant.status = to


def _locked(tenant_id) -> Tenant:
    return Tenant.objects.select_for_update(of=("self",)).select_related("tier").get(pk=tenant_id)


def validate_quota_overrides(overrides) -> dict[str, int]:
    if not isinstance(overrides, dict):
        raise ApplicationError(
            "Quota overrides must be an object.",
            fields={"quota_overrides": ["Expected an object."]},
        )
    errors = {}
    for name, value in overrides.items():
        if name not in QUOTA_FIELDS:
            errors[name] = [f"Unknown quota. Known quotas: {', '.join(QUOTA_FIELDS)}."]
        elif value is not None:
            low, high = QUOTA_RANGES[name]
            if type(value) is not int or not low <= value <= high:
                errors[name] = [
                    f"At most {high} and at least {low}, an integer (null removes the override)."
                ]
    if errors:
        raise ApplicationError(
            f"Invalid quota values: {', '.join(sorted(errors))}.", code="invalid", fields=errors
        )
    return overrides


# The tasks the services queue, by name. tenants/tasks.py imports the services, so
# TenantsConfig.ready() registers them here instead of the services importing the tasks.
TASKS: dict = {}


def _kick(name: str, *args):
    task = TASKS[name]
    transaction.on_commit(lambda: task.delay(*args))


def tenant_host(tenant: Tenant) -> str:
    port = f":{settings.PORTAL_PORT}" if settings.PORTAL_PORT else ""
    return f"{tenant.slug}.{settings.PORTAL_BASE_DOMAIN}{port}"


def tenant_url(tenant: Tenant, path: str = "/") -> str:
    return f"{settings.PORTAL_URL_SCHEME}://{tenant_host(tenant)}{path}"


def public_url(path: str = "/") -> str:
    port = f":{settings.PORTAL_PORT}" if settings.PORTAL_PORT else ""
    return f"{settings.PORTAL_URL_SCHEME}://{settings.PORTAL_BASE_DOMAIN}{port}{path}"


def _exclusive(name: str, key):
    """A session advisory lock: yields False when someone else holds it."""
    return locks.try_session_lock(name, key)
