"""What ordered delivery counts on from SQS FIFO queues, checked against the emulator (moto),
which the local runner's pollers and every test use (docs/aws-differences.md)."""

import time

import pytest
from botocore.exceptions import ClientError

from broker.functions import aws
from tests.helpers.functions import new_fifo_queue

pytestmark = pytest.mark.usefixtures("dataplane")


def _send(url, group, body):
    aws.sqs().send_message(
        QueueUrl=url, MessageBody=body, MessageGroupId=group, MessageDeduplicationId=body
    )


def _receive(url, n=10):
    got = aws.sqs().receive_message(QueueUrl=url, MaxNumberOfMessages=n).get("Messages", [])
    return got


def test_a_group_is_not_handed_out_while_a_message_of_it_is_in_flight():
    url = new_fifo_queue()
    for body in ("a0", "a1", "a2"):
        _send(url, "a", body)
    _send(url, "b", "b0")
    first = _receive(url, 1)
    assert [m["Body"] for m in first] == ["a0"]
    # Another poller's receive: only the other group; a1 waits behind a0 in flight.
    assert [m["Body"] for m in _receive(url)] == ["b0"]
    assert _receive(url) == []
    aws.sqs().delete_message(QueueUrl=url, ReceiptHandle=first[0]["ReceiptHandle"])
    assert [m["Body"] for m in _receive(url)] == ["a1", "a2"]


def test_a_head_put_back_by_its_visibility_comes_back_first_after_the_wait():
    """The egress's retry of an ordered delivery: ChangeMessageVisibility on the head and 0 on
    the records after it that it reported failed; the group waits, then the head is first."""
    url = new_fifo_queue()
    for body in ("a0", "a1"):
        _send(url, "a", body)
    got = _receive(url)
    assert [m["Body"] for m in got] == ["a0", "a1"]
    client = aws.sqs()
    client.change_message_visibility(
        QueueUrl=url, ReceiptHandle=got[0]["ReceiptHandle"], VisibilityTimeout=2
    )
    client.change_message_visibility(
        QueueUrl=url, ReceiptHandle=got[1]["ReceiptHandle"], VisibilityTimeout=0
    )
    assert _receive(url) == []  # a1 is visible, but its group's head is in flight
    time.sleep(2.2)
    assert [m["Body"] for m in _receive(url)] == ["a0", "a1"]


def test_a_fifo_queue_refuses_a_per_message_delay():
    url = new_fifo_queue()
    with pytest.raises(ClientError):
        aws.sqs().send_message(
            QueueUrl=url,
            MessageBody="x",
            MessageGroupId="g",
            MessageDeduplicationId="x",
            DelaySeconds=5,
        )


def test_a_repeated_deduplication_id_is_dropped():
    url = new_fifo_queue()
    _send(url, "a", "same")
    _send(url, "a", "same")
    assert len(_receive(url)) == 1


def test_pollers_receiving_at_once_never_hold_two_messages_of_one_group():
    """moto alone would let a second receive take a group's next message while the first holds
    its head; broker/functions/local/moto_server.py makes FIFO receives one at a time."""
    import threading

    url = new_fifo_queue()
    for seq in range(6):
        for group in range(10):
            _send(url, f"g{group}", f"g{group}-{seq}")
    in_flight, seen, lock, errors = set(), [], threading.Lock(), []

    def poller():
        client = aws.sqs()
        idle = 0
        while idle < 3:
            got = client.receive_message(QueueUrl=url, MaxNumberOfMessages=1).get("Messages", [])
            if not got:
                idle += 1
                continue
            idle = 0
            group, seq = got[0]["Body"].split("-")
            with lock:
                if group in in_flight:
                    errors.append(got[0]["Body"])
                in_flight.add(group)
                seen.append((group, int(seq)))
            time.sleep(0.002)
            with lock:
                in_flight.discard(group)
            client.delete_message(QueueUrl=url, ReceiptHandle=got[0]["ReceiptHandle"])

    threads = [threading.Thread(target=poller) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    for group in range(10):
        assert [s for g, s in seen if g == f"g{group}"] == list(range(6))


def _backend_queue(url):
    """moto's own queue object behind `url` (in-process moto)."""
    from moto.sqs.models import sqs_backends

    account, name = url.rstrip("/").split("/")[-2:]
    return sqs_backends[account][aws.sqs().meta.region_name].get_queue(name)


def test_a_groups_head_comes_back_first_when_its_messages_time_out_together():
    """A batch of a group whose visibility runs out (no answer from its invocation): the head
    comes back first. moto kept both in its "pending" set, skipped the head for the later one
    still there, then handed out that later one alone: the key's events out of order."""
    url = new_fifo_queue()
    for body in ("a0", "a1"):
        _send(url, "a", body)
    got = aws.sqs().receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=1)
    assert [m["Body"] for m in got["Messages"]] == ["a0", "a1"]
    time.sleep(1.2)
    assert [m["Body"] for m in _receive(url)] == ["a0", "a1"]


