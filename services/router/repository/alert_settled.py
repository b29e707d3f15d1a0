"""An outcome batch's writes carried by the delivery engine's settling statement.

Why: a delivered outcome's round on PostgreSQL was BEGIN, the engine's settle (with the
alerts' lean read carried), the guarded change with its timeline entries and events,
COMMIT: four round trips. Here the alerts are read first, autocommitted (the read was
never locked: the change is guarded in SQL, by state and notice version, as before), and
the change, the entries and the events ride in the engine's settling statement
(`SettleCarry`), sent without BEGIN: two round trips, as atomic as the transaction.

A record whose lease was lost is not in the statement's `settled` CTE, and every write
here is conditioned on its record being there: its alert's change (one of the records
that mark it), its timeline entry and its outbox row (by their position in the arrays,
`_n`). So a lost lease writes no note, no event and no change, as in the transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from functools import cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.cloudevents import new_event
from services.common.db import after_commit
from services.common.delivery.records import DeliveryRecord
from services.common.delivery.settle_query import SettleCarry, settle_ctes
from services.common.direct import DirectStatement, driver_connection
from services.common.messaging import outbox_messages
from services.common.outbox import (
    OUTBOX_COLUMNS,
    hand_over,
    lease_values,
    leased_insert_sql,
    leased_result_sql,
    outbox_row,
    taker_for,
)
from services.router.domain import (
    AlertRecord,
    Publication,
    TimelineRecord,
    Transition,
    VersionGuard,
)
from services.router.repository.alert_changes import changed_columns, plain
from services.router.repository.alert_rows import lean_record_of, timeline_values
from services.router.repository.alert_statements import (
    TIMELINE_COLUMNS,
    _array_params,
    _entries_cte,
    _entry_params,
    _lease_params,
    _notify_sql,
    _pg_type,
    _quoted,
    alerts_by_ids_direct,
)
from services.router.tables import alerts, delivery_records

__all__ = [
    "CarriedWrites",
    "Change",
    "carried_writes",
    "lean_alerts_alone",
    "settled_change",
    "settled_change_direct",
]

# A transition's parts this statement writes; one carrying anything else is not carried.
_CARRIED_PARTS = frozenset({"before", "after", "timeline", "events", "guard"})
_OTHER_PARTS = tuple(f.name for f in fields(Transition) if f.name not in _CARRIED_PARTS)

Observer = Callable[[], None]


async def lean_alerts_alone(
    session: AsyncSession, alert_ids: Collection[uuid.UUID]
) -> dict[uuid.UUID, AlertRecord]:
    """`get_many_lean` autocommitted (no BEGIN) when `session` has begun no transaction:
    one round trip on the session's connection, which the carried statement then uses."""
    compiled = alerts_by_ids_direct(lean=True).compiled(session.get_bind().dialect)
    driver = await driver_connection(session, begin=False)
    values = {"alert_ids": sorted(map(str, alert_ids))}
    rows = await driver.fetch(compiled.sql, *compiled.arguments(values))
    return {r.id: r for r in map(lean_record_of, rows)}


# What makes marks one UPDATE: the guard's states, its notice version, the columns set.
Change = tuple[frozenset[str], int, tuple[tuple[str, Any], ...]]


@dataclass(frozen=True)
class CarriedWrites:
    """An outcome batch's writes as the settling statement carries them, each with the
    record it is for: one version-guarded `change` of the alerts in `marks`, the timeline
    `entries` and outbox `events` of notes (no row change), the after-commit `observers`."""

    change: Change | None
    marks: Sequence[tuple[uuid.UUID, DeliveryRecord]]
    entries: Sequence[tuple[uuid.UUID, TimelineRecord, DeliveryRecord]]
    events: Sequence[tuple[Publication, DeliveryRecord]]
    observers: Sequence[tuple[DeliveryRecord, Observer]]


def carried_writes(
    *,
    marks: Sequence[tuple[Transition, DeliveryRecord]],
    notes: Sequence[tuple[Transition, DeliveryRecord]],
    observers: Sequence[tuple[DeliveryRecord, Observer]],
) -> CarriedWrites | None:
    """Decided transitions as `CarriedWrites`: the state changes (version-guarded, one
    change for all: `marks`, each with a record that asks for it) and the notes' entries
    and events. None when the batch is anything else (two different changes, a note that
    changes a row): it then takes the transaction."""
    changes = {_change_key(mark) for mark, _ in marks}
    if len(changes) > 1 or None in changes or not all(_is_note(note) for note, _ in notes):
        return None
    return CarriedWrites(
        change=next(iter(changes), None),
        marks=[(mark.after.id, record) for mark, record in marks],
        entries=[
            (note.after.id, entry, record) for note, record in notes for entry in note.timeline
        ],
        events=[(p, record) for note, record in notes for p in note.events],
        observers=observers,
    )


