"""Offboarding: export, tombstone every item, drop the schema, remove members and domains."""

import json
import logging
from pathlib import Path

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from django_tenants.utils import schema_exists

from core import aws
from core.audit_actions import AuditAction
from core.context import current_request_id
from core.errors import ApplicationError

from .. import hooks
from ..models import Invitation, Membership, Tenant, TenantEvent
from ._common import S, StepFailed, _actor, _exclusive, _kick, _locked, _transition

logger = logging.getLogger(__name__)


@transaction.atomic
def tenant_offboard(*, tenant: Tenant, actor=None) -> Tenant:
    """Moves the tenant to offboarding and queues the teardown. Re-running resumes it."""
    tenant = _locked(tenant.pk)
    if tenant.status != S.OFFBOARDING:
        _transition(tenant, S.OFFBOARDING, action=AuditAction.OFFBOARD, actor=actor)
        tenant.version += 1
        tenant.save()
    _kick("offboard", str(tenant.pk))
    return tenant


def _export_tenant_data(tenant: Tenant) -> str:
    export_dir = Path(settings.OFFBOARD_EXPORT_DIR)
    export_dir.mkdir(parents=True, exist_ok=True)
    path = export_dir / f"{tenant.slug}-{tenant.pk}.json"
    members = list(
        Membership.objects.filter(tenant=tenant).values("user__email", "role", "created_at")
    )
    data = {"tenant": {"id": str(tenant.pk), "slug": tenant.slug, "name": tenant.name}}
    data["members"] = [
        {"email": m["user__email"], "role": m["role"], "created_at": m["created_at"].isoformat()}
        for m in members
    ]
    data["objects"] = hooks.tenant_export_objects(tenant)  # the tenant's own tables: broker's
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str))
    tmp.replace(path)
    return str(path)


def tenant_offboard_run(*, tenant_id, final: bool = True) -> Tenant | None:
    """Tears the tenant down step by step; every step is idempotent, so a retry resumes.

    A failure is recorded in the report (`error`); before the `final` attempt StepFailed is
    raised and the task retries with backoff; after it the tenant waits in `offboarding` for
    an operator to resume it."""
    with _exclusive("offboard", tenant_id) as mine:
        if not mine:
            return None
        return _offboard(tenant_id, final=final)


def _offboard(tenant_id, *, final: bool) -> Tenant | None:
    tenant = Tenant.objects.select_related("tier").filter(pk=tenant_id).first()
    if tenant is None or tenant.status != S.OFFBOARDING:
        return tenant
    report = dict(tenant.offboarding_report or {})

    def step_done():
        # Saved after each step: the operator's page shows how far the teardown is.
        Tenant.objects.filter(pk=tenant_id).update(offboarding_report=report)

    try:
        deleted_queues = report.get("deleted_queues", [])
        if tenant.silo_queue_url and tenant.silo_queue_url not in deleted_queues:
            aws.queue_delete(url=tenant.silo_queue_url)
            deleted_queues.append(tenant.silo_queue_url)
        if tenant.silo_queue_url:  # its own FIFO queue too (the pool's are shared)
            for ordered in tenant.ordered_queues:
                if ordered not in deleted_queues:
                    aws.queue_delete(url=ordered)
                    deleted_queues.append(ordered)
        report["deleted_queues"] = deleted_queues
        step_done()
        report["tombstoned_items"] = report.get("tombstoned_items", 0) + hooks.tenant_tear_down(
            tenant
        )
        step_done()
        # Dead letters hold event payloads: gone before the export, so it carries none.
        report.update(hooks.tenant_purge_dead_letters(tenant))
        step_done()
        report["export_path"] = _export_tenant_data(tenant)
        step_done()
        if schema_exists(tenant.schema_name):
            with connection.cursor() as cursor:
                cursor.execute(f'DROP SCHEMA "{tenant.schema_name}" CASCADE')  # noqa: S608
        report["dropped_schema"] = tenant.schema_name
        step_done()
        with transaction.atomic():
            tenant = _locked(tenant_id)
            report["removed_members"] = Membership.objects.filter(tenant=tenant).delete()[0]
            report["revoked_invitations"] = Invitation.objects.filter(
                tenant=tenant, accepted_at__isnull=True, revoked_at__isnull=True
            ).update(revoked_at=timezone.now())
            report["removed_domains"] = sorted(tenant.domains.values_list("domain", flat=True))
            tenant.domains.all().delete()
            report.pop("error", None)
            report.pop("stopped", None)
            report["completed_at"] = timezone.now().isoformat()
            _transition(tenant, S.DELETED, action=AuditAction.OFFBOARDED, detail=report)
            tenant.offboarding_report = report
            tenant.save()
    except Exception as exc:
        logger.exception("offboarding of tenant %s failed", tenant_id)
        report["error"] = f"{type(exc).__name__}: {exc}"[:2000]
        report["failed_attempts"] = report.get("failed_attempts", 0) + 1
        if final:
            report["stopped"] = True  # the resume job leaves it to an operator
        Tenant.objects.filter(pk=tenant_id).update(
            offboarding_report=report, updated_at=timezone.now()
        )
        if not final:
            raise StepFailed(report["error"]) from exc
    return tenant


@transaction.atomic
def tenant_resume_offboarding(*, tenant: Tenant, actor=None) -> Tenant:
    """An operator resumes an offboarding that stopped (failed after its retries, or whose
    worker died): the teardown runs again from where it stopped (every step is idempotent)."""
    tenant = _locked(tenant.pk)
    if tenant.status != S.OFFBOARDING:
        raise ApplicationError(
            f"Cannot resume offboarding of a tenant whose status is {tenant.status}.",
            code="invalid_transition",
        )
    report = dict(tenant.offboarding_report or {})
    report.pop("stopped", None)
    tenant.offboarding_report = report
    tenant.save(update_fields=["offboarding_report", "updated_at"])
    TenantEvent.objects.create(
        tenant=tenant,
        action=AuditAction.RESUME_OFFBOARDING,
        from_status=tenant.status,
        to_status=tenant.status,
        actor=_actor(actor),
        detail={"error": (tenant.offboarding_report or {}).get("error", "")},
        request_id=current_request_id() or "",
    )
    _kick("offboard", str(tenant.pk))
    return tenant
