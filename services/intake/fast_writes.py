"""The submission's writes on PostgreSQL: one statement, built once, sent through asyncpg.

A new notice is its row, version 1, its audit entry and its notice.received event in
the outbox (with the NOTIFY that wakes the relays on commit). Here they go as one
statement of data-modifying CTEs that first looks the source's reference up: when the
reference is already taken, nothing is written and the statement answers with that
notice's id, so the submission needs no separate look-up round trip. No lock is needed
for the reference: when a concurrent request inserts the same reference first, this
INSERT waits on the unique index (source_key, reference) and, once the other commits,
writes nothing (ON CONFLICT DO NOTHING); a second look-up, in a new snapshot, then finds
the other's notice. Either way the request answers like a retry, never with an error.

The outbox row is the one `services.common.outbox.enqueue` writes (`outbox_row`), with
its NOTIFY (`notify_relays`), leased to this process's relay as enqueue's are
(`lease_columns`), and handed to it at commit (`hand_over`), so the relay cannot tell the
two apart. SQLite keeps the SQLAlchemy
path (repository.NoticeRepository).

`insert_new_notice_alone` is the same statement as a unit of work's whole write when that
unit of work opened no session (a plain submission, unit_of_work.py): autocommitted on a
borrowed connection, its hand-over noted for the unit of work's commit
(`services.common.db.SessionlessCommit`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from services.common.cloudevents import new_event
from services.common.db import SessionlessCommit, fetchrow_borrowed
from services.common.direct import DirectStatement
from services.common.messaging import outbox_messages
from services.common.outbox import (
    Taker,
    hand_over,
    lease_columns,
    lease_values,
    notify_relays,
    outbox_row,
    taker_for,
)
from services.intake.audit import AuditTrail
from services.intake.domain import Transition
from services.intake.grouped_writes import GroupedWrites
from services.intake.tables import audit_pending, notice_versions, notices

__all__ = ["insert_new_notice", "insert_new_notice_alone", "lock_statement"]

# (notice columns, version columns, audit columns, outbox columns) -> its statements.
_SHAPES: dict[tuple[tuple[str, ...], ...], _Shape] = {}
_LOCKS: dict[int, DirectStatement] = {}

_PREFIXES = ("n", "v", "a", "o")
_TABLES = (notices, notice_versions, audit_pending, outbox_messages)


# A new notice's row repeats its first version's releasable fields, id and time, and its
# audit entry the version's id and actor (`transitions.receive` and `AuditTrail` copy
# them): each such column -> the parameter whose value it repeats. Where the values are
# the very same objects the column takes that parameter (one `$n` in the SQL, as
# SQLAlchemy renders a name used twice), so the statement carries ~18 fewer values for
# intake to process and asyncpg to encode, and PostgreSQL to read. Only between columns
# of the same SQL type, so the one parameter's type is right for both.
_MIRRORS: dict[str, str] = {
    "n_id": "v_notice_id",
    "n_source_key": "source_key",
    "n_reference": "reference",
    **{
        f"n_{name}": f"v_{name}"
        for name in (
            "status",
            "received_via",
            "operation_type",
            "public_safety_nexus",
            "window_start",
            "window_end",
            "area",
            "area_code",
            "summary",
            "sent_at",
            "received_at",
            "cancel_reason",
        )
    },
    "n_updated_at": "v_received_at",
    "a_notice_id": "v_notice_id",
    "a_actor_token_id": "v_actor_token_id",
}


class _RepeatedJSON(sa.types.TypeDecorator[Any]):
    """A JSON column whose values are mostly the same few objects: a first version's empty
    references (`()`, one object in CPython) and the policy's statements, one shared tuple
    per combination of facts (`Policy.annotation_values`). Each object's JSON text is kept
    (by identity: the object is held with it, so its id is not reused) and bound again, not
    encoded again for each submission (~5 us alone). The text is the JSON type's own."""

    impl = sa.JSON
    cache_ok = True

    def bind_processor(self, dialect: sa.Dialect) -> Callable[[Any], Any] | None:
        encode = self.impl_instance.dialect_impl(dialect).bind_processor(dialect)
        if encode is None:
            return None

        def process(value: Any) -> Any:
            kept = _encoded.get(id(value))
            if kept is not None and kept[0] is value:
                return kept[1]
            text = encode(value)
            if len(_encoded) >= _ENCODED_MAX:
                _encoded.clear()
            _encoded[id(value)] = (value, text)
            return text

        return process


