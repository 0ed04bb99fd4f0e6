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
