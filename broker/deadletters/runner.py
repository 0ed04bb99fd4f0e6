"""The replay job runner (docs/design.md, flow 7): frozen selection → SendMessageBatch to the
consumer's current delivery queue, 10 a call, at the job's rate; progress saved per batch.

Letters go in the order they were dead-lettered. A letter of an ordered subscription (its
`metadata` holds `ordering_key` and `group_id`) goes back to its key's FIFO queue
(`ordering.queue_for` over the tenant's FIFO queues) in the key's message group, with the
deduplication id delivery id + replay number; one letter of a key per SendMessageBatch call,
so a key's letters arrive in their original order, and when one is refused the key's later
letters of the batch are not sent (they stay pending, for the next replay).
"""

import json
import logging
import random
import time
from collections import deque

from botocore.exceptions import BotoCoreError, ClientError
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from broker import secrets
from broker.functions.shared import messages, ordering
from broker.models import Consumer
from core import aws, locks
from tenants.models import Tenant

from . import replay_counts
from .models import DeadLetter, JobStatus, LetterStatus, ReplayJob
from .numbers import replay_numbers_allocate

logger = logging.getLogger(__name__)

SQS_BATCH = 10
SQS_BATCH_BYTES = 256 * 1024


def release(job: ReplayJob) -> int:
    """Letters the job still holds go back to pending (their fixed replay number is kept, so a
    copy already in SQS and a later replay carry the same one and only one is delivered)."""
    return DeadLetter.objects.filter(last_job=job, status=LetterStatus.REPLAYING).update(
        status=LetterStatus.PENDING, updated_at=timezone.now()
    )


class AwsUnavailable(Exception):
    """SQS could not be reached for longer than the job waits; the task retries later."""


def _fail(job: ReplayJob, error: str, *, tenant_id=None) -> None:
    with transaction.atomic():
        job = ReplayJob.objects.select_for_update().get(pk=job.pk)
        if not job.is_active:
            return
        job.skipped += release(job)
        job.status = JobStatus.FAILED
        job.error = error[:2000]
        job.finished_at = job.updated_at = timezone.now()
        job.save()
        replay_counts.replay_jobs_recount(tenant_id=tenant_id)


def _queue_for(tenant: Tenant) -> str | None:
    queues = list(tenant.delivery_queues or [])
    if not queues:
        return None
    if tenant.deployment_model == "silo" or len(queues) == 1:
        return queues[0]
    return random.choice(queues)  # noqa: S311 (load spreading, as the ingress does)


def _entry(tenant_id: str, letter: DeadLetter, *, ordered_queues: list[str]) -> dict:
    """The letter's SendMessageBatch entry; an ordered one also carries its queue (`QueueUrl`,
    taken out before sending), MessageGroupId and MessageDeduplicationId."""
    event = json.loads(secrets.decrypt(tenant_id=tenant_id, token=letter.payload_encrypted))
    meta = letter.metadata or {}
    delivery = messages.Delivery(
        delivery_id=letter.delivery_id,
        tenant_id=tenant_id,
        consumer_id=letter.consumer_id,
        subscription_id=letter.subscription_id or None,
        producer_id=letter.producer_id or None,
        event_id=letter.event_id,
        event_type=letter.event_type,
        replay=letter.replay_number,
        attempt=1,
        test=bool(meta.get("test")),
    )
    ordered = bool(meta.get("group_id") and ordered_queues)
    if ordered:
        delivery.ordering_key, delivery.group_id = meta.get("ordering_key"), meta["group_id"]
    message = messages.delivery_message(delivery, event)
    # A deterministic entry id: the same letter resent after a crash is the same entry.
    entry = {
        "Id": letter.pk.hex,
        "MessageBody": message.body(),
        "MessageAttributes": message.attributes(),
    }
    if ordered:
        entry.update(
            QueueUrl=ordering.queue_for({"ordered_queues": ordered_queues}, delivery.group_id),
            MessageGroupId=delivery.group_id,
            MessageDeduplicationId=ordering.dedup_id(delivery.delivery_id, delivery.replay),
        )
    return entry


def _chunks(entries: list[dict]):
    chunk, size = [], 0
    for entry in entries:
        length = len(entry["MessageBody"].encode()) + 200
        if chunk and (len(chunk) == SQS_BATCH or size + length > SQS_BATCH_BYTES):
            yield chunk
            chunk, size = [], 0
        chunk.append(entry)
        size += length
    if chunk:
        yield chunk


