"""Transactional outbox: events are written with the state change and published after commit.

`enqueue` (writing.py) adds a row in the caller's transaction. `OutboxRelay` (relay.py)
publishes committed rows to Kafka, in id order per key, deletes them once sent, and
survives restarts: a row is only deleted after the broker acknowledged it (acks=all), so
a crash between the two publishes it again, which consumers absorb through their inbox.
On PostgreSQL a commit hands the rows it wrote straight to this process's relay
(handoff.py): statements that write outbox rows themselves use `leased_insert_sql` or
`lease_columns` with `lease_values(taker_for(session))`, and `hand_over` what they leased.
How several relays share one outbox, and why a claim is a heartbeat-renewed lease, is
told in relay.py.
"""

from services.common.outbox.handoff import (
    OUTBOX_COLUMNS,
    Taker,
    lease_columns,
    lease_values,
    leased_insert_sql,
    leased_result_sql,
    taker_for,
)
from services.common.outbox.relay import OutboxRelay
from services.common.outbox.writing import (
    OutboxRow,
    PublishFn,
    enqueue,
    enqueue_all,
    enqueue_outgoing,
    hand_over,
    heard_from_elsewhere,
    mark_enqueued,
    notify_relays,
    outbox_row,
    pending_count,
    watch_commits,
)

__all__ = [
    "OUTBOX_COLUMNS",
    "OutboxRelay",
    "OutboxRow",
    "PublishFn",
    "Taker",
    "enqueue",
    "enqueue_all",
    "enqueue_outgoing",
    "hand_over",
    "heard_from_elsewhere",
    "lease_columns",
    "lease_values",
    "leased_insert_sql",
    "leased_result_sql",
    "mark_enqueued",
    "notify_relays",
    "outbox_row",
    "pending_count",
    "taker_for",
    "watch_commits",
]
