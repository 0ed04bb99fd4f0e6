import pytest

from broker import services
from broker.models import EventType
from core.errors import ApplicationError
from tests.helpers.broker import outbox_rows

pytestmark = pytest.mark.django_db


def test_an_event_type_may_carry_a_json_schema(world, in_a):
    schema = {"type": "object", "required": ["order_id"]}
    event_type = services.event_type_create(
        actor=world.admin_a, name="order.created", description="An order was placed", schema=schema
    )
    assert event_type.schema == schema
    assert outbox_rows(world.a)[-1].object_type == "event_type"


def test_an_invalid_schema_or_name_is_refused(world, in_a):
    with pytest.raises(ApplicationError) as exc:
        services.event_type_create(
            actor=world.admin_a, name="order.created", schema={"type": "no-such-type"}
        )
    assert "schema" in exc.value.fields
    with pytest.raises(ApplicationError) as exc:
        services.event_type_create(actor=world.admin_a, name="Order Created")
    assert "name" in exc.value.fields
    assert not EventType.objects.exists()


def test_an_event_type_cannot_be_renamed(world, in_a):
    event_type = services.event_type_create(actor=world.admin_a, name="order.created")
    with pytest.raises(ApplicationError) as exc:
        services.event_type_update(actor=world.admin_a, event_type=event_type, name="order.new")
    assert "name" in exc.value.fields
    event_type = services.event_type_update(
        actor=world.admin_a, event_type=event_type, description="now documented"
    )
    assert event_type.version == 2
