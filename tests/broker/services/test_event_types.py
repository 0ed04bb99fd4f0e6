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


@pytest.mark.parametrize(
    "schema,path",
    [
        ({"$ref": "https://schemas.example.com/order.json"}, "$ref"),
        ({"properties": {"a": {"$ref": "other.json#/x"}}}, "properties.a.$ref"),
        ({"anyOf": [{"type": "null"}, {"$ref": "file:///etc/passwd"}]}, "anyOf.1.$ref"),
        ({"properties": {"a": {"$ref": "#/$defs/missing"}}}, "properties.a.$ref"),
        (
            {"$id": "https://e.example/root.json", "properties": {"b": {"$ref": "b.json"}}},
            "properties.b.$ref",
        ),
    ],
    ids=["remote", "relative file", "file url", "local to nowhere", "relative to the $id"],
)
def test_a_schema_whose_ref_does_not_resolve_within_itself_is_refused_with_its_path(
    world, in_a, schema, path
):
    with pytest.raises(ApplicationError) as exc:
        services.event_type_create(actor=world.admin_a, name="order.created", schema=schema)
    (message,) = exc.value.fields["schema"]
    assert message.startswith(f"{path}:")
    assert not EventType.objects.exists()


@pytest.mark.parametrize(
    "schema",
    [
        {"$defs": {"id": {"type": "string"}}, "properties": {"a": {"$ref": "#/$defs/id"}}},
        {"$defs": {"x": {"$anchor": "money", "type": "number"}}, "items": {"$ref": "#money"}},
        {
            "$id": "https://e.example/root.json",
            "$defs": {"x": {"$id": "x.json", "type": "string"}},
            "properties": {"a": {"$ref": "x.json"}, "b": {"$ref": "#"}},
        },
        {
            "$schema": "http://json-schema.org/draft-07/schema#",
            "definitions": {"x": {"type": "string"}},
            "properties": {"a": {"$ref": "#/definitions/x"}},
        },
    ],
    ids=["$defs", "anchor", "embedded $id", "draft-07 definitions"],
)
def test_references_within_the_schema_are_accepted(world, in_a, schema):
    event_type = services.event_type_create(
        actor=world.admin_a, name="order.created", schema=schema
    )
    assert event_type.schema == schema


def test_the_api_answers_400_with_the_path_of_a_remote_ref(world, api):
    client = api(world.admin_a, world.a)
    response = client.post(
        "/api/v1/event-types/",
        {"name": "order.remote", "schema": {"properties": {"a": {"$ref": "https://x.test/s"}}}},
        format="json",
    )
    assert response.status_code == 400, response.content
    (message,) = response.json()["error"]["fields"]["schema"]
    assert message.startswith("properties.a.$ref:")
