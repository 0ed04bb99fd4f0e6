"""Dead-letter actions: replay (preview and start), discard, cancel a replay job.

Views, the API and tasks call these; one place guards the state machines:
letter pending → replaying (a job froze it) → replayed, back to pending if it fails again
(ingest), or discarded; job queued → running → completed / cancelled / failed.
"""

import json
import uuid
from dataclasses import dataclass, field

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Count
from django.utils import timezone

from broker.audit import audit_record
from broker.models import Consumer
from core.audit_actions import AuditAction
from core.errors import ApplicationError
from tenants.models import QUOTA_MAX, Tenant

from . import replay_counts, runner, selectors, tasks
from .models import ACTIVE_JOB_STATUSES, DeadLetter, JobStatus, LetterStatus, ReplayJob

MAX_IDS = 1000
REPLAYABLE = (LetterStatus.PENDING, LetterStatus.REPLAYED)
DISCARDABLE = (LetterStatus.PENDING, LetterStatus.REPLAYED)


# --- selection ----------------------------------------------------------------------------


def _selection(*, ids=None, filter=None, allowed=REPLAYABLE, action: str):
    """The letters a body names, validated: exactly one of ids or filter; ids that are not the
    tenant's are named; letters in a state the action does not take are refused."""
    if (ids is None) == (filter is None):
        raise ApplicationError(
            "Give either ids or filter.",
            fields={"ids": ["Give either ids or filter."]},
        )
    now = timezone.now()
    if ids is not None:
        if len(ids) > MAX_IDS:
            raise ApplicationError(
                f"At most {MAX_IDS} ids; use a filter for more.",
                fields={"ids": [f"At most {MAX_IDS} ids; use a filter for more."]},
            )
        wanted = {str(i) for i in ids}
        parsed = {}
        for raw in wanted:
            try:
                parsed[raw] = uuid.UUID(raw)
            except ValueError:
                parsed[raw] = None
        found = dict(
            DeadLetter.objects.filter(pk__in=[u for u in parsed.values() if u]).values_list(
                "pk", "status"
            )
        )
        unknown = sorted(raw for raw, u in parsed.items() if u is None or u not in found)
        if unknown:
            # Another tenant's letter and no letter at all are answered alike.
            raise ApplicationError(
                "Unknown dead letters.",
                code="unknown_ids",
                fields={"ids": [f"Unknown dead letter: {i}" for i in unknown[:50]]},
            )
        refused = sorted(
            raw
            for raw, u in parsed.items()
            if found[u] not in allowed and found[u] != LetterStatus.REPLAYING
        )
        if refused:
            raise ApplicationError(
                f"These dead letters cannot be {action}: their status does not allow it.",
                code="invalid_status",
                fields={"ids": [f"{i}: {found[parsed[i]]}" for i in refused[:50]]},
            )
        return DeadLetter.objects.filter(pk__in=list(parsed.values()), dead_lettered_at__lte=now)
    clean = selectors.clean_filter(filter)
    statuses = clean.get("status") or list(allowed)
    refused = [s for s in statuses if s not in allowed]
    if refused:
        raise ApplicationError(
            f"Letters with status {', '.join(refused)} cannot be {action}.",
            code="invalid_status",
            fields={"filter": {"status": [f"Allowed: {', '.join(allowed)}."]}},
        )
    # Letters already held by a job match too (unless a status was asked): the caller then
    # answers 409 naming that job rather than an empty selection.
    clean["status"] = statuses if clean.get("status") else [*statuses, LetterStatus.REPLAYING]
    # Frozen: up to the newest letter at this moment.
    return selectors.letters_filtered(clean).filter(dead_lettered_at__lte=now)


def _check_size(count: int) -> None:
    limit = settings.REPLAY_MAX_SELECTION
    if count > limit:
        raise ApplicationError(
            f"The selection holds {count} letters; at most {limit} at once. Narrow the filter.",
            code="selection_too_large",
            fields={"filter": [f"{count} letters; at most {limit}."]},
        )


def _conflict_if_active(consumer_ids) -> None:
    active = (
        ReplayJob.objects.filter(consumer_id__in=list(consumer_ids), status__in=ACTIVE_JOB_STATUSES)
        .order_by("created_at")
        .first()
    )
    if active is not None:
        raise ApplicationError(
            f"Replay job {active.pk} is already active for consumer {active.consumer_id}; "
            "wait for it or cancel it.",
            code="conflict",
            fields={"job": [str(active.pk)]},
            status_code=409,
        )


def _consumers(ids) -> dict[str, Consumer]:
    valid = []
    for raw in ids:
        try:
            valid.append(uuid.UUID(str(raw)))
        except ValueError:
            pass
    return {str(c.pk): c for c in Consumer.objects.filter(pk__in=valid)}


def _by_consumer(qs) -> tuple[dict, dict]:
    """({consumer_id: {name, count, replayable, reason}}, consumers)."""
    counts = dict(qs.order_by().values_list("consumer_id").annotate(n=Count("id")))
    consumers = _consumers(counts)
    out = {}
    for consumer_id, n in sorted(counts.items()):
        consumer = consumers.get(consumer_id)
        reason = ""
        if consumer is None:
            reason = "consumer deleted"
        elif not consumer.enabled:
            reason = "consumer disabled"
        out[consumer_id] = {
            "name": consumer.name if consumer else "",
            "count": n,
            "replayable": not reason,
            "reason": reason,
        }
    return out, consumers