# id -> (the value, its JSON text); bounded: later versions' references are each new.
_encoded: dict[int, tuple[Any, Any]] = {}
_ENCODED_MAX = 64
# The version's columns bound as the version holds them (tuples), through `_RepeatedJSON`.
_REPEATED = ("version_refs", "policy_annotations")


def _values(
    prefix: str, table: sa.Table, names: tuple[str, ...], bound_once: frozenset[str]
) -> sa.Select[Any]:
    def parameter(name: str) -> str:
        key = f"{prefix}_{name}"
        return _MIRRORS[key] if key in bound_once else key

    def bound(name: str) -> sa.BindParameter[Any]:
        repeated = prefix == "v" and name in _REPEATED
        return sa.bindparam(
            parameter(name), type_=_RepeatedJSON() if repeated else table.c[name].type
        )

    return sa.select(*(bound(name) for name in names))


def _new_notice(columns: tuple[tuple[str, ...], ...], bound_once: frozenset[str]) -> sa.Executable:
    existing = (
        sa.select(notices.c.id)
        .where(
            notices.c.source_key == sa.bindparam("source_key", type_=notices.c.source_key.type),
            notices.c.reference == sa.bindparam("reference", type_=notices.c.reference.type),
        )
        .cte("existing")
    )
    notice_names, *other_names = columns
    # No row when the reference is taken: already (seen by `existing`), or by a
    # transaction that commits while this one waits on the unique index.
    notice = (
        postgresql.insert(notices)
        .from_select(
            list(notice_names),
            _values("n", notices, notice_names, bound_once).where(
                ~sa.exists(sa.select(existing.c.id))
            ),
        )
        .on_conflict_do_nothing(constraint="uq_notices_source_reference")
        .returning(notices.c.id)
        .cte("w_n")
    )
    # The version, audit entry and event only with the notice's row.
    version, audit, outbox = (
        sa.insert(table).from_select(
            list(names), _values(prefix, table, names, bound_once).select_from(notice)
        )
        for prefix, table, names in zip(_PREFIXES[1:], _TABLES[1:], other_names, strict=True)
    )
    # The event leased to this process's relay unless its key has a row waiting.
    outbox_names = other_names[-1]
    key = sa.bindparam("o_key", type_=outbox_messages.c.key.type)
    outbox = sa.insert(outbox_messages).from_select(
        [*outbox_names, "claimed_by", "claimed_until"],
        _values("o", outbox_messages, outbox_names, bound_once)
        .add_columns(*lease_columns(key))
        .select_from(notice),
    )
    # The outbox INSERT says whether it wrote (one NOTIFY, only then) and what it leased.
    outboxed = outbox.returning(outbox_messages.c.id, outbox_messages.c.claimed_by).cte("w_o")
    # Its one row handed to this process's relay: other processes' relays need no claim.
    notify = notify_relays(handed=outboxed.c.claimed_by.is_not(None))
    return sa.select(
        sa.select(existing.c.id).scalar_subquery().label("existing_id"),
        sa.select(sa.func.count()).select_from(notice).scalar_subquery().label("written"),
        sa.select(notify).select_from(outboxed).limit(1).scalar_subquery().label("notified"),
        sa.select(outboxed.c.id)
        .where(outboxed.c.claimed_by.is_not(None))
        .scalar_subquery()
        .label("leased_id"),
    ).add_cte(notice, version.cte("w_v"), audit.cte("w_a"), outboxed)


def _prepared(
    transition: Transition, *, now: datetime, event_source: str, taker: Taker | None
) -> tuple[DirectStatement, dict[str, Any], Mapping[str, Any], str]:
    """The statement, its values, the outbox row and the event's message id."""
    if not transition.created or transition.version is None or transition.event is None:
        raise ValueError("insert_new_notice takes a new notice's transition")
    notice = transition.notice
    outgoing = new_event(transition.event, source=event_source)
    rows: Sequence[Mapping[str, Any]] = (
        notice.values(),
        transition.version.values(),
        AuditTrail.entry_values(transition.audit, now=now),
        outbox_row(outgoing, datetime.now(UTC)),
    )
    columns = tuple(tuple(row) for row in rows)
    shape = _SHAPES.get(columns)
    if shape is None:
        shape = _SHAPES.setdefault(columns, _Shape(columns))
    values: dict[str, Any] = {
        "source_key": notice.source_key,
        "reference": notice.reference,
        **lease_values(taker),
    }
    for keys, row in zip(shape.keys, rows, strict=True):
        values.update(zip(keys, row.values(), strict=True))
    version = transition.version
    for name in _REPEATED:  # the shared objects themselves, not the row's copies
        values[f"v_{name}"] = getattr(version, name)
    once = [key for key, original in shape.mirrors if values[key] is values[original]]
    for key in once:
        del values[key]
    return shape.statement(once), values, rows[-1], outgoing.message_id


