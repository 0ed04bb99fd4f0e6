"""What every audit log shares (the tenant's AuditEvent in broker, the platform's
PlatformEvent in tenants): secrets masked, a diff of the changed fields, the actor."""

SECRET_MARKERS = ("secret", "password", "token", "api_key", "credential")
MASK = "********"


def mask_secrets(data: dict) -> dict:
    return {
        k: (MASK if any(m in k.lower() for m in SECRET_MARKERS) and v else v)
        for k, v in data.items()
    }


def diff(before: dict | None, after: dict | None) -> dict[str, list]:
    """{field: [before, after]} for every field that changed, secrets masked."""
    before = mask_secrets(before or {})
    after = mask_secrets(after or {})
    return {
        k: [before.get(k), after.get(k)]
        for k in sorted(set(before) | set(after))
        if before.get(k) != after.get(k)
    }


def actor_fields(actor) -> dict:
    """The actor as an audit row stores it: the user (when signed in) and their e-mail."""
    signed_in = actor is not None and getattr(actor, "is_authenticated", False)
    return {"actor": actor if signed_in else None, "actor_email": getattr(actor, "email", "") or ""}
