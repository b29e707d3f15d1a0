"""Where a notice's way to the SPOC's webhook spends its time, read back after a phase.

Every step leaves a timestamp on this one machine's wall clock, so after a rate phase the
benchmark reads them per notice and reports each leg's percentiles:

    post      the bench writes POST /v1/notices to intake's socket, the request built
              first (before the tenth round: just before httpx's post)
    enqueued  intake writes the notice.received outbox row (inside its transaction)
    sent      intake's relay marks the row sent (after Kafka acknowledged it, acks=all)
    consumed  router's consumer claims the message in its inbox (its transaction starts)
    handled   router's handler starts opening the alert (the alert's triggered_at, read
              from the clock as the use case begins: after the inbox claim's round trips
              and, in a batch, after the messages before it)
    accepted  router accepts the webhook delivery (inside the alert's transaction; since
              the tenth round the engine stamps it before router's opening statement,
              which carries the accept on PostgreSQL, so that statement's round trip
              counts in accepted -> webhook, not in handled -> accepted as before)
    webhook   the SPOC's webhook sink has read the POST's last byte (a process of its
              own since the ninth round, `sink.py`; before, a thread of the bench that
              stamped after reading and verifying, sharing the load generator's GIL)

`enqueued` and `accepted` are stamped before their transactions commit, so the commit
itself counts in the following leg (enqueued -> sent: commit, NOTIFY, the relay's claim,
the produce round; accepted -> webhook: commit, the delivery engine's wake-up, its claim,
the HTTP POST).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url

from benchmarks.hot_path.load import percentile

__all__ = ["LEGS", "path_breakdown"]

LEGS = (
    ("post", "enqueued"),
    ("enqueued", "sent"),
    ("sent", "consumed"),
    ("consumed", "handled"),
    ("handled", "accepted"),
    ("accepted", "webhook"),
)

# One row per notice: intake's outbox row of notice.received, router's inbox claim of that
# message, and the alert's first webhook delivery record.
_QUERY = """
SELECT o.key AS notice_id, o.created_at AS enqueued, o.sent_at AS sent,
       (SELECT min(i.processed_at) FROM router.inbox_messages AS i
         WHERE i.message_id = o.message_id) AS consumed,
       (SELECT min(a.triggered_at) FROM router.alerts AS a WHERE a.notice_id = o.key) AS handled,
       (SELECT min(d.created_at) FROM router.delivery_records AS d
          JOIN router.alerts AS a ON d.aggregate_id = a.id
         WHERE a.notice_id = o.key AND d.channel = 'webhook') AS accepted
  FROM intake.outbox_messages AS o
 WHERE o.event_type = 'notice.received' AND o.key = ANY($1::text[])
"""


def _seconds(value: datetime | None) -> float | None:
    return None if value is None else value.timestamp()


async def path_breakdown(
    database_url: str, *, posted: Mapping[str, float], arrived: Mapping[str, float]
) -> dict[str, Any]:
    """Per leg, p50/p90/max in ms over the notices that reached the webhook."""
    done = [notice_id for notice_id in posted if notice_id in arrived]
    if not done:
        return {}
    dsn = make_url(database_url).set(drivername="postgresql").render_as_string(False)
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(_QUERY, done)
    finally:
        await conn.close()
    legs: dict[str, list[float]] = {f"{a}->{b}": [] for a, b in LEGS}
    for row in rows:
        notice_id = row["notice_id"]
        stamps = {
            "post": posted[notice_id],
            "enqueued": _seconds(row["enqueued"]),
            "sent": _seconds(row["sent"]),
            "consumed": _seconds(row["consumed"]),
            "handled": _seconds(row["handled"]),
            "accepted": _seconds(row["accepted"]),
            "webhook": arrived[notice_id],
        }
        for a, b in LEGS:
            start, end = stamps[a], stamps[b]
            if start is not None and end is not None:
                legs[f"{a}->{b}"].append((end - start) * 1000)
    return {
        leg: {
            "p50": percentile(values, 50),
            "p90": percentile(values, 90),
            "max": max(values) if values else None,
            "n": len(values),
        }
        for leg, values in legs.items()
    }