class _Shape:
    """What the statement of one set of columns needs, worked out once: each row's
    parameter names, the mirrored ones (`_MIRRORS`) and a statement per set bound once."""

    def __init__(self, columns: tuple[tuple[str, ...], ...]) -> None:
        self.columns = columns
        self.keys = tuple(
            tuple(f"{prefix}_{name}" for name in names)
            for prefix, names in zip(_PREFIXES, columns, strict=True)
        )
        self.mirrors = tuple(
            (key, _MIRRORS[key]) for keys in self.keys for key in keys if key in _MIRRORS
        )
        self._statements: dict[tuple[str, ...], DirectStatement] = {}

    def statement(self, once: list[str]) -> DirectStatement:
        key = tuple(once)
        found = self._statements.get(key)
        if found is None:
            bound_once = frozenset(once)
            found = self._statements.setdefault(
                key, DirectStatement(lambda: _new_notice(self.columns, bound_once))
            )
        return found


def _hand_over(
    session: AsyncSession, taker: Taker | None, row: Mapping[str, Any], message_id: str, found: Any
) -> None:
    leased = None if found["leased_id"] is None else [found["leased_id"]]
    hand_over(session, taker, [row], leased, None if leased is None else [message_id])


async def insert_new_notice(
    session: AsyncSession,
    transition: Transition,
    *,
    now: datetime,
    event_source: str,
    lone: bool = False,
) -> str | None:
    """Write a new notice's transition unless its reference exists; that notice's id then.

    `lone`: this statement is the unit of work's only write (see direct.py).
    """
    taker = taker_for(session)
    statement, values, row, message_id = _prepared(
        transition, now=now, event_source=event_source, taker=taker
    )
    found = await statement.fetchrow(session, values, lone=lone)
    if found["written"]:
        _hand_over(session, taker, row, message_id, found)
        return None
    if found["existing_id"] is not None:
        return str(found["existing_id"])
    # Taken by a transaction that committed while this statement ran: a new statement
    # (a new snapshot) sees it.
    notice = transition.notice
    taken = await session.execute(
        sa.select(notices.c.id).where(
            notices.c.source_key == notice.source_key, notices.c.reference == notice.reference
        )
    )
    return str(taken.scalar_one())


async def insert_new_notice_alone(
    commit: SessionlessCommit,
    transition: Transition,
    *,
    now: datetime,
    event_source: str,
    writes: GroupedWrites | None = None,
) -> tuple[bool, str | None]:
    """`insert_new_notice` as a unit of work's whole write, with no session: autocommitted on
    a borrowed connection, its outbox hand-over kept for `commit`. Through `writes` (the
    process's, grouped_writes.py) when given: with the submissions waiting for a writer,
    if any, in one round trip and one commit.

    Whether it wrote, and the id of the notice the reference names when it did not (None:
    taken by a transaction that committed while it ran; a new snapshot finds that one).
    """
    stand_in = commit.stand_in
    taker = taker_for(stand_in)
    statement, values, row, message_id = _prepared(
        transition, now=now, event_source=event_source, taker=taker
    )
    engine = stand_in.bind
    assert isinstance(engine, AsyncEngine)  # a session of the unit of work's factory
    compiled = statement.compiled(engine.dialect)
    arguments = compiled.arguments(values)
    notice = transition.notice
    found = await (
        fetchrow_borrowed(engine, compiled.sql, arguments)
        if writes is None
        else writes.fetchrow(compiled.sql, arguments, order=(notice.source_key, notice.reference))
    )
    if found["written"]:
        commit.note(lambda session: _hand_over(session, taker, row, message_id, found))
        return True, None
    existing = found["existing_id"]
    return False, None if existing is None else str(existing)


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
