"""DLQ ingest: the data plane's dead-letter messages become rows, exactly once; what cannot be
placed goes to the quarantine."""

import json

import pytest
from django_tenants.utils import tenant_context

from broker.deadletters import ingest
from broker.deadletters.models import DeadLetter
from broker.dlq.models import QuarantinedMessage
from core import aws
from tenants.models import Tenant
from tests.helpers.deadletters import dead_letter, ingest_all, send_to_dlq

pytestmark = pytest.mark.django_db


def _letters(tenant):
    with tenant_context(tenant):
        return list(DeadLetter.objects.order_by("dead_lettered_at"))


def test_a_dead_letter_becomes_a_row_with_its_metadata_and_leaves_the_dlq(world, dlq, consumer_a):
    message = dead_letter(world.a, consumer_a.pk, status=503)
    send_to_dlq(message)

    result = ingest_all()

    assert (result.received, result.stored, result.deleted) == (1, 1, 1)
    [letter] = _letters(world.a)
    d = message.delivery
    assert letter.delivery_id == d.delivery_id
    assert letter.consumer_id == str(consumer_a.pk)
    assert (letter.event_id, letter.event_type) == (d.event_id, "order.created")
    assert (letter.attempts, letter.last_status, letter.error_kind) == (5, 503, "http_status")
    assert letter.status == "pending" and letter.replay_count == 0
    assert letter.first_attempt_at and letter.last_attempt_at
    assert [h["event"] for h in letter.history] == ["dead_lettered"]
    assert aws.sqs().receive_message(QueueUrl=dlq, WaitTimeSeconds=0).get("Messages") is None


def test_the_payload_is_encrypted_at_rest(world, dlq, consumer_a):
    send_to_dlq(dead_letter(world.a, consumer_a.pk, data={"card": "4111111111111111"}))
    ingest_all()
    [letter] = _letters(world.a)
    assert "4111111111111111" not in letter.payload_encrypted
    from broker import secrets

    event = json.loads(secrets.decrypt(tenant_id=str(world.a.pk), token=letter.payload_encrypted))
    assert event["data"] == {"card": "4111111111111111"}


def test_the_same_message_received_again_after_a_crash_is_still_one_row(world, dlq, consumer_a):
    message = dead_letter(world.a, consumer_a.pk)
    # A kill between the commit and the delete: the same body comes back.
    send_to_dlq(message)
    ingest_all()
    send_to_dlq(message)
    result = ingest_all()
    assert result.duplicates == 1 and result.stored == 0
    assert len(_letters(world.a)) == 1


def test_a_replayed_letter_that_fails_again_comes_back_to_the_same_row(world, dlq, consumer_a):
    first = dead_letter(world.a, consumer_a.pk, status=503)
    send_to_dlq(first)
    ingest_all()
    with tenant_context(world.a):
        DeadLetter.objects.update(status="replayed", replay_count=1)
    again = dead_letter(
        world.a, consumer_a.pk, delivery_id=first.delivery.delivery_id, replay=1, status=500
    )
    send_to_dlq(again)
    ingest_all()

    [letter] = _letters(world.a)
    assert letter.status == "pending"
    assert (letter.life_replay, letter.replay_count, letter.last_status) == (1, 1, 500)
    assert [h["replay"] for h in letter.history if h["event"] == "dead_lettered"] == [0, 1]


def test_letters_of_two_tenants_land_in_their_own_schemas(world, dlq, consumer_a, consumer_b):
    send_to_dlq(dead_letter(world.a, consumer_a.pk), dead_letter(world.b, consumer_b.pk))
    ingest_all()
    assert [x.consumer_id for x in _letters(world.a)] == [str(consumer_a.pk)]
    assert [x.consumer_id for x in _letters(world.b)] == [str(consumer_b.pk)]


@pytest.mark.parametrize(
    "body, reason",
    [
        ("not json at all", "malformed message: not JSON"),
        ('{"order": 1, "raw": "event from a producer source queue"}', "malformed message"),
        ('{"v": 99, "kind": "dead_letter"}', "unknown message version"),
        ('{"v": 1, "kind": "dead_letter", "delivery": {}, "event": {}}', "malformed message"),
        ("[1, 2, 3]", "not a JSON object"),
    ],
)
def test_malformed_messages_are_quarantined_not_lost(world, dlq, body, reason):
    send_to_dlq(body)
    result = ingest_all()
    assert result.quarantined == 1 and result.deleted == 1
    [entry] = QuarantinedMessage.objects.all()
    assert entry.body == body and reason in entry.reason and entry.status == "open"


def test_a_letter_for_an_unknown_tenant_is_quarantined(world, dlq):
    ghost = Tenant(pk="00000000-0000-4000-8000-000000000001", slug="ghost")
    send_to_dlq(dead_letter(ghost, "c1"))
    ingest_all()
    [entry] = QuarantinedMessage.objects.all()
    assert entry.reason == "unknown tenant" and entry.tenant_hint == str(ghost.pk)


def test_a_letter_for_an_offboarding_tenant_is_quarantined(world, dlq, consumer_b):
    Tenant.objects.filter(pk=world.b.pk).update(status="offboarding")
    send_to_dlq(dead_letter(world.b, consumer_b.pk))
    ingest_all()
    [entry] = QuarantinedMessage.objects.all()
    assert "offboarding" in entry.reason
    assert _letters(world.b) == []


def test_attributes_that_disagree_with_the_body_are_quarantined(world, dlq, consumer_a):
    message = dead_letter(world.a, consumer_a.pk)
    attrs = {"tenant_id": {"DataType": "String", "StringValue": str(world.b.pk)}}
    send_to_dlq(message.body(), attributes=attrs)
    ingest_all()
    assert _letters(world.a) == []
    assert QuarantinedMessage.objects.get().reason.startswith("the tenant_id attribute")


def test_a_quarantined_message_received_twice_is_one_entry(world, dlq):
    url = dlq
    aws.sqs().send_message(QueueUrl=url, MessageBody="garbage")
    got = aws.sqs().receive_message(QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"])
    messages = got["Messages"]
    ingest.place(messages, result=ingest.IngestResult())
    ingest.place(messages, result=ingest.IngestResult())
    assert QuarantinedMessage.objects.count() == 1


def test_a_full_batch_says_more_is_waiting(world, dlq, consumer_a):
    send_to_dlq(*[dead_letter(world.a, consumer_a.pk) for _ in range(12)])
    result = ingest.run(max_batches=1, wait_seconds=0)
    assert result.received == 10 and result.more
    result = ingest.run(max_batches=5, wait_seconds=0)
    assert result.received == 2 and not result.more
    assert len(_letters(world.a)) == 12
