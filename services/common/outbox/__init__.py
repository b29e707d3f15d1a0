"""Transactional outbox: events are written with the state change and published after commit.

`enqueue` (writing.py) adds a row in the caller's transaction. `OutboxRelay` (relay.py)
publishes committed rows to Kafka, in id order per key, marks them sent, and survives
restarts: a row is only marked sent after the broker acknowledged it (acks=all), so a
crash between the two publishes it again, which consumers absorb through their inbox.
How several relays share one outbox, and why a claim is a heartbeat-renewed lease, is
told in relay.py.
"""

from services.common.outbox.relay import OutboxRelay
from services.common.outbox.writing import (
    OutboxRow,
    PublishFn,
    enqueue,
    enqueue_all,
    enqueue_outgoing,
    mark_enqueued,
    notify_relays,
    outbox_row,
    pending_count,
    watch_commits,
)

__all__ = [
    "OutboxRelay",
    "OutboxRow",
    "PublishFn",
    "enqueue",
    "enqueue_all",
    "enqueue_outgoing",
    "mark_enqueued",
    "notify_relays",
    "outbox_row",
    "pending_count",
    "watch_commits",
]
