"""Tenant API (tenant host): producers, consumers, subscriptions, event types, audit events.

Every object comes from the active tenant schema (`get_queryset` is the only way in), so an id
of another tenant is a 404 like an unknown one. Writes go through broker.services.

One module per resource; this package keeps the names the URL configuration registers.
"""

from .audit_events import AuditEventViewSet
from .consumers import ConsumerViewSet
from .event_types import EventTypeViewSet
from .producers import ProducerViewSet
from .subscriptions import SubscriptionViewSet

__all__ = [
    "AuditEventViewSet",
    "ConsumerViewSet",
    "EventTypeViewSet",
    "ProducerViewSet",
    "SubscriptionViewSet",
]