class RateLimiter:
    """At most `rate` letters a second on average (a job's own pace, from its start)."""

    def __init__(self, rate: int, *, clock=time.monotonic, sleep=time.sleep):
        self.rate, self.clock, self.sleep = max(rate, 1), clock, sleep
        self.start = clock()
        self.count = 0

    def take(self, n: int) -> None:
        due = self.start + self.count / self.rate
        wait = due - self.clock()
        if wait > 0:
            self.sleep(wait)
        self.count += n


def _send(queue_url: str, entries: list[dict], *, job_id, sleep=time.sleep) -> tuple[set, dict]:
    """Sends entries; returns (ids sent, {id: error} refused for good). Retries transient
    failures with backoff for up to REPLAY_AWS_MAX_WAIT_SECONDS, then AwsUnavailable."""
    sqs = aws.sqs()
    sent: set = set()
    refused: dict = {}
    pending = list(entries)
    delay, waited = 0.5, 0.0
    while pending:
        failed_now = []
        try:
            for chunk in _chunks(pending):
                answer = sqs.send_message_batch(QueueUrl=queue_url, Entries=chunk)
                sent.update(e["Id"] for e in answer.get("Successful", []))
                by_id = {e["Id"]: e for e in chunk}
                for failure in answer.get("Failed", []):
                    if failure.get("SenderFault"):
                        refused[failure["Id"]] = failure.get("Message") or failure.get("Code")
                    else:
                        failed_now.append(by_id[failure["Id"]])
        except (BotoCoreError, ClientError) as exc:
            code = getattr(exc, "response", {}).get("Error", {}).get("Code", "")
            if code in ("AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"):
                raise
            logger.warning("replay job %s: SQS unavailable (%s), retrying", job_id, exc)
            failed_now = [e for e in pending if e["Id"] not in sent and e["Id"] not in refused]
        pending = failed_now
        if pending:
            if waited >= settings.REPLAY_AWS_MAX_WAIT_SECONDS:
                raise AwsUnavailable(f"SQS unavailable for {waited:.0f} s")
            sleep(delay)
            waited += delay
            delay = min(delay * 2, 30)
    return sent, refused


def _send_ordered(entries: list[dict], *, job_id, sleep=time.sleep) -> tuple[set, dict]:
    """Sends ordered entries (in the order given) in rounds of one entry per message group,
    so that a refused entry has nothing of its key sent after it; the key's later entries are
    then refused too. Returns (ids sent, {id: error})."""
    queues: dict[str, deque] = {}
    for entry in entries:
        queues.setdefault(entry["MessageGroupId"], deque()).append(entry)
    sent: set = set()
    refused: dict = {}
    while any(queues.values()):
        heads = [q[0] for q in queues.values() if q]
        by_queue: dict[str, list[dict]] = {}
        for entry in heads:
            body = {k: v for k, v in entry.items() if k != "QueueUrl"}
            by_queue.setdefault(entry["QueueUrl"], []).append(body)
        for url, round_entries in by_queue.items():
            ok, bad = _send(url, round_entries, job_id=job_id, sleep=sleep)
            sent |= ok
            refused.update(bad)
        for q in queues.values():
            if not q:
                continue
            head = q.popleft()
            if head["Id"] in refused:
                for later in q:
                    refused[later["Id"]] = "an earlier letter of its key was refused"
                q.clear()
    return sent, refused


def _one_runner(job_id):
    """One runner per job (a resume kick may find it still running). A session advisory
    lock dies with its connection, so a killed worker's job can be resumed at once."""
    return locks.try_session_lock("replay-job", job_id)


def replay_job_run(*, tenant: Tenant, job_id, sleep=time.sleep, clock=time.monotonic) -> str:
    """Runs (or resumes) a job unless another worker is running it; returns its status."""
    with _one_runner(job_id) as mine:
        if not mine:
            return "busy"
        return _run(tenant=tenant, job_id=job_id, sleep=sleep, clock=clock)


