"""Where a notice's way to the SPOC's webhook spends its time, read back after a phase.

Every step leaves a timestamp on this one machine's wall clock, so after a rate phase the
benchmark reads them per notice and reports each leg's percentiles:

    post      the bench writes POST /v1/notices to intake's socket, the request built
              first (before the tenth round: just before httpx's post)
    enqueued  intake stamps the notice (`received_at`: the submission's clock reading just
              before its one statement, which writes the notice.received outbox row;
              before the eleventh round the outbox row's own `created_at`, a few µs later)
    sent      intake's relay hands notice.received to the producer (the record's Kafka
              timestamp; before the eleventh round the row's `sent_at`, stamped once Kafka
              had acknowledged it, acks=all: the relay now deletes the row instead, so the
              ack's round trip moved from enqueued -> sent into sent -> consumed).
              Kafka keeps whole milliseconds, truncated: this stamp is on average
              0.5 ms before the hand-over, so enqueued -> sent reads ~0.5 ms short
              and sent -> consumed ~0.5 ms long (the twenty-fourth round)
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
itself counts in the following leg (enqueued -> sent: commit, hand-over to the relay,
the producer; accepted -> webhook: commit, the delivery engine's wake-up, its claim,
the HTTP POST).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer
from sqlalchemy.engine import make_url

from benchmarks.hot_path.load import percentile
from schemas.topics import NOTICES

__all__ = ["LEGS", "path_breakdown", "wait_for_projection"]

LEGS = (
    ("post", "enqueued"),
    ("enqueued", "sent"),
    ("sent", "consumed"),
    ("consumed", "handled"),
    ("handled", "accepted"),
    ("accepted", "webhook"),
)

# One row per notice: intake's notice, router's inbox claim of its notice.received (the
# message id read from the topic: the outbox row is deleted once Kafka has it), and the
# alert's first webhook delivery record.
_QUERY = """
SELECT m.notice_id, n.received_at AS enqueued,
       (SELECT min(i.processed_at) FROM router.inbox_messages AS i
         WHERE i.message_id = m.message_id) AS consumed,
       (SELECT min(a.triggered_at) FROM router.alerts AS a
         WHERE a.notice_id = m.notice_id) AS handled,
       (SELECT min(d.created_at) FROM router.delivery_records AS d
          JOIN router.alerts AS a ON d.aggregate_id = a.id
         WHERE a.notice_id = m.notice_id AND d.channel = 'webhook') AS accepted
  FROM unnest($1::text[], $2::text[]) AS m(notice_id, message_id)
  JOIN intake.notices AS n ON n.id = m.notice_id
"""


def _seconds(value: datetime | None) -> float | None:
    return None if value is None else value.timestamp()


async def _received_records(bootstrap: str, notice_ids: set[str]) -> dict[str, tuple[str, float]]:
    """Per notice, its notice.received's message id and Kafka timestamp (seconds): the
    topic read from its beginning to its end as it is now."""
    # No group: every partition is assigned to this consumer once metadata arrives.
    consumer = AIOKafkaConsumer(
        NOTICES, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest"
    )
    await consumer.start()
    found: dict[str, tuple[str, float]] = {}
    try:
        # aiokafka signals no group-less assignment: look until the metadata came in.
        deadline = asyncio.get_running_loop().time() + 30
        while not consumer.assignment():
            if asyncio.get_running_loop().time() > deadline:
                return found
            await asyncio.sleep(0.05)
        partitions = list(consumer.assignment())
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        while [tp for tp in partitions if await consumer.position(tp) < ends[tp]]:
            batch = await consumer.getmany(timeout_ms=1000)
            for records in batch.values():
                for record in records:
                    headers = dict(record.headers)
                    notice_id = record.key.decode() if record.key else ""
                    if headers.get("ce_type") == b"notice.received" and notice_id in notice_ids:
                        # The first copy: a relay's crash may have published it twice.
                        found.setdefault(
                            notice_id, (headers["ce_id"].decode(), record.timestamp / 1000)
                        )
    finally:
        await consumer.stop()
    return found


async def path_breakdown(
    database_url: str,
    bootstrap: str,
    *,
    posted: Mapping[str, float],
    arrived: Mapping[str, float],
) -> dict[str, Any]:
    """Per leg, p50/p90/max in ms over the notices that reached the webhook."""
    done = [notice_id for notice_id in posted if notice_id in arrived]
    if not done:
        return {}
    records = await _received_records(bootstrap, set(done))
    dsn = make_url(database_url).set(drivername="postgresql").render_as_string(False)
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            _QUERY, list(records), [message_id for message_id, _sent in records.values()]
        )
    finally:
        await conn.close()
    legs: dict[str, list[float]] = {f"{a}->{b}": [] for a, b in LEGS}
    for row in rows:
        notice_id = row["notice_id"]
        stamps = {
            "post": posted[notice_id],
            "enqueued": _seconds(row["enqueued"]),
            "sent": records[notice_id][1],
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


_PROJECTED = "SELECT count(*) FROM rumor_control.notices WHERE notice_id = ANY($1::text[])"


async def wait_for_projection(
    database_url: str, notice_ids: list[str], *, timeout_s: float
) -> tuple[float, int]:
    """Wait until rumor_control has projected the phase's notices (its CPU for them is
    then inside the phase's window, even when it ran behind the alerts); return the
    seconds waited and how many were still missing when the wait ended."""
    dsn = make_url(database_url).set(drivername="postgresql").render_as_string(False)
    conn = await asyncpg.connect(dsn)
    loop = asyncio.get_running_loop()
    began = loop.time()
    try:
        while True:
            missing = len(notice_ids) - int(await conn.fetchval(_PROJECTED, notice_ids))
            waited = loop.time() - began
            if missing <= 0 or waited >= timeout_s:
                return waited, max(missing, 0)
            await asyncio.sleep(0.2)
    finally:
        await conn.close()
