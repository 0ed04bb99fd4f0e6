"""Tenant lifecycle, tiers, members. Views, the API, admin actions, commands and tasks all
call these functions; nothing important happens in model save() or signals."""

import contextlib
import hashlib
import json
import logging
import re
import secrets
from pathlib import Path

from django.conf import settings
from django.contrib.auth.password_validation import validate_password
from django.core import serializers as django_serializers
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.core.validators import validate_email
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone
from django_tenants.utils import schema_context, schema_exists

from broker.audit import audit_record
from broker.sync import contract, dynamo
from core import aws
from core.context import current_request_id
from core.errors import ApplicationError

from .models import (
    QUOTA_FIELDS,
    Domain,
    Invitation,
    Membership,
    Tenant,
    TenantEvent,
    TenantRole,
    TenantStatus,
    Tier,
    User,
)
from .schemas import create_tenant_schema
from .shuffle_shard import shard_for

logger = logging.getLogger(__name__)

SLUG_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,48}[a-z0-9])?$")
RESERVED_SLUGS = frozenset(
    """www admin api app apps auth login logout public static media assets mail smtp imap
    status docs help support operator operators console portal dashboard internal system root
    localhost healthz metrics billing signup register account accounts tenant tenants""".split()
)

S = TenantStatus
TRANSITIONS = {
    S.PROVISIONING: {S.ACTIVE, S.FAILED},
    S.FAILED: {S.PROVISIONING, S.OFFBOARDING},
    S.ACTIVE: {S.SUSPENDED, S.OFFBOARDING},
    S.SUSPENDED: {S.ACTIVE, S.OFFBOARDING},
    S.OFFBOARDING: {S.DELETED},
    S.DELETED: set(),
}


# --- helpers -----------------------------------------------------------------------------


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
        elif value is not None and (type(value) is not int or value < 1):
            errors[name] = ["Must be a positive integer (or null to remove the override)."]
    if errors:
        raise ApplicationError("Invalid quota overrides.", code="invalid", fields=errors)
    return overrides


def _kick(task, *args):
    transaction.on_commit(lambda: task.delay(*args))


def tenant_host(tenant: Tenant) -> str:
    port = f":{settings.PORTAL_PORT}" if settings.PORTAL_PORT else ""
    return f"{tenant.slug}.{settings.PORTAL_BASE_DOMAIN}{port}"


def tenant_url(tenant: Tenant, path: str = "/") -> str:
    return f"{settings.PORTAL_URL_SCHEME}://{tenant_host(tenant)}{path}"


def public_url(path: str = "/") -> str:
    port = f":{settings.PORTAL_PORT}" if settings.PORTAL_PORT else ""
    return f"{settings.PORTAL_URL_SCHEME}://{settings.PORTAL_BASE_DOMAIN}{port}{path}"


# --- tiers -------------------------------------------------------------------------------


def tier_get(name: str) -> Tier:
    try:
        return Tier.objects.get(name=name)
    except Tier.DoesNotExist:
        known = ", ".join(Tier.objects.values_list("name", flat=True))
        raise ApplicationError(
            f"Unknown tier {name!r}.", fields={"tier": [f"Unknown tier. Known tiers: {known}."]}
        )


@transaction.atomic
def tier_update(*, tier: Tier, quotas: dict, actor=None) -> Tier:
    """Changes a tier's quotas and re-syncs every tenant on it whose quotas changed."""
    validate_quota_overrides(quotas)
    if any(v is None for v in quotas.values()):
        raise ApplicationError(
            "A tier quota cannot be removed.",
            fields={k: ["A tier quota cannot be null."] for k, v in quotas.items() if v is None},
        )
    tier = Tier.objects.select_for_update().get(pk=tier.pk)
    before = tier.quotas()
    for name, value in quotas.items():
        setattr(tier, name, value)
    tier.full_clean()
    tier.save()
    if tier.quotas() != before:
        live = Tenant.objects.filter(tier=tier, status__in=[S.ACTIVE, S.SUSPENDED])
        ids = list(live.values_list("pk", flat=True))
        live.update(version=F("version") + 1, updated_at=timezone.now())
        from .tasks import tenant_sync_item_task

        for tenant_id in ids:
            _kick(tenant_sync_item_task, str(tenant_id))
    logger.info("tier %s updated by %s: %s", tier.name, _actor(actor), quotas)
    return tier


