import uuid

from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.contrib.auth.models import PermissionsMixin
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone
from django_tenants.models import DomainMixin, TenantMixin

# Every quota a tier defines and a tenant may override. The order is the display order.
QUOTA_FIELDS = (
    "ingest_rate_per_second",
    "ingest_burst",
    "daily_event_quota",
    "max_producers",
    "max_consumers",
    "max_subscriptions",
    "delivery_concurrency",
    "max_delivery_attempts",
    "dlq_retention_days",
    "api_requests_per_minute",
    "max_event_size_bytes",
    "replay_rate_per_second",
    "dlq_alert_backlog",
    "dlq_alert_age_minutes",
    "max_consumer_rate_per_second",
)
# The range of every quota, for tiers and overrides alike (docs/tenants.md lists them). The
# bounds keep each value meaningful for what enforces it (SQS sizes and receive counts,
# PostgreSQL integers, DynamoDB numbers) and stop one typo from breaking a tenant's sync.
QUOTA_RANGES = {
    "ingest_rate_per_second": (1, 100_000),
    "ingest_burst": (1, 1_000_000),
    "daily_event_quota": (1, 2_000_000_000),
    "max_producers": (1, 10_000),
    "max_consumers": (1, 10_000),
    "max_subscriptions": (1, 100_000),
    "delivery_concurrency": (1, 1_000),
    "max_delivery_attempts": (1, 100),
    "dlq_retention_days": (1, 365),
    "api_requests_per_minute": (1, 100_000),
    "max_event_size_bytes": (1_024, 262_144),  # SQS carries at most 256 KiB
    "replay_rate_per_second": (1, 500),
    "dlq_alert_backlog": (1, 1_000_000),
    "dlq_alert_age_minutes": (1, 43_200),
    "max_consumer_rate_per_second": (1, 100_000),
}
assert set(QUOTA_RANGES) == set(QUOTA_FIELDS)
# Quotas with an upper bound (a tier or an override above it is refused).
QUOTA_MAX = {name: high for name, (_, high) in QUOTA_RANGES.items()}


class DeploymentModel(models.TextChoices):
    POOL = "pool", "Pool (shared delivery queues)"
    SILO = "silo", "Silo (dedicated delivery queue)"


def _quota(default=None, maximum=None):
    validators = [MinValueValidator(1)]
    if maximum is not None:
        validators.append(MaxValueValidator(maximum))
    extra = {} if default is None else {"default": default}
    return models.PositiveIntegerField(validators=validators, **extra)


class Tier(models.Model):
    name = models.SlugField(max_length=32, unique=True)
    description = models.CharField(max_length=200, blank=True)
    deployment_model = models.CharField(max_length=8, choices=DeploymentModel.choices)
    # Onboarding by deployment type alone (the seed API) picks the default tier of that model.
    is_default_for_model = models.BooleanField(default=False)
    ingest_rate_per_second = _quota()
    ingest_burst = _quota()
    daily_event_quota = _quota()
    max_producers = _quota()
    max_consumers = _quota()
    max_subscriptions = _quota()
    delivery_concurrency = _quota()
    max_delivery_attempts = _quota()
    dlq_retention_days = _quota()
    api_requests_per_minute = _quota()
    max_event_size_bytes = _quota()
    # Dead letters replayed per second by one replay job (1..500).
    replay_rate_per_second = _quota(default=50, maximum=QUOTA_MAX["replay_rate_per_second"])
    # DLQ alert defaults: pending letters, and age of the oldest one (tenants may change them).
    dlq_alert_backlog = _quota(default=100)
    dlq_alert_age_minutes = _quota(default=60)
    # The highest `rate_limit_per_second` a consumer may have (deliveries per second).
    max_consumer_rate_per_second = _quota(default=100)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["deployment_model"],
                condition=models.Q(is_default_for_model=True),
                name="one_default_tier_per_model",
            )
        ]

    def __str__(self):
        return self.name

    def quotas(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in QUOTA_FIELDS}


class TenantStatus(models.TextChoices):
    PROVISIONING = "provisioning"
    ACTIVE = "active"
    SUSPENDED = "suspended"
    FAILED = "failed"
    OFFBOARDING = "offboarding"
    DELETED = "deleted"


class Tenant(TenantMixin):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=100)
    slug = models.SlugField(max_length=50, unique=True)
    # Null only for the public schema's row, which django-tenants needs and no one onboards.
    tier = models.ForeignKey(Tier, on_delete=models.PROTECT, null=True, related_name="tenants")
    status = models.CharField(
        max_length=16, choices=TenantStatus.choices, default=TenantStatus.PROVISIONING
    )
    quota_overrides = models.JSONField(default=dict, blank=True)
    admin_email = models.EmailField(blank=True)
    provisioning_error = models.TextField(blank=True)
    # Delivery queue URLs: one dedicated queue (silo) or the shuffle-shard (pool).
    delivery_queues = models.JSONField(default=list, blank=True)
    silo_queue_url = models.CharField(max_length=500, blank=True)
    # FIFO delivery queue URLs for ordered subscriptions: the shared `<prefix>-ordered-NN.fifo`
    # pool, or the silo's own `<prefix>-silo-<tenant_id>.fifo`. Empty until provisioned.
    ordered_queues = models.JSONField(default=list, blank=True)
    # Monotonic version of the TENANT item in DynamoDB; bumped on every change it reflects.
    version = models.PositiveBigIntegerField(default=0)
    synced_version = models.PositiveBigIntegerField(default=0)
    offboarding_report = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    # The schema is created by the provisioning task, not on save.
    auto_create_schema = False
    auto_drop_schema = False

    class Meta:
        ordering = ["created_at"]
        indexes = [models.Index(fields=["status"]), models.Index(fields=["tier", "status"])]

    def __str__(self):
        return self.slug

    @property
    def deployment_model(self) -> str | None:
        return self.tier.deployment_model if self.tier_id else None

    def effective_quotas(self) -> dict[str, int]:
        quotas = self.tier.quotas() if self.tier_id else {}
        quotas.update({k: v for k, v in self.quota_overrides.items() if k in QUOTA_FIELDS})
        return quotas


