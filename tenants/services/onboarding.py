"""Onboarding and provisioning: a tenant goes provisioning -> active (or failed -> retry)."""

import logging
import re

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction

from core import aws
from core.audit_actions import AuditAction
from core.context import current_request_id
from core.errors import ApplicationError

from .. import hooks
from ..models import Domain, Tenant, TenantEvent, Tier
from ..schemas import create_tenant_schema
from ..shuffle_shard import shard_for
from ._common import (
    S,
    StepFailed,
    _actor,
    _exclusive,
    _kick,
    _locked,
    _transition,
    validate_quota_overrides,
)
from .members import _invite_first_admin

logger = logging.getLogger(__name__)

SLUG_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,48}[a-z0-9])?$")
RESERVED_SLUGS = frozenset(
    """www admin api app apps auth login logout public static media assets mail smtp imap
    status docs help support operator operators console portal dashboard internal system root
    localhost healthz metrics billing signup register account accounts tenant tenants""".split()
)


SLUG_TAKEN = "A tenant with this slug already exists."


def _slug_conflict() -> ApplicationError:
    """Onboarding a slug that exists (or is being onboarded right now): 409, not 400."""
    return ApplicationError(
        SLUG_TAKEN, code="conflict", status_code=409, fields={"slug": [SLUG_TAKEN]}
    )


def onboarding_errors(*, name, slug, tier, admin_email, quota_overrides=None) -> dict:
    """Field errors of an onboarding request (empty when it is valid)."""
    errors = {}
    name = (name or "").strip()
    slug = (slug or "").strip().lower()
    if not name:
        errors["name"] = ["This field is required."]
    elif len(name) > 100:
        errors["name"] = ["At most 100 characters."]
    if not SLUG_RE.match(slug):
        errors["slug"] = [
            "Use 1-50 lowercase letters, digits and hyphens, not starting or ending with a hyphen."
        ]
    elif slug in RESERVED_SLUGS:
        errors["slug"] = ["This slug is reserved."]
    elif Tenant.objects.filter(slug=slug).exists():
        errors["slug"] = [SLUG_TAKEN]
    admin_email = (admin_email or "").strip()
    if admin_email:  # optional: the seed API onboards without one
        try:
            validate_email(admin_email)
        except ValidationError:
            errors["admin_email"] = ["Enter a valid email address."]
    if not isinstance(tier, str) or not Tier.objects.filter(name=tier).exists():
        known = ", ".join(Tier.objects.values_list("name", flat=True))
        errors["tier"] = [f"Unknown tier. Known tiers: {known}."]
    if quota_overrides:
        try:
            validate_quota_overrides(quota_overrides)
        except ApplicationError as exc:
            errors["quota_overrides"] = exc.fields
    return errors


@transaction.atomic
def tenant_onboard(
    *, name: str, slug: str, tier: str, admin_email: str = "", actor=None, quota_overrides=None
) -> Tenant:
    """Creates the tenant in `provisioning` and queues its provisioning after commit."""
    errors = onboarding_errors(
        name=name, slug=slug, tier=tier, admin_email=admin_email, quota_overrides=quota_overrides
    )
    if errors:
        if errors == {"slug": [SLUG_TAKEN]}:
            raise _slug_conflict()
        raise ApplicationError("Invalid onboarding request.", fields=errors)
    name, slug = name.strip(), slug.strip().lower()
    admin_email = (admin_email or "").strip().lower()
    tier_obj = Tier.objects.get(name=tier)

    tenant = Tenant(
        name=name,
        slug=slug,
        schema_name="t_" + slug.replace("-", "_"),
        tier=tier_obj,
        status=S.PROVISIONING,
        admin_email=admin_email,
        quota_overrides={k: v for k, v in (quota_overrides or {}).items() if v is not None},
    )
    try:
        with transaction.atomic():
            tenant.save()
            Domain.objects.create(
                tenant=tenant, domain=f"{slug}.{settings.PORTAL_BASE_DOMAIN}", is_primary=True
            )
    except (IntegrityError, ValidationError):
        # The same slug onboarded by a concurrent request: its row (IntegrityError) or, once
        # provisioned, its schema (django-tenants' ValidationError) got there first.
        raise _slug_conflict()
    TenantEvent.objects.create(
        tenant=tenant,
        action=AuditAction.ONBOARD,
        to_status=S.PROVISIONING,
        actor=_actor(actor),
        detail={"tier": tier_obj.name},
        request_id=current_request_id() or "",
    )
    _kick("provision", str(tenant.pk))
    return tenant