def _run(*, tenant: Tenant, job_id, sleep, clock) -> str:
    """Runs (or resumes) a job in the active tenant schema; returns its final status.

    Per batch: (1) fix each letter's replay number (`numbers`) and save it; (2) send; (3) save
    the letters as replayed and the cursor. A kill after (2) resends the batch with the same
    numbers and the same entry ids: the egress's idempotency on (delivery_id, replay, attempt)
    absorbs it.
    """
    with transaction.atomic():
        job = ReplayJob.objects.select_for_update().filter(pk=job_id).first()
        if job is None or not job.is_active:
            return job.status if job else "gone"
        job.status = JobStatus.RUNNING
        job.started_at = job.started_at or timezone.now()
        job.updated_at = timezone.now()
        job.save(update_fields=["status", "started_at", "updated_at"])
        replay_counts.replay_jobs_recount(tenant_id=tenant.pk)
    consumer = Consumer.objects.filter(pk=job.consumer_id).first()
    if consumer is None or not consumer.enabled:
        _fail(
            job,
            "the consumer was deleted or disabled; its letters are pending again",
            tenant_id=tenant.pk,
        )
        return JobStatus.FAILED
    tenant = Tenant.objects.select_related("tier").get(pk=tenant.pk)
    tenant_id = str(tenant.pk)
    ordered = list(tenant.ordered_queues or [])
    limiter = RateLimiter(job.rate_per_second, clock=clock, sleep=sleep)
    while True:
        with transaction.atomic():
            job = ReplayJob.objects.select_for_update().get(pk=job.pk)
            if job.status != JobStatus.RUNNING:
                return job.status  # cancelled between batches
            batch = list(
                DeadLetter.objects.select_for_update()
                .filter(last_job=job, status=LetterStatus.REPLAYING)
                # In the order they were dead-lettered: an ordered key's letters in key order.
                .order_by("dead_lettered_at", "id")[:SQS_BATCH]
            )
            if not batch:
                job.status = JobStatus.COMPLETED
                job.finished_at = job.updated_at = timezone.now()
                job.save()
                replay_counts.replay_jobs_recount(tenant_id=tenant_id)
                return job.status
            _fix_numbers(batch)
        queue_url = _queue_for(tenant)
        if queue_url is None:
            _fail(job, "the tenant has no delivery queue", tenant_id=tenant_id)
            return JobStatus.FAILED
        limiter.take(len(batch))
        entries, unreadable = [], {}
        for letter in batch:
            try:
                entries.append(_entry(tenant_id, letter, ordered_queues=ordered))
            except (secrets.SecretError, ValueError) as exc:
                unreadable[letter.pk.hex] = f"payload unreadable: {type(exc).__name__}"
        plain = [e for e in entries if "MessageGroupId" not in e]
        sent, refused = (
            _send(queue_url, plain, job_id=job.pk, sleep=sleep) if plain else (set(), {})
        )
        more_sent, more_refused = _send_ordered(
            [e for e in entries if "MessageGroupId" in e], job_id=job.pk, sleep=sleep
        )
        sent |= more_sent
        refused.update(more_refused)
        refused.update(unreadable)
        _save_batch(job, batch, sent=sent, refused=refused)


def _fix_numbers(batch: list[DeadLetter]) -> None:
    """Gives each letter without one its replay number from the allocator the delivery resend
    shares, saved in the batch's transaction before the send: a resend of the batch after a
    crash carries the same numbers, and a resend of the delivery never takes one of them."""
    fixed = [letter for letter in batch if letter.replay_number is None]
    if not fixed:
        return
    numbers = replay_numbers_allocate(
        floors={letter.delivery_id: letter.replay_floor() for letter in fixed}
    )
    for letter in fixed:
        letter.replay_number = numbers[letter.delivery_id]
    DeadLetter.objects.bulk_update(fixed, ["replay_number"])


def _save_batch(job: ReplayJob, batch: list[DeadLetter], *, sent: set, refused: dict) -> None:
    now = timezone.now()
    with transaction.atomic():
        job = ReplayJob.objects.select_for_update().get(pk=job.pk)
        done, failed = [], []
        for letter in batch:
            if letter.pk.hex in sent:
                letter.status = LetterStatus.REPLAYED
                letter.replay_count = max(letter.replay_count, letter.replay_number)
                letter.history = [
                    *letter.history,
                    {
                        "event": "replayed",
                        "at": now.isoformat(),
                        "replay": letter.replay_number,
                        "job": str(job.pk),
                    },
                ]
                letter.replay_number = None
                done.append(letter)
            else:
                letter.status = LetterStatus.PENDING
                letter.history = [
                    *letter.history,
                    {
                        "event": "replay_failed",
                        "at": now.isoformat(),
                        "job": str(job.pk),
                        "error": str(refused.get(letter.pk.hex, "not sent"))[:300],
                    },
                ]
                failed.append(letter)
            letter.updated_at = now
        DeadLetter.objects.bulk_update(
            done + failed, ["status", "replay_count", "replay_number", "history", "updated_at"]
        )
        job.sent += len(done)
        job.failed += len(failed)
        if failed:
            job.error = f"{len(failed)} letters refused by SQS (last: {refused and list(refused.values())[-1]})"[
                :2000
            ]
        job.cursor = str(batch[-1].pk)
        job.updated_at = now
        job.save()


def replay_job_fail(*, job_id, error: str) -> None:
    job = ReplayJob.objects.filter(pk=job_id).first()
    if job is not None:
        _fail(job, error)