def test_a_delete_during_a_receive_never_lets_a_groups_later_message_pass_its_head():
    """The likely path of the e2e's order violation (a key's seq 5 before its 4; an egress-like
    workload on moto alone breaks groups' order this way): a batch held a0
    (delivered, deleted by the poller when the whole batch is done) and a1 (failed: its retry
    waits 1 s, a2 behind it at 0). a1's wait ran out before the batch was done: a receive saw
    a1 visible, its group still in flight (a0), and skipped it. Then a receive walked the queue
    while the poller deleted a0: moto skipped a1 (its group in flight when the receive began),
    recomputed the groups in flight at another group's timed-out message, after the delete, and
    handed out a2 before a1. DeleteMessage now waits for the receive (moto_server.py)."""
    import threading

    url = new_fifo_queue()
    client = aws.sqs()
    _send(url, "a", "a0")
    _send(url, "a", "a1")
    _send(url, "b", "b0")  # another group's message between a1 and a2, timed out (below)
    _send(url, "a", "a2")
    batch = {m["Body"]: m for m in _receive(url)}
    assert sorted(batch) == ["a0", "a1", "a2", "b0"]
    client.change_message_visibility_batch(
        QueueUrl=url,
        Entries=[
            {"Id": "1", "ReceiptHandle": batch["a1"]["ReceiptHandle"], "VisibilityTimeout": 1},
            {"Id": "2", "ReceiptHandle": batch["a2"]["ReceiptHandle"], "VisibilityTimeout": 0},
            {"Id": "3", "ReceiptHandle": batch["b0"]["ReceiptHandle"], "VisibilityTimeout": 1},
        ],
    )
    time.sleep(1.2)
    # A receive while a0 is still in flight: a1 is its group's head, the group waits.
    [b] = _receive(url, 1)
    assert b["Body"] == "b0"
    client.change_message_visibility(
        QueueUrl=url, ReceiptHandle=b["ReceiptHandle"], VisibilityTimeout=1
    )
    # b0 again in flight and then timed out, a1's group still in flight: the next receive
    # meets b0 visible in moto's pending set (where it recomputes the groups in flight) after
    # a1. Meanwhile, another thread deletes a0, as the poller does at the batch's end.
    time.sleep(1.2)
    queue = _backend_queue(url)
    [b0] = [m for m in queue._messages if m.body == "b0"]
    deleted = threading.Event()

    def delete_a0():
        aws.sqs().delete_message(QueueUrl=url, ReceiptHandle=batch["a0"]["ReceiptHandle"])
        deleted.set()

    class DeletesOnFirstLook(type(b0)):
        fired = False

        @property
        def visible(self):
            if not DeletesOnFirstLook.fired:
                DeletesOnFirstLook.fired = True
                worker = threading.Thread(target=delete_a0)
                worker.start()
                worker.join(0.5)  # done at once unless the delete waits for this receive
            return super().visible

    b0.__class__ = DeletesOnFirstLook
    first = [m["Body"] for m in _receive(url)]
    assert deleted.wait(5)
    got = first + [m["Body"] for m in _receive(url)]
    a = [body for body in got if body.startswith("a")]
    assert a == ["a1", "a2"], got
