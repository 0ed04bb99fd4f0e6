"""Tenant lifecycle, tiers, members. Views, the API, admin actions, commands and tasks all
call these functions; nothing important happens in model save() or signals.

One module per concern; this package re-exports the public names (`services.tenant_onboard`).
"""

from ._common import (
    TRANSITIONS,
    StepFailed,
    check_transition,
    platform_audit,
    public_url,
    tenant_host,
    tenant_url,
    validate_quota_overrides,
)
from .lifecycle import (
    tenant_resume,
    tenant_suspend,
    tenant_update_quotas,
    tenants_stalled,
)
from .members import (
    invitation_accept,
    invitation_get,
    member_invite,
    membership_change_error,
    membership_change_role,
    membership_remove,
    user_end_tokens,
)
from .offboarding import tenant_offboard, tenant_offboard_run, tenant_resume_offboarding
from .onboarding import (
    RESERVED_SLUGS,
    SLUG_RE,
    onboarding_errors,
    tenant_onboard,
    tenant_provision,
    tenant_retry_provisioning,
)
from .tiers import tier_get, tier_update
from .users import EDITABLE as USER_EDITABLE
from .users import last_operator_error, user_create, user_update

__all__ = [
    "USER_EDITABLE",
    "last_operator_error",
    "membership_change_error",
    "platform_audit",
    "user_create",
    "user_update",
    "StepFailed",
    "tenants_stalled",
    "tenant_resume_offboarding",
    "RESERVED_SLUGS",
    "SLUG_RE",
    "TRANSITIONS",
    "check_transition",
    "invitation_accept",
    "invitation_get",
    "member_invite",
    "membership_change_role",
    "membership_remove",
    "onboarding_errors",
    "public_url",
    "tenant_host",
    "tenant_offboard",
    "tenant_offboard_run",
    "tenant_onboard",
    "tenant_provision",
    "tenant_resume",
    "tenant_retry_provisioning",
    "tenant_suspend",
    "tenant_update_quotas",
    "tenant_url",
    "tier_get",
    "tier_update",
    "user_end_tokens",
    "validate_quota_overrides",
]