class Domain(DomainMixin):
    pass


class TenantEvent(models.Model):
    """Lifecycle history of a tenant: every transition, who made it and why."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="events")
    action = models.CharField(max_length=40)
    from_status = models.CharField(max_length=16, blank=True)
    to_status = models.CharField(max_length=16, blank=True)
    actor = models.ForeignKey("User", null=True, blank=True, on_delete=models.SET_NULL)
    detail = models.JSONField(default=dict, blank=True)
    request_id = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self):
        return f"{self.action} ({self.from_status or '-'} → {self.to_status or '-'})"


class PlatformEvent(models.Model):
    """Operator changes that belong to no tenant (a tier's quotas, a user's platform role or
    access): who, what, when, the changed fields (secrets masked), the request id. Tenant
    lifecycle changes are TenantEvents; configuration changes, the tenant's AuditEvents."""

    action = models.CharField(max_length=40)
    object_type = models.CharField(max_length=32)
    object_id = models.CharField(max_length=64)
    actor = models.ForeignKey("User", null=True, blank=True, on_delete=models.SET_NULL)
    actor_email = models.CharField(max_length=254, blank=True)
    diff = models.JSONField(default=dict, blank=True)
    request_id = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["object_type", "object_id"], name="platform_event_object")]

    def __str__(self):
        return f"{self.action} {self.object_type}:{self.object_id}"


class UserManager(BaseUserManager):
    use_in_migrations = True

    def create_user(self, email, password=None, **extra):
        if not email:
            raise ValueError("email is required")
        user = self.model(email=self.normalize_email(email).lower(), **extra)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_superuser(self, email, password=None, **extra):
        extra.update(is_staff=True, is_superuser=True, platform_role=PlatformRole.OPERATOR)
        return self.create_user(email, password, **extra)


class PlatformRole(models.TextChoices):
    NONE = "", "None (tenant member only)"
    OPERATOR = "operator", "Operator"
    SUPPORT = "support", "Support (read-only operator)"


class User(AbstractBaseUser, PermissionsMixin):
    email = models.EmailField(unique=True)
    full_name = models.CharField(max_length=150, blank=True)
    platform_role = models.CharField(
        max_length=16, choices=PlatformRole.choices, default=PlatformRole.NONE, blank=True
    )
    is_active = models.BooleanField(default=True)
    # Django admin access; kept in step with platform_role == operator by the services.
    is_staff = models.BooleanField(default=False)
    date_joined = models.DateTimeField(default=timezone.now)
    # Carried by every API token ("gen" claim); bumping it ends them all: password change,
    # sign-out, removal from a tenant, role change (tenants.services.user_end_tokens).
    token_generation = models.PositiveIntegerField(default=0)

    objects = UserManager()
    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS = []

    class Meta:
        ordering = ["email"]

    def __str__(self):
        return self.email

    def set_password(self, raw_password):
        # A new password ends the API tokens minted with the old one (saved with the user),
        # as Django's session auth hash ends its sessions.
        super().set_password(raw_password)
        if self.pk is not None:
            self.token_generation += 1


class TenantRole(models.TextChoices):
    ADMIN = "admin", "Tenant admin"
    DEVELOPER = "developer", "Developer"
    VIEWER = "viewer", "Viewer"


class Membership(models.Model):
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="memberships")
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=TenantRole.choices)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["user", "tenant"], name="one_membership_per_tenant")
        ]

    def __str__(self):
        return f"{self.user} @ {self.tenant} ({self.role})"


class Invitation(models.Model):
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="invitations")
    email = models.EmailField()
    role = models.CharField(max_length=16, choices=TenantRole.choices)
    # Only the SHA-256 of the token is stored; the token itself travels in the e-mail.
    token_hash = models.CharField(max_length=64, unique=True)
    invited_by = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "id"]
        # One open invitation per address and tenant, even under concurrent invites.
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "email"],
                condition=models.Q(accepted_at__isnull=True, revoked_at__isnull=True),
                name="one_open_invitation_per_email",
            )
        ]

    def __str__(self):
        return f"{self.email} → {self.tenant_id} ({self.role})"

    @property
    def is_pending(self) -> bool:
        return (
            self.accepted_at is None
            and self.revoked_at is None
            and self.expires_at > timezone.now()
        )
