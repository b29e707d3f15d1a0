"""The submission's writes on PostgreSQL: one statement, built once, sent through asyncpg.

A new notice is its row, version 1, its audit entry and its notice.received event in
the outbox (with the NOTIFY that wakes the relays on commit). Here they go as one
statement of data-modifying CTEs that first looks the source's reference up: when the
reference is already taken, nothing is written and the statement answers with that
notice's id, so the submission needs no separate look-up round trip. The caller holds
the reference's advisory lock (guards.begin_write), so no other transaction can insert
the same reference between the look-up and the INSERTs; the unique constraint on
(source_key, reference) stays the last word.

The outbox row is the one `services.common.outbox.enqueue` writes (its `_row`), and the
commit wakes this process's relays as enqueue's does (`_DIRTY`), so the relay cannot
tell the two apart. SQLite keeps the SQLAlchemy path (repository.NoticeRepository).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.cloudevents import new_event
from services.common.messaging import outbox_messages
from services.common.outbox.writing import _DIRTY, _NOTIFY_CHANNEL, _row
from services.intake.audit import AuditTrail
from services.intake.direct import DirectStatement
from services.intake.domain import Transition
from services.intake.tables import audit_pending, notice_versions, notices

__all__ = ["insert_new_notice", "lock_statement"]

# (notice columns, version columns, audit columns, outbox columns) -> its statement.
_NEW_NOTICE: dict[tuple[tuple[str, ...], ...], DirectStatement] = {}
_LOCKS: dict[int, DirectStatement] = {}

_PREFIXES = ("n", "v", "a", "o")
_TABLES = (notices, notice_versions, audit_pending, outbox_messages)


def _new_notice(columns: tuple[tuple[str, ...], ...]) -> sa.Executable:
    existing = (
        sa.select(notices.c.id)
        .where(
            notices.c.source_key == sa.bindparam("source_key", type_=notices.c.source_key.type),
            notices.c.reference == sa.bindparam("reference", type_=notices.c.reference.type),
        )
        .cte("existing")
    )
    absent = ~sa.exists(sa.select(existing.c.id))
    writes = []
    for prefix, table, names in zip(_PREFIXES, _TABLES, columns, strict=True):
        values = sa.select(
            *(sa.bindparam(f"{prefix}_{name}", type_=table.c[name].type) for name in names)
        ).where(absent)
        writes.append(sa.insert(table).from_select(list(names), values))
    # The outbox INSERT says whether it wrote: one NOTIFY, only then.
    outbox = writes.pop().returning(sa.literal(1).label("one")).cte("w_outbox")
    notify = sa.func.pg_notify(
        sa.bindparam("channel", type_=sa.String()) + sa.func.current_schema(), ""
    )
    return sa.select(
        sa.select(existing.c.id).scalar_subquery().label("existing_id"),
        sa.select(notify).select_from(outbox).limit(1).scalar_subquery().label("notified"),
    ).add_cte(
        *(write.cte(f"w_{p}") for p, write in zip(_PREFIXES[:-1], writes, strict=True)), outbox
    )


async def insert_new_notice(
    session: AsyncSession, transition: Transition, *, now: datetime, event_source: str
) -> str | None:
    """Write a new notice's transition unless its reference exists; that notice's id then."""
    if not transition.created or transition.version is None or transition.event is None:
        raise ValueError("insert_new_notice takes a new notice's transition")
    notice = transition.notice
    outgoing = new_event(transition.event, source=event_source)
    rows: Sequence[Mapping[str, Any]] = (
        notice.values(),
        transition.version.values(),
        AuditTrail.entry_values(transition.audit, now=now),
        _row(outgoing, datetime.now(UTC)),
    )
    columns = tuple(tuple(row) for row in rows)
    statement = _NEW_NOTICE.get(columns)
    if statement is None:
        statement = _NEW_NOTICE.setdefault(columns, DirectStatement(lambda: _new_notice(columns)))
    values: dict[str, Any] = {
        "source_key": notice.source_key,
        "reference": notice.reference,
        "channel": _NOTIFY_CHANNEL + "_",
    }
    for prefix, row in zip(_PREFIXES, rows, strict=True):
        values.update({f"{prefix}_{name}": value for name, value in row.items()})
    found = await statement.fetchrow(session, values)
    existing_id: str | None = found["existing_id"] if found is not None else None
    if existing_id is None:
        session.sync_session.info[_DIRTY] = True
    return existing_id


def lock_statement(count: int) -> DirectStatement:
    """`SELECT pg_advisory_xact_lock($1), ...` for `count` ids, taken in the order given."""
    statement = _LOCKS.get(count)
    if statement is None:
        statement = _LOCKS.setdefault(
            count,
            DirectStatement(
                lambda: sa.select(
                    *(
                        sa.func.pg_advisory_xact_lock(sa.bindparam(f"id_{n}", type_=sa.BigInteger))
                        for n in range(count)
                    )
                )
            ),
        )
    return statement
