"""The DLQ ingest killed for real between its commit and the SQS delete (a process of its own,
SIGKILLed at the delete call), then run again once the messages are visible again.

Commits (the ingest process must see the tenant), so it uses a tenant of its own."""

import os
import signal
import subprocess
import sys
import textwrap

import pytest
from django.conf import settings
from django_tenants.utils import tenant_context

from broker import services as broker_services
from broker.deadletters import ingest
from broker.deadletters.models import DeadLetter
from core import aws
from portal.celery import app
from tests.broker.sync import _processes
from tests.broker.sync._processes import ROOT, wait_for
from tests.helpers import PUBLIC_URL, make_user, onboard
from tests.helpers.deadletters import dead_letter, dlq_url, purge, send_to_dlq

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

VISIBILITY_SECONDS = 2

# The ingest as the worker runs it, with one hook: the SQS delete of the first batch kills the
# process (SIGKILL: no cleanup, its database connection and advisory lock die with it).
KILLED_INGEST = textwrap.dedent(
    """
    import os, signal, django
    django.setup()
    from broker.deadletters import ingest
    from core import aws
    sqs = aws.sqs()
    def die(**kwargs):
        print("deleting", len(kwargs["Entries"]), flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    sqs.delete_message_batch = die
    ingest.run(max_batches=100, wait_seconds=0)
    print("not killed", flush=True)
    """
)


def _ingest_in_a_process_killed_before_the_delete(aws_endpoint: str) -> str:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "portal.settings",
        "DATABASE_URL": _processes.test_database_url(),
        "AWS_ENDPOINT_URL": aws_endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": settings.AWS_REGION,
        "DJANGO_DEBUG": "1",
        "DJANGO_SECRET_KEY": settings.SECRET_KEY,
    }
    proc = subprocess.run(
        [sys.executable, "-c", KILLED_INGEST],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stdout + proc.stderr[-3000:]
    return proc.stdout


def _tenant_with_consumer():
    eager = app.conf.task_always_eager
    app.conf.task_always_eager = True  # provisioning runs here
    try:
        tenant = onboard("dl-ingest-kill", tier="dedicated")
    finally:
        app.conf.task_always_eager = eager
    actor = make_user("admin@dl-ingest-kill.test")
    with tenant_context(tenant):
        consumer, _ = broker_services.consumer_create(
            actor=actor, name="flaky", kind="https", url=PUBLIC_URL
        )
    return tenant, consumer


def _queued(url: str) -> int:
    attrs = aws.sqs().get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return sum(int(v) for v in attrs.values())


def _rows(tenant) -> dict:
    with tenant_context(tenant):
        return {
            d.delivery_id: (d.replay_count, d.life_replay, len(d.history))
            for d in DeadLetter.objects.all()
        }


@pytest.fixture
def short_visibility(live_aws):
    url = dlq_url()
    sqs = aws.sqs()
    before = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["VisibilityTimeout"])
    sqs.set_queue_attributes(
        QueueUrl=url, Attributes={"VisibilityTimeout": str(VISIBILITY_SECONDS)}
    )
    purge(url)
    yield url
    purge(url)
    sqs.set_queue_attributes(QueueUrl=url, Attributes=before["Attributes"])


def test_an_ingest_killed_between_its_commit_and_the_delete_leaves_one_row_per_letter(
    live_aws, short_visibility
):
    url = short_visibility
    tenant, consumer = _tenant_with_consumer()
    # A letter already stored, whose replay 1 failed again: its new life is in the batch.
    known = dead_letter(tenant, consumer.pk)
    send_to_dlq(known)
    ingest.run(max_batches=10, wait_seconds=0)
    again = dead_letter(tenant, consumer.pk, delivery_id=known.delivery.delivery_id, replay=1)
    # A letter whose third life (replay 2) is its first dead letter here, and seven new ones.
    late = dead_letter(tenant, consumer.pk, replay=2)
    fresh = [dead_letter(tenant, consumer.pk) for _ in range(7)]
    send_to_dlq(again, late, *fresh)

    out = _ingest_in_a_process_killed_before_the_delete(live_aws)
    assert out.startswith("deleting 9"), out
    # Its transaction had committed: every row is there, and every message is still in SQS.
    committed = _rows(tenant)
    assert committed[known.delivery.delivery_id] == (1, 1, 2)
    assert committed[late.delivery.delivery_id] == (2, 2, 1)
    assert len(committed) == 9
    assert _queued(url) == 9

    # After the visibility timeout the same messages come back to the next ingest.
    seen = {"received": 0, "duplicates": 0}

    def ingest_again():
        result = ingest.run(max_batches=10, wait_seconds=1)
        seen["received"] += result.received
        seen["duplicates"] += result.duplicates
        return seen["received"] >= 9

    assert wait_for(ingest_again, timeout=VISIBILITY_SECONDS + 30, interval=0.2), seen
    assert seen == {"received": 9, "duplicates": 9}
    assert _rows(tenant) == committed  # one row per letter, replay counts and history unchanged
    assert _queued(url) == 0