def replay_rate(tenant: Tenant) -> int:
    rate = tenant.effective_quotas().get("replay_rate_per_second") or 50
    return max(1, min(int(rate), QUOTA_MAX["replay_rate_per_second"]))


@dataclass
class ReplayOutcome:
    count: int
    by_consumer: dict
    jobs: list = field(default_factory=list)
    skipped: dict = field(default_factory=dict)


def replay_preview(*, ids=None, filter=None) -> ReplayOutcome:
    """Dry run: what a replay of this selection would send, by consumer. Changes nothing."""
    qs = _selection(ids=ids, filter=filter, action="replayed")
    qs = qs.exclude(status=LetterStatus.REPLAYING)
    by_consumer, _ = _by_consumer(qs)
    count = sum(c["count"] for c in by_consumer.values() if c["replayable"])
    skipped = {k: v for k, v in by_consumer.items() if not v["replayable"]}
    return ReplayOutcome(count=count, by_consumer=by_consumer, skipped=skipped)


@transaction.atomic
def replay_start(*, tenant: Tenant, actor, ids=None, filter=None) -> ReplayOutcome:
    """Freezes the selection into one job per consumer (letters → replaying) and queues them.
    Letters of deleted or disabled consumers are reported and left alone."""
    qs = _selection(ids=ids, filter=filter, action="replayed")
    in_jobs = set(
        qs.filter(status=LetterStatus.REPLAYING).values_list("consumer_id", flat=True).distinct()
    )
    if in_jobs:
        _conflict_if_active(in_jobs)
    qs = qs.exclude(status=LetterStatus.REPLAYING)
    by_consumer, consumers = _by_consumer(qs)
    _check_size(sum(c["count"] for c in by_consumer.values()))
    replayable = [cid for cid, c in by_consumer.items() if c["replayable"]]
    _conflict_if_active(replayable)
    rate = replay_rate(tenant)
    selection = {"ids": [str(i) for i in ids]} if ids is not None else {"filter": filter}
    selection["resolved_at"] = timezone.now().isoformat()
    jobs = []
    for consumer_id in replayable:
        try:
            with transaction.atomic():
                job = ReplayJob.objects.create(
                    consumer_id=consumer_id,
                    consumer_name=consumers[consumer_id].name,
                    selection=selection,
                    rate_per_second=rate,
                    created_by=actor if getattr(actor, "is_authenticated", False) else None,
                    created_by_email=getattr(actor, "email", "") or "",
                )
        except IntegrityError:
            # Another request created one between our check and our insert.
            _conflict_if_active([consumer_id])
            raise
        job.total = (
            qs.filter(consumer_id=consumer_id)
            .select_for_update()
            .update(status=LetterStatus.REPLAYING, last_job=job, updated_at=timezone.now())
        )
        job.save(update_fields=["total"])
        audit_record(
            actor=actor,
            action=AuditAction.DEAD_LETTERS_REPLAY,
            object_type="replay_job",
            object_id=job.pk,
            after={
                "consumer_id": consumer_id,
                "total": job.total,
                "selection": json.dumps(selection, sort_keys=True, default=str)[:2000],
            },
        )
        jobs.append(job)
    skipped = {k: v for k, v in by_consumer.items() if not v["replayable"]}
    if jobs:
        replay_counts.replay_jobs_recount(tenant_id=tenant.pk)
        job_ids = [str(j.pk) for j in jobs]
        transaction.on_commit(lambda: [tasks.replay_job_run.delay(j) for j in job_ids])
    count = sum(j.total for j in jobs)
    return ReplayOutcome(count=count, by_consumer=by_consumer, jobs=jobs, skipped=skipped)


@transaction.atomic
def letters_discard(*, actor, ids=None, filter=None) -> int:
    qs = _selection(ids=ids, filter=filter, allowed=DISCARDABLE, action="discarded")
    in_jobs = set(
        qs.filter(status=LetterStatus.REPLAYING).values_list("consumer_id", flat=True).distinct()
    )
    if in_jobs:
        _conflict_if_active(in_jobs)
    qs = qs.filter(status__in=DISCARDABLE)
    count = qs.count()
    _check_size(count)
    count = qs.select_for_update().update(status=LetterStatus.DISCARDED, updated_at=timezone.now())
    audit_record(
        actor=actor,
        action=AuditAction.DEAD_LETTERS_DISCARD,
        object_type="dead_letter",
        object_id=str(ids[0]) if ids and len(ids) == 1 else "selection",
        after={
            "count": count,
            "selection": json.dumps(
                {"ids": [str(i) for i in ids]} if ids is not None else {"filter": filter},
                sort_keys=True,
                default=str,
            )[:2000],
        },
    )
    return count


@transaction.atomic
def replay_job_cancel(*, actor, job: ReplayJob) -> ReplayJob:
    job = ReplayJob.objects.select_for_update().get(pk=job.pk)
    if not job.is_active:
        raise ApplicationError(
            f"The job is {job.status}: only a queued or running job can be cancelled.",
            code="invalid_status",
            status_code=409,
        )
    released = runner.release(job)
    job.status = JobStatus.CANCELLED
    job.skipped += released
    job.finished_at = job.updated_at = timezone.now()
    job.save()
    replay_counts.replay_jobs_recount()
    audit_record(
        actor=actor,
        action=AuditAction.REPLAY_JOB_CANCEL,
        object_type="replay_job",
        object_id=job.pk,
        after={"sent": job.sent, "released": released},
    )
    return job
