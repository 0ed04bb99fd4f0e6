"""Lambda's SQS poller for one event source mapping, as the local runner runs it.

The runner reads the emulator's mappings (ListEventSourceMappings) and gives each enabled SQS
mapping ScalingConfig.MaximumConcurrency pollers (capped by RUNNER_MAX_CONCURRENCY). Each
receives up to BatchSize messages (waiting up to MaximumBatchingWindowInSeconds to fill the
batch), invokes the mapping's function with the SQS event, and then, as Lambda does:

- the invocation succeeded: deletes the messages, except those a partial batch response names
  in `batchItemFailures`, and only if the mapping's FunctionResponseTypes has
  ReportBatchItemFailures (without it the response is ignored and the whole batch is deleted);
- the function raised, or ran past its Timeout and was killed: deletes nothing, so every message
  comes back after the queue's visibility timeout.

Its receives and deletes are made with the function's role on AWS; here they are recorded
under the function's name for the IAM check.

FIFO queues (ordered subscriptions) need nothing of their own here: the emulator, like SQS,
hands out no message of a group while one of it is in flight, to this poller or any other, and
returns a group's messages in order (with moto_server.py's changes to moto's FIFO receive;
tests/functions/test_fifo_emulation.py). The delete after an invocation may run while another
poller receives from the same queue: the emulator makes it wait for that receive.
"""

import logging
import threading
import time
from dataclasses import dataclass

from botocore.exceptions import BotoCoreError, ClientError

from broker.functions.local import events
from broker.functions.local.functions import FunctionHost, InvocationError

log = logging.getLogger("broker.functions.runner")


@dataclass(frozen=True)
class Mapping:
    uuid: str
    queue_arn: str
    queue_url: str
    function_arn: str
    batch_size: int
    batching_window: int
    concurrency: int
    partial_batch: bool

    @property
    def queue_name(self) -> str:
        return self.queue_arn.rsplit(":", 1)[-1]


class Poller(threading.Thread):
    def __init__(self, mapping: Mapping, index: int, *, sqs, host: FunctionHost, runner):
        super().__init__(name=f"poll:{mapping.queue_name}:{index}", daemon=True)
        self.mapping = mapping
        self.index = index
        self.sqs = sqs
        self.host = host
        self.runner = runner
        self.retired = threading.Event()
        self.busy = False

    def stopping(self) -> bool:
        return self.retired.is_set() or self.runner.stopped.is_set()

    def _receive(self, count: int, wait: int) -> list[dict]:
        return self.sqs.receive_message(
            QueueUrl=self.mapping.queue_url,
            MaxNumberOfMessages=count,
            WaitTimeSeconds=wait,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        ).get("Messages", [])

    def _batch(self) -> list[dict]:
        m = self.mapping
        messages = self._receive(min(m.batch_size, 10), self.runner.options.wait_seconds)
        if not messages or m.batching_window <= 0:
            return messages
        # The batching window: keep receiving until the batch is full or the window passed.
        until = time.monotonic() + m.batching_window
        while len(messages) < m.batch_size and time.monotonic() < until and not self.stopping():
            left = max(0, int(until - time.monotonic()))
            messages += self._receive(min(m.batch_size - len(messages), 10), min(left, 20))
        return messages

    def run(self) -> None:
        backoff = 0.5
        while not self.stopping():
            try:
                messages = self._batch()
                backoff = 0.5
            except (ClientError, BotoCoreError) as exc:
                code = getattr(exc, "response", {}).get("Error", {}).get("Code", "")
                if code in ("AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"):
                    log.warning("%s: queue deleted, poller ends", self.name)
                    return
                log.warning("%s: receive failed: %s", self.name, exc)
                self.runner.stopped.wait(backoff)
                backoff = min(backoff * 2, 10)
                continue
            if not messages:
                continue
            if self.stopping():
                self._give_back(messages)
                return
            self.busy = True
            try:
                self.process(messages)
            finally:
                self.busy = False

    def process(self, messages: list[dict]) -> None:
        event = events.sqs_event(
            messages, queue_arn=self.mapping.queue_arn, region=self.runner.region
        )
        try:
            result = self.host.invoke(event)
        except InvocationError as exc:
            # As in Lambda: the whole batch comes back after the visibility timeout.
            log.warning("%s: %s; the batch of %d stays", self.name, exc, len(messages))
            self.runner.count(self.mapping.function_arn, 0, len(messages))
            return
        failed = (events.failed_ids(result) or set()) if self.mapping.partial_batch else set()
        done = [m for m in messages if m["MessageId"] not in failed]
        self.runner.count(self.mapping.function_arn, len(done), len(messages) - len(done))
        if done:
            self._delete_done(done)

    def _delete_done(self, messages: list[dict]) -> None:
        entries = [
            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)
        ]
        try:
            answer = self.sqs.delete_message_batch(QueueUrl=self.mapping.queue_url, Entries=entries)
        except (ClientError, BotoCoreError) as exc:
            log.warning("%s: delete failed (the messages will come back): %s", self.name, exc)
            self.runner.count_error("delete")
            return
        for failure in answer.get("Failed", []):
            log.warning("%s: delete of one message failed: %s", self.name, failure)
            self.runner.count_error("delete")

    def _give_back(self, messages: list[dict]) -> None:
        """Messages received after the stop signal go back at once (visibility 0)."""
        entries = [
            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": 0}
            for i, m in enumerate(messages)
        ]
        try:
            self.sqs.change_message_visibility_batch(
                QueueUrl=self.mapping.queue_url, Entries=entries
            )
        except (ClientError, BotoCoreError) as exc:
            log.warning(
                "%s: giving back %d messages failed (they return after the visibility timeout): %s",
                self.name,
                len(messages),
                exc,
            )
            self.runner.count_error("give_back")
