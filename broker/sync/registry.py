"""The one registry of the broker objects mirrored to DynamoDB: object type → model, and the
field that names an object on the sync pages. The relay, the reconciler and the sync status
read it; the TENANT item (tenants.Tenant, public schema) is not in it."""

from broker.models import ApiKey, Consumer, EventType, Producer, Subscription

from . import contract

MODELS = {
    contract.PRODUCER: Producer,
    contract.APIKEY: ApiKey,
    contract.CONSUMER: Consumer,
    contract.SUBSCRIPTION: Subscription,
    contract.EVENT_TYPE: EventType,
}

NAME_FIELDS = {
    contract.PRODUCER: "name",
    contract.APIKEY: "prefix",
    contract.CONSUMER: "name",
    contract.SUBSCRIPTION: "event_type",
    contract.EVENT_TYPE: "name",
}