def settled_change(session: AsyncSession, *, source: str, writes: CarriedWrites) -> SettleCarry:
    """`writes` as a `SettleCarry`: each write, and each observer, only for a record the
    statement settles."""
    params: dict[str, Any] = {}
    names: tuple[str, ...] = ()
    if writes.change is not None and writes.marks:
        states, version, change = writes.change
        names = tuple(name for name, _ in change)
        params.update({f"v_{name}": value for name, value in change})
        params.update(b_states=sorted(states), b_notice_version=version)
        params["m_alerts"] = [str(alert_id) for alert_id, _ in writes.marks]
        params["m_deliveries"] = [str(record.delivery_id) for _, record in writes.marks]
    entries = [
        (timeline_values(alert_id, entry), str(record.delivery_id))
        for alert_id, entry, record in writes.entries
    ]
    params.update({f"t_{n}": [row[n] for row, _ in entries] for n in TIMELINE_COLUMNS})
    params["t_gate"] = [gate for _, gate in entries]
    now = datetime.now(UTC)
    queued = [
        (outbox_row(new_event(p.event, source=source, correlation_id=p.correlation_id), now),
         str(record.delivery_id))
        for p, record in writes.events
    ]  # fmt: skip
    params.update({f"o_{n}": [row[n] for row, _ in queued] for n in OUTBOX_COLUMNS})
    params["o_gate"] = [gate for _, gate in queued]
    taker = taker_for(session)
    params.update(lease_values(taker))
    observers = writes.observers

    def finish(row: Any, held: frozenset[str]) -> None:
        # Only the rows of records settled went in: the others are not handed over.
        written = [queued_row for queued_row, gate in queued if gate in held]
        hand_over(session, taker, written, row["leased_ids"], row["leased_messages"])
        kept = [observe for record, observe in observers if str(record.delivery_id) in held]
        if kept:
            after_commit(session, lambda: _observe_all(kept))

    return SettleCarry(settled_change_direct(names), params, finish)


def _change_key(mark: Transition) -> Change | None:
    """What makes two marks one UPDATE (None: not a plain version-guarded change)."""
    changes = changed_columns(mark)
    guard = mark.guard
    if not isinstance(guard, VersionGuard) or not plain(changes) or mark.before is None:
        return None
    if mark.timeline or mark.events or any(getattr(mark, name) for name in _OTHER_PARTS):
        return None
    return guard.states, guard.notice_version, tuple(sorted(changes.items()))


def _is_note(note: Transition) -> bool:
    """Entries and events only: no guard, no row change, nothing else."""
    if note.before is None or note.guard is not None or changed_columns(note):
        return False
    return not any(getattr(note, name) for name in _OTHER_PARTS)


def _observe_all(observers: Sequence[Observer]) -> None:
    for observe in observers:
        observe()


@cache
def settled_change_direct(names: tuple[str, ...]) -> DirectStatement:
    """The engine's settling statement (`settle_ctes(delivery_records)`) carrying the
    version-guarded change setting `:v_<name>` for each of `names` (none: no change) on
    the alerts of `:m_alerts` whose record in `:m_deliveries` (same position) is settled,
    still in `:b_states` at `:b_notice_version`; the timeline entries (`:t_<column>`) and
    outbox rows (`:o_<column>`, leased as `lease_values` says) of settled records only
    (`:t_gate`, `:o_gate`: each row's record). One row: `settled_ids`, the outbox's
    `notified`, `leased_ids` and `leased_messages`."""
    return DirectStatement(lambda: _settled_change(names))


def _settled_change(names: tuple[str, ...]) -> sa.TextClause:
    ctes, binds = settle_ctes(delivery_records)
    kept = "IN (SELECT delivery_id FROM settled)"
    took = ""
    if names:
        sets = ", ".join(
            f"{_quoted(name)} = CAST(:v_{name} AS {_pg_type(alerts, name)})" for name in names
        )
        took = (
            f"took AS (UPDATE alerts SET {sets} "  # noqa: S608
            "WHERE alerts.id IN (SELECT m.alert FROM unnest(CAST(:m_alerts AS VARCHAR[]), "
            "CAST(:m_deliveries AS VARCHAR[])) AS m(alert, delivery) "
            f"WHERE m.delivery {kept}) "
            "AND alerts.state = ANY(CAST(:b_states AS VARCHAR[])) "
            "AND alerts.notice_version = CAST(:b_notice_version AS INTEGER) RETURNING alerts.id), "
        )
    # Identifiers come from the tables' metadata, quoted by the dialect; values are bound.
    sql = (
        f"WITH {ctes}, {took}"  # noqa: S608
        f"noted AS ({_entries_cte()} "
        f"WHERE (CAST(:t_gate AS VARCHAR[]))[CAST(r._n AS INTEGER)] {kept} ORDER BY _n), "
        f"queued AS ({leased_insert_sql('o_')} "
        f"WHERE (CAST(:o_gate AS VARCHAR[]))[CAST(r._n AS INTEGER)] {kept} ORDER BY _n "
        "RETURNING id, message_id, claimed_by) "
        "SELECT (SELECT array_agg(delivery_id) FROM settled) AS settled_ids, "
        f"(SELECT {_notify_sql()} FROM (SELECT 1 FROM queued LIMIT 1) AS one) AS notified, "
        f"{leased_result_sql('queued')}"
    )
    strings = postgresql.ARRAY(sa.String)
    gates = ["t_gate", "o_gate", *(("m_alerts", "m_deliveries") if names else ())]
    return sa.text(sql).bindparams(
        *binds,
        *(sa.bindparam(f"v_{name}", type_=alerts.c[name].type) for name in names),
        *_entry_params(),
        *_array_params(outbox_messages, OUTBOX_COLUMNS, "o_"),
        *_lease_params(),
        *(sa.bindparam(name, type_=strings) for name in gates),
    )