# --- onboarding --------------------------------------------------------------------------


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
        errors["slug"] = ["A tenant with this slug already exists."]
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
    tenant.save()
    Domain.objects.create(
        tenant=tenant, domain=f"{slug}.{settings.PORTAL_BASE_DOMAIN}", is_primary=True
    )
    TenantEvent.objects.create(
        tenant=tenant,
        action="onboard",
        to_status=S.PROVISIONING,
        actor=_actor(actor),
        detail={"tier": tier_obj.name},
        request_id=current_request_id() or "",
    )
    from .tasks import tenant_provision_task

    _kick(tenant_provision_task, str(tenant.pk))
    return tenant


def _provision_queues(tenant: Tenant) -> tuple[list[str], str]:
    if tenant.tier.deployment_model == "silo":
        dlq_url = aws.queue_url(aws.central_dlq_name())
        url = aws.queue_create(
            name=aws.silo_queue_name(tenant.pk),
            dead_letter_url=dlq_url,
            max_receive_count=tenant.effective_quotas()["max_delivery_attempts"],
        )
        return [url], url
    names = aws.shared_delivery_queue_names()
    shard = shard_for(tenant.pk, n=len(names), k=min(settings.SHUFFLE_SHARD_SIZE, len(names)))
    return [aws.queue_url(names[i]) for i in shard], ""


@contextlib.contextmanager
def _exclusive(name: str, key):
    """A PostgreSQL advisory lock: yields False when someone else holds it."""
    lock_id = int.from_bytes(
        hashlib.sha256(f"{name}:{key}".encode()).digest()[:8], "big", signed=True
    )
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [lock_id])
        acquired = cursor.fetchone()[0]
    try:
        yield acquired
    finally:
        if acquired:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [lock_id])


def tenant_provision(*, tenant_id) -> Tenant | None:
    """Runs every provisioning step; each one is safe to run again after a failure.

    A duplicate run (a redelivered task, a second worker) finds the lock taken and leaves."""
    with _exclusive("provision", tenant_id) as mine:
        if not mine:
            return None
        return _provision(tenant_id)


def _provision(tenant_id) -> Tenant | None:
    tenant = Tenant.objects.select_related("tier").filter(pk=tenant_id).first()
    if tenant is None or tenant.status != S.PROVISIONING:
        return tenant
    try:
        create_tenant_schema(tenant)
        queues, silo_url = _provision_queues(tenant)
        with transaction.atomic():
            tenant = _locked(tenant_id)
            if tenant.status != S.PROVISIONING:
                return tenant
            tenant.delivery_queues = queues
            tenant.silo_queue_url = silo_url
            tenant.provisioning_error = ""
            _invite_first_admin(tenant)
            _transition(tenant, S.ACTIVE, action="provisioned")
            tenant.version += 1
            tenant.save()
            # Written inside the transaction: if DynamoDB refuses, the tenant stays
            # provisioning and is marked failed below, so nothing claims to be live.
            dynamo.put_versioned(contract.tenant_item(tenant))
            tenant.synced_version = tenant.version
            tenant.save(update_fields=["synced_version"])
    except Exception as exc:
        logger.exception("provisioning of tenant %s failed", tenant_id)
        with transaction.atomic():
            tenant = _locked(tenant_id)
            if tenant.status == S.PROVISIONING:
                _transition(
                    tenant, S.FAILED, action="provisioning_failed", detail={"error": str(exc)}
                )
                tenant.provisioning_error = f"{type(exc).__name__}: {exc}"[:2000]
                tenant.save()
    return tenant


@transaction.atomic
def tenant_retry_provisioning(*, tenant: Tenant, actor=None) -> Tenant:
    tenant = _locked(tenant.pk)
    _transition(tenant, S.PROVISIONING, action="retry_provisioning", actor=actor)
    tenant.save()
    from .tasks import tenant_provision_task

    _kick(tenant_provision_task, str(tenant.pk))
    return tenant


# --- suspend / resume --------------------------------------------------------------------


def _status_change(tenant: Tenant, to: str, *, action: str, actor) -> Tenant:
    with transaction.atomic():
        tenant = _locked(tenant.pk)
        _transition(tenant, to, action=action, actor=actor)
        tenant.version += 1
        tenant.save()
        from .tasks import tenant_sync_item_task

        _kick(tenant_sync_item_task, str(tenant.pk))
    return tenant


