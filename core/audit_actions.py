"""Every action an audit row records, by name, for the three audit logs: the tenant's
`AuditEvent` (configuration and member changes), `TenantEvent` (a tenant's lifecycle) and
`PlatformEvent` (tier quotas, users).

The values are the strings those rows have always stored, so rows written before and after
read alike and the audit API's `action` filter keeps matching: `<object>.<verb>` where a row
names its object, a bare verb in `TenantEvent`, whose object is always the tenant (its
`action` is also the verb of the "Cannot … a tenant whose status is …" error).
"""

from enum import StrEnum


class AuditAction(StrEnum):
    # Configuration (broker/services): each create, update and delete, and the extra verbs.
    PRODUCER_CREATE = "producer.create"
    PRODUCER_UPDATE = "producer.update"
    PRODUCER_DELETE = "producer.delete"
    PRODUCER_ROTATE_KEY = "producer.rotate_key"
    PRODUCER_REVOKE_KEY = "producer.revoke_key"
    # API keys have no audit row of their own but for their expiry (the producer's action is
    # the row); these name their outbox changes.
    APIKEY_CREATE = "apikey.create"
    APIKEY_EXPIRE = "apikey.expire"
    APIKEY_DELETE = "apikey.delete"
    CONSUMER_CREATE = "consumer.create"
    CONSUMER_UPDATE = "consumer.update"
    CONSUMER_DELETE = "consumer.delete"
    CONSUMER_AUTO_DISABLE = "consumer.auto_disable"
    CONSUMER_ROTATE_SIGNING_SECRET = "consumer.rotate_signing_secret"
    CONSUMER_TEST_EVENT = "consumer.test_event"
    SUBSCRIPTION_CREATE = "subscription.create"
    SUBSCRIPTION_UPDATE = "subscription.update"
    SUBSCRIPTION_DELETE = "subscription.delete"
    SUBSCRIPTION_TEST_EVENT = "subscription.test_event"
    # A held key of an ordered subscription released (broker/deliveries/held_keys.py).
    SUBSCRIPTION_HELD_KEY_RETRIED = "subscription.held_key_retried"
    SUBSCRIPTION_HELD_KEY_SKIPPED = "subscription.held_key_skipped"
    EVENT_TYPE_CREATE = "event_type.create"
    EVENT_TYPE_UPDATE = "event_type.update"
    EVENT_TYPE_DELETE = "event_type.delete"
    # Deliveries and dead letters (broker/deliveries, broker/deadletters).
    DELIVERY_RESEND = "delivery.resend"
    DEAD_LETTERS_REPLAY = "dead_letters.replay"
    DEAD_LETTERS_DISCARD = "dead_letters.discard"
    REPLAY_JOB_CANCEL = "replay_job.cancel"
    DLQ_ALERTS_UPDATE = "dlq_alerts.update"
    # Members, in the tenant's own log (tenants/services/members.py, through a hook).
    MEMBER_INVITE = "member.invite"
    MEMBER_JOIN = "member.join"
    MEMBER_CHANGE_ROLE = "member.change_role"
    MEMBER_REMOVE = "member.remove"
    # The platform's log (PlatformEvent).
    TIER_UPDATE = "tier.update"
    USER_CREATE = "user.create"
    USER_UPDATE = "user.update"
    # A tenant's lifecycle (TenantEvent).
    ONBOARD = "onboard"
    PROVISIONED = "provisioned"
    PROVISIONING_FAILED = "provisioning_failed"
    RETRY_PROVISIONING = "retry_provisioning"
    SUSPEND = "suspend"
    RESUME = "resume"
    UPDATE_QUOTAS = "update_quotas"
    OFFBOARD = "offboard"
    OFFBOARDED = "offboarded"
    RESUME_OFFBOARDING = "resume_offboarding"
