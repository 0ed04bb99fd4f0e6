"""Test helpers (formerly in tests/broker/conftest.py): tests import them from here, and the fixtures of
tests/broker/conftest.py use them."""


def outbox_rows(tenant=None, **filters):
    from broker.sync.models import OutboxEntry

    rows = OutboxEntry.objects.all()
    if tenant is not None:
        rows = rows.filter(tenant=tenant)
    return list(rows.filter(**filters).order_by("id"))


def audit_rows(**filters):
    from broker.models import AuditEvent

    return list(AuditEvent.objects.filter(**filters).order_by("id"))
