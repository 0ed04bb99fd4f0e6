"""Dead letters end to end on the moto server: a consumer that fails → its letters appear in
the portal with their metadata → replay once it recovers → the receiver gets each event once,
with the original webhook-id."""

import time

import pytest
from django_tenants.utils import tenant_context

from broker import services
from broker.deadletters import ingest
from broker.deadletters import runner as replay_runner
from broker.deadletters import services as dead_letters
from broker.deadletters.models import DeadLetter
from broker.sync import relay
from tests.e2e.test_dataplane_e2e import ORDER, dp, runner  # noqa: F401 (fixtures)
from tests.helpers.e2e import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.django_db]


def test_a_failed_consumers_letters_replay_once_to_the_recovered_consumer(dp):  # noqa: F811
    w = dp.world
    _, key, consumer, _, _ = dp.setup(
        w.a, w.admin_a, path="fail", retry_policy={"strategy": "schedule", "schedule": [1]}
    )
    ids = [f"dl-{dp.tag}-{i}" for i in range(3)]
    for source_id in ids:
        status, _, _ = dp.send(key, {**ORDER, "id": source_id})
        assert status == 202

    def letters():
        ingest.run(max_batches=5, wait_seconds=1)
        with tenant_context(w.a):
            found = list(DeadLetter.objects.filter(consumer_id=str(consumer.pk)))
        return found if len(found) == 3 else None

    found = wait_for(letters, timeout=30, interval=0.2)
    assert found, "the dead letters did not arrive"
    assert {x.event_type for x in found} == {"order.created"}
    assert {(x.attempts, x.last_status, x.error_kind) for x in found} == {(2, 503, "http_status")}
    failed_ids = {p["webhook_id"] for p in dp.received("fail")}
    assert {x.delivery_id for x in found} == failed_ids

    # The consumer is fixed: it now points at a path that answers 200.
    with tenant_context(w.a):
        services.consumer_update(actor=w.admin_a, consumer=consumer, url=dp.url("hooks"))
    relay.drain()
    time.sleep(1.2)  # the runner's configuration cache (1 s here)

    with tenant_context(w.a):
        outcome = dead_letters.replay_start(
            tenant=w.a, actor=w.admin_a, filter={"consumer": str(consumer.pk)}
        )
        [job] = outcome.jobs
        assert replay_runner.replay_job_run(tenant=w.a, job_id=job.pk) == "completed"

    got = wait_for(lambda: len(dp.received("hooks")) >= 3 and dp.received("hooks"), timeout=20)
    assert got, "the replayed events did not arrive"
    time.sleep(1.5)  # anything more (a duplicate) would arrive by now
    posts = dp.received("hooks")
    assert sorted(p["webhook_id"] for p in posts) == sorted(x.delivery_id for x in found)
    assert all(p["status"] == 200 for p in posts)
    with tenant_context(w.a):
        assert set(
            DeadLetter.objects.filter(consumer_id=str(consumer.pk)).values_list(
                "status", "replay_count"
            )
        ) == {("replayed", 1)}
