"""Replay numbers: one allocator for the replay jobs and the delivery resend.

The egress's idempotency key is (tenant, delivery id, replay, attempt): a message that comes
back with a key already seen is taken for an SQS duplicate and dropped. So every send of a
delivery again must carry a number no other send of it carried. A counter row per delivery id
(`ReplayCounter`, in the tenant's schema) hands them out:

    INSERT … VALUES (id, floor + 1) ON CONFLICT (delivery_id)
    DO UPDATE SET last = GREATEST(last + 1, floor + 1) RETURNING last

The row lock of the upsert orders concurrent callers (a second one waits for the first's
commit and then counts from its number), and `floor`, the highest number the caller knows of
(the letter's lives and replays, the delivery's recorded attempts), keeps the counter above
numbers handed out before it existed or by the data plane itself.

Numbers are allocated and saved before anything is sent, in the caller's transaction: a replay
job saves them on its letters with its batch, so a batch resent after a crash carries the same
numbers (the egress then absorbs the copy); a resend commits its number before it sends. A
number whose send never happened is simply skipped: gaps are harmless.
"""

from django.db import connection, transaction

from .models import ReplayCounter


def replay_numbers_allocate(*, floors: dict[str, int]) -> dict[str, int]:
    """{delivery_id: floor} → {delivery_id: a number > floor never handed out before for it}.

    Runs in the caller's transaction (a savepoint if there is one): the numbers are the
    caller's once it commits, and free again if it rolls back before sending anything."""
    if not floors:
        return {}
    table = connection.ops.quote_name(ReplayCounter._meta.db_table)
    # One order for every caller: two allocations over overlapping ids cannot deadlock.
    ids = sorted(floors)
    values = ", ".join(["(%s, %s, now())"] * len(ids))
    params = [value for d in ids for value in (d, max(int(floors[d]), 0) + 1)]
    # The table name is the model's and the placeholders are ours: no input in the text.
    sql = (
        f"INSERT INTO {table} AS c (delivery_id, last, updated_at) VALUES {values} "  # noqa: S608
        "ON CONFLICT (delivery_id) DO UPDATE "
        "SET last = GREATEST(c.last + 1, EXCLUDED.last), updated_at = EXCLUDED.updated_at "
        "RETURNING delivery_id, last"
    )
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, params)
        return dict(cursor.fetchall())


def replay_number_allocate(*, delivery_id: str, floor: int) -> int:
    """One number for one delivery (the resend)."""
    return replay_numbers_allocate(floors={delivery_id: floor})[delivery_id]