def _provision_queues(tenant: Tenant) -> tuple[list[str], str, list[str]]:
    """(delivery queues, silo queue, FIFO queues of ordered subscriptions)."""
    if tenant.tier.deployment_model == "silo":
        # Its event source mappings are made when the TENANT item is published (broker's
        # relay, broker/sync/mappings.py): with the tenant's status, which says enabled or not.
        url = aws.delivery_queue_create(name=aws.silo_queue_name(tenant.pk))
        ordered = aws.ordered_queue_create(name=aws.silo_ordered_queue_name(tenant.pk))
        return [url], url, [ordered]
    names = aws.shared_delivery_queue_names()
    shard = shard_for(tenant.pk, n=len(names), k=min(settings.SHUFFLE_SHARD_SIZE, len(names)))
    # Every shared FIFO queue: a key picks one by a hash of its group (ordering.queue_for).
    ordered = [aws.queue_url(name) for name in aws.shared_ordered_queue_names()]
    return [aws.queue_url(names[i]) for i in shard], "", ordered


def ordered_queues_backfill(tenant: Tenant) -> bool:
    """A tenant provisioned before ordered delivery has no FIFO queues (`ordered_queues` empty:
    its ordered subscriptions go unordered, their records say `no_ordered_queue`). This gives it
    what provisioning gives a tenant now, its own FIFO queue (silo, created) or the pool's, and
    publishes its TENANT item; True when it did. The reconciler's pass runs it for every tenant
    (nothing to do costs no call); safe to run again."""
    if tenant.ordered_queues or tenant.status not in (S.ACTIVE, S.SUSPENDED):
        return False
    _, _, ordered = _provision_queues(tenant)
    with transaction.atomic():
        locked = _locked(tenant.pk)
        if locked.ordered_queues or locked.status not in (S.ACTIVE, S.SUSPENDED):
            return False
        locked.ordered_queues = ordered
        locked.version += 1
        locked.save(update_fields=["ordered_queues", "version"])
        hooks.tenant_publish(locked)
    tenant.ordered_queues, tenant.version = locked.ordered_queues, locked.version
    return True


def tenant_provision(*, tenant_id, final: bool = True) -> Tenant | None:
    """Runs every provisioning step; each one is safe to run again after a failure.

    A failure is recorded (`provisioning_error`); on the `final` attempt the tenant becomes
    `failed` (an operator retries it), before it StepFailed is raised and the task retries
    with backoff. A duplicate run (a redelivered task, a second worker, the resume job) finds
    the lock taken and leaves."""
    with _exclusive("provision", tenant_id) as mine:
        if not mine:
            return None
        return _provision(tenant_id, final=final)


def _provision(tenant_id, *, final: bool) -> Tenant | None:
    tenant = Tenant.objects.select_related("tier").filter(pk=tenant_id).first()
    if tenant is None or tenant.status != S.PROVISIONING:
        return tenant
    try:
        create_tenant_schema(tenant)
        queues, silo_url, ordered = _provision_queues(tenant)
        with transaction.atomic():
            tenant = _locked(tenant_id)
            if tenant.status != S.PROVISIONING:
                return tenant
            tenant.delivery_queues = queues
            tenant.silo_queue_url = silo_url
            tenant.ordered_queues = ordered
            tenant.provisioning_error = ""
            _invite_first_admin(tenant)
            _transition(tenant, S.ACTIVE, action=AuditAction.PROVISIONED)
            tenant.version += 1
            tenant.save()
            # Written by the relay inside this transaction: if DynamoDB refuses, the tenant
            # stays provisioning and is marked failed below, so nothing claims to be live.
            hooks.tenant_publish(tenant)
    except Exception as exc:
        logger.exception("provisioning of tenant %s failed", tenant_id)
        with transaction.atomic():
            tenant = _locked(tenant_id)
            if tenant.status != S.PROVISIONING:
                return tenant
            if final:
                _transition(
                    tenant,
                    S.FAILED,
                    action=AuditAction.PROVISIONING_FAILED,
                    detail={"error": str(exc)},
                )
            tenant.provisioning_error = f"{type(exc).__name__}: {exc}"[:2000]
            tenant.save()
        if not final:
            raise StepFailed(tenant.provisioning_error) from exc
    return tenant


@transaction.atomic
def tenant_retry_provisioning(*, tenant: Tenant, actor=None) -> Tenant:
    tenant = _locked(tenant.pk)
    _transition(tenant, S.PROVISIONING, action=AuditAction.RETRY_PROVISIONING, actor=actor)
    tenant.save()
    _kick("provision", str(tenant.pk))
    return tenant