def tenant_suspend(*, tenant: Tenant, actor=None) -> Tenant:
    return _status_change(tenant, S.SUSPENDED, action="suspend", actor=actor)


def tenant_resume(*, tenant: Tenant, actor=None) -> Tenant:
    return _status_change(tenant, S.ACTIVE, action="resume", actor=actor)


@transaction.atomic
def tenant_update_quotas(*, tenant: Tenant, overrides: dict, actor=None) -> Tenant:
    """Merges quota overrides; a null value removes that override."""
    try:
        validate_quota_overrides(overrides)
    except ApplicationError as exc:
        raise ApplicationError(exc.message, fields={"quota_overrides": exc.fields})
    tenant = _locked(tenant.pk)
    merged = dict(tenant.quota_overrides)
    for name, value in overrides.items():
        if value is None:
            merged.pop(name, None)
        else:
            merged[name] = value
    if merged != tenant.quota_overrides:
        TenantEvent.objects.create(
            tenant=tenant,
            action="update_quotas",
            from_status=tenant.status,
            to_status=tenant.status,
            actor=_actor(actor),
            detail={"before": tenant.quota_overrides, "after": merged},
            request_id=current_request_id() or "",
        )
        tenant.quota_overrides = merged
        tenant.version += 1
        tenant.save()
        if tenant.status in (S.ACTIVE, S.SUSPENDED):
            from .tasks import tenant_sync_item_task

            _kick(tenant_sync_item_task, str(tenant.pk))
    return tenant


def tenant_sync_item(*, tenant_id) -> bool:
    """Writes the tenant's TENANT item from its current state (a late run writes the newest)."""
    tenant = Tenant.objects.select_related("tier").filter(pk=tenant_id).first()
    if tenant is None or tenant.status in (S.PROVISIONING, S.DELETED, S.OFFBOARDING):
        return False
    if tenant.tier_id is None:
        return False
    dynamo.put_versioned(contract.tenant_item(tenant))
    Tenant.objects.filter(pk=tenant.pk, synced_version__lt=tenant.version).update(
        synced_version=tenant.version
    )
    return True


# --- offboarding -------------------------------------------------------------------------


@transaction.atomic
def tenant_offboard(*, tenant: Tenant, actor=None) -> Tenant:
    """Moves the tenant to offboarding and queues the teardown. Re-running resumes it."""
    tenant = _locked(tenant.pk)
    if tenant.status != S.OFFBOARDING:
        _transition(tenant, S.OFFBOARDING, action="offboard", actor=actor)
        tenant.version += 1
        tenant.save()
    from .tasks import tenant_offboard_task

    _kick(tenant_offboard_task, str(tenant.pk))
    return tenant


def _export_tenant_data(tenant: Tenant) -> str:
    from django.apps import apps

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
    objects = []
    if schema_exists(tenant.schema_name):
        with schema_context(tenant.schema_name):
            for model in apps.get_app_config("broker").get_models():
                objects.extend(
                    json.loads(django_serializers.serialize("json", model.objects.all()))
                )
    data["objects"] = objects
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str))
    tmp.replace(path)
    return str(path)


def _tombstone_tenant_items(tenant: Tenant) -> int:
    """Tombstones every live item of the tenant (its partition and its APIKEY items), the
    TENANT item last, holding the tenant's writer lock so no relay writes meanwhile."""
    from broker.sync import locks
    from broker.sync.models import OutboxEntry

    with locks.exclusive(tenant.pk):
        # Nothing of this tenant is to be mirrored any more (the relay skips it from now on).
        OutboxEntry.objects.filter(tenant=tenant).delete()
        return _tombstone_items(tenant)


def _tombstone_items(tenant: Tenant) -> int:
    count = 0
    items = dynamo.query_partition(contract.tenant_pk(tenant.pk))
    key_items = dynamo.query_index("apikeys-by-tenant", "apikey_tenant_id", str(tenant.pk))
    items.extend(dynamo.batch_get(key_items))
    for item in sorted(items, key=lambda i: i["SK"] == "TENANT"):
        if item.get("deleted"):
            continue
        version = max(
            int(item.get("version", 0)) + 1, tenant.version if item["SK"] == "TENANT" else 0
        )
        if dynamo.put_versioned(contract.tombstone(pk=item["PK"], sk=item["SK"], version=version)):
            count += 1
    return count


