"""One long-polling worker of one queue, as an SQS event source mapping runs it."""

import logging
import threading

from botocore.exceptions import BotoCoreError, ClientError

from broker.functions import settings
from broker.functions.local import events
from broker.functions.local.discovery import DELIVERY, Queue

log = logging.getLogger("broker.functions.runner")


class Poller(threading.Thread):
    """One long-polling worker of one queue: receive ≤ 10, call the handler, delete what
    succeeded. Several workers of one queue are several Pollers."""

    def __init__(self, queue: Queue, index: int, *, sqs, handler, runner):
        name = queue.url.rsplit("/", 1)[-1]
        super().__init__(name=f"poll:{name}:{index}", daemon=True)
        self.queue = queue
        self.index = index
        self.sqs = sqs
        self.handler = handler
        self.runner = runner
        self.retired = threading.Event()
        self.busy = False
        self.function_name = "egress" if queue.kind == DELIVERY else "ingress-sqs"

    def stopping(self) -> bool:
        return self.retired.is_set() or self.runner.stopped.is_set()

    def run(self) -> None:
        backoff = 0.5
        while not self.stopping():
            try:
                messages = self.sqs.receive_message(
                    QueueUrl=self.queue.url,
                    MaxNumberOfMessages=10,
                    WaitTimeSeconds=self.runner.options.wait_seconds,
                    AttributeNames=["All"],
                    MessageAttributeNames=["All"],
                ).get("Messages", [])
                backoff = 0.5
            except ClientError as exc:
                if exc.response["Error"]["Code"] in (
                    "AWS.SimpleQueueService.NonExistentQueue",
                    "QueueDoesNotExist",
                ):
                    log.info("%s: queue deleted, poller ends", self.name)
                    return
                log.warning("%s: receive failed: %s", self.name, exc)
                self.runner.stopped.wait(backoff)
                backoff = min(backoff * 2, 10)
                continue
            except BotoCoreError as exc:
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
        region = settings.get().region
        event = events.sqs_event(messages, queue_arn=self.queue.arn, region=region)
        try:
            result = self.handler(event, events.LambdaContext(self.function_name))
        except Exception:
            # As in Lambda: the whole batch comes back after the visibility timeout.
            log.exception("%s: handler raised; the batch of %d stays", self.name, len(messages))
            return
        failed = events.failed_ids(result) or set()
        done = [m for m in messages if m["MessageId"] not in failed]
        self.runner.count(self.queue.kind, len(done), len(messages) - len(done))
        if done:
            self._delete_messages(done)

    def _delete_messages(self, messages: list[dict]) -> None:
        entries = [
            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)
        ]
        try:
            answer = self.sqs.delete_message_batch(QueueUrl=self.queue.url, Entries=entries)
        except (ClientError, BotoCoreError) as exc:
            log.warning("%s: delete failed (messages will come back): %s", self.name, exc)
            return
        for failure in answer.get("Failed", []):
            log.warning("%s: delete of one message failed: %s", self.name, failure)

    def _give_back(self, messages: list[dict]) -> None:
        entries = [
            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": 0}
            for i, m in enumerate(messages)
        ]
        try:
            self.sqs.change_message_visibility_batch(QueueUrl=self.queue.url, Entries=entries)
        except (ClientError, BotoCoreError):
            pass