def tenant_offboard_run(*, tenant_id) -> Tenant | None:
    """Tears the tenant down step by step; every step is idempotent, so a retry resumes."""
    with _exclusive("offboard", tenant_id) as mine:
        if not mine:
            return None
        return _offboard(tenant_id)


def _offboard(tenant_id) -> Tenant | None:
    tenant = Tenant.objects.select_related("tier").filter(pk=tenant_id).first()
    if tenant is None or tenant.status != S.OFFBOARDING:
        return tenant
    report = dict(tenant.offboarding_report or {})
    try:
        deleted_queues = report.get("deleted_queues", [])
        if tenant.silo_queue_url and tenant.silo_queue_url not in deleted_queues:
            aws.queue_delete(url=tenant.silo_queue_url)
            deleted_queues.append(tenant.silo_queue_url)
        report["deleted_queues"] = deleted_queues
        report["tombstoned_items"] = report.get("tombstoned_items", 0) + _tombstone_tenant_items(
            tenant
        )
        report["export_path"] = _export_tenant_data(tenant)
        if schema_exists(tenant.schema_name):
            with connection.cursor() as cursor:
                cursor.execute(f'DROP SCHEMA "{tenant.schema_name}" CASCADE')  # noqa: S608
        report["dropped_schema"] = tenant.schema_name
        with transaction.atomic():
            tenant = _locked(tenant_id)
            report["removed_members"] = Membership.objects.filter(tenant=tenant).delete()[0]
            report["revoked_invitations"] = Invitation.objects.filter(
                tenant=tenant, accepted_at__isnull=True, revoked_at__isnull=True
            ).update(revoked_at=timezone.now())
            report["removed_domains"] = sorted(tenant.domains.values_list("domain", flat=True))
            tenant.domains.all().delete()
            report.pop("error", None)
            report["completed_at"] = timezone.now().isoformat()
            _transition(tenant, S.DELETED, action="offboarded", detail=report)
            tenant.offboarding_report = report
            tenant.save()
    except Exception as exc:
        logger.exception("offboarding of tenant %s failed", tenant_id)
        report["error"] = f"{type(exc).__name__}: {exc}"[:2000]
        Tenant.objects.filter(pk=tenant_id).update(offboarding_report=report)
    return tenant


# --- members -----------------------------------------------------------------------------


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _audit_in_tenant(tenant: Tenant, **kwargs) -> None:
    if schema_exists(tenant.schema_name):
        with schema_context(tenant.schema_name):
            audit_record(**kwargs)


def _invite_first_admin(tenant: Tenant) -> None:
    already = Invitation.objects.filter(tenant=tenant, email=tenant.admin_email).exists()
    member = Membership.objects.filter(tenant=tenant, user__email=tenant.admin_email).exists()
    if tenant.admin_email and not already and not member:
        _create_invitation(tenant=tenant, email=tenant.admin_email, role=TenantRole.ADMIN)


def _create_invitation(*, tenant: Tenant, email: str, role: str, invited_by=None):
    token = secrets.token_urlsafe(32)
    invitation = Invitation.objects.create(
        tenant=tenant,
        email=email,
        role=role,
        token_hash=_token_hash(token),
        invited_by=_actor(invited_by),
        expires_at=timezone.now() + settings.INVITATION_TTL,
    )
    link = tenant_url(tenant, f"/invitations/{token}/")
    subject = f"You are invited to {tenant.name} on the event broker portal"
    body = (
        f"You have been invited to join {tenant.name} as {invitation.get_role_display()}.\n\n"
        f"Accept the invitation and set your password here (valid until "
        f"{invitation.expires_at:%Y-%m-%d %H:%M} UTC):\n\n{link}\n"
    )
    transaction.on_commit(
        lambda: send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, [email], fail_silently=False)
    )
    return invitation, token


@transaction.atomic
def member_invite(*, tenant: Tenant, email: str, role: str, invited_by=None):
    """Invites `email` to the tenant; a new invitation replaces a pending one."""
    errors = {}
    email = (email or "").strip().lower()
    try:
        validate_email(email)
    except ValidationError:
        errors["email"] = ["Enter a valid email address."]
    if role not in TenantRole.values:
        errors["role"] = [f"Unknown role. Roles: {', '.join(TenantRole.values)}."]
    if errors:
        raise ApplicationError("Invalid invitation.", fields=errors)
    if Membership.objects.filter(tenant=tenant, user__email=email).exists():
        raise ApplicationError(
            "This person is already a member.",
            code="already_member",
            fields={"email": ["Already a member of this tenant."]},
        )
    Invitation.objects.filter(
        tenant=tenant, email=email, accepted_at__isnull=True, revoked_at__isnull=True
    ).update(revoked_at=timezone.now())
    invitation, token = _create_invitation(
        tenant=tenant, email=email, role=role, invited_by=invited_by
    )
    _audit_in_tenant(
        tenant,
        actor=invited_by,
        action="member.invite",
        object_type="invitation",
        object_id=invitation.pk,
        after={"email": email, "role": role},
    )
    return invitation


def invitation_get(*, tenant: Tenant, token: str) -> Invitation:
    invitation = Invitation.objects.filter(tenant=tenant, token_hash=_token_hash(token)).first()
    if invitation is None or not invitation.is_pending:
        raise ApplicationError(
            "This invitation is invalid, used or expired.",
            code="invalid_invitation",
            status_code=404,
        )
    return invitation


@transaction.atomic
def invitation_accept(
    *, tenant: Tenant, token: str, password: str, full_name: str = ""
) -> Membership:
    """Accepts an invitation. A new user sets a password; an existing user proves theirs."""
    invitation = invitation_get(tenant=tenant, token=token)
    invitation = Invitation.objects.select_for_update().get(pk=invitation.pk)
    if not invitation.is_pending:
        raise ApplicationError(
            "This invitation is invalid, used or expired.", code="invalid_invitation"
        )
    user = User.objects.filter(email=invitation.email).first()
    if user is None:
        try:
            validate_password(password, User(email=invitation.email, full_name=full_name))
        except ValidationError as exc:
            raise ApplicationError("Choose a stronger password.", fields={"password": exc.messages})
        user = User.objects.create_user(invitation.email, password, full_name=full_name.strip())
    elif not user.check_password(password):
        raise ApplicationError(
            "An account with this email exists: enter its password.",
            fields={"password": ["Wrong password for the existing account."]},
        )
    membership, _ = Membership.objects.get_or_create(
        user=user, tenant=tenant, defaults={"role": invitation.role}
    )
    invitation.accepted_at = timezone.now()
    invitation.save(update_fields=["accepted_at"])
    _audit_in_tenant(
        tenant,
        actor=user,
        action="member.join",
        object_type="membership",
        object_id=membership.pk,
        after={"email": user.email, "role": membership.role},
    )
    return membership


def _guard_last_admin(membership: Membership, *, new_role: str | None) -> None:
    if membership.role != TenantRole.ADMIN or new_role == TenantRole.ADMIN:
        return
    admins = Membership.objects.select_for_update().filter(
        tenant_id=membership.tenant_id, role=TenantRole.ADMIN
    )
    if len(admins.values_list("pk", flat=True)) <= 1:
        raise ApplicationError(
            "A tenant must keep at least one admin.",
            code="last_admin",
        )


@transaction.atomic
def membership_change_role(*, membership: Membership, role: str, actor=None) -> Membership:
    if role not in TenantRole.values:
        raise ApplicationError(
            "Unknown role.",
            fields={"role": [f"Unknown role. Roles: {', '.join(TenantRole.values)}."]},
        )
    membership = (
        Membership.objects.select_for_update()
        .select_related("tenant", "user")
        .get(pk=membership.pk)
    )
    _guard_last_admin(membership, new_role=role)
    before = membership.role
    membership.role = role
    membership.save(update_fields=["role"])
    _audit_in_tenant(
        membership.tenant,
        actor=actor,
        action="member.change_role",
        object_type="membership",
        object_id=membership.pk,
        before={"role": before},
        after={"role": role},
    )
    return membership


@transaction.atomic
def membership_remove(*, membership: Membership, actor=None) -> None:
    membership = (
        Membership.objects.select_for_update()
        .select_related("tenant", "user")
        .get(pk=membership.pk)
    )
    _guard_last_admin(membership, new_role=None)
    _audit_in_tenant(
        membership.tenant,
        actor=actor,
        action="member.remove",
        object_type="membership",
        object_id=membership.pk,
        before={"email": membership.user.email, "role": membership.role},
    )
    membership.delete()
