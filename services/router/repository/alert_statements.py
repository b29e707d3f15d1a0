"""The alert statements of a notice's hot path, each built once.

Why: profiled at 10 and 50 notices/s, building a statement per call (`select(...)
.where(...)`, `insert(...).values(**row)`) and computing its cache key was a large share
of router's SQLAlchemy time. A statement built once keeps its cache key (SQLAlchemy
memoizes it on the object) and its compiled form, and asyncpg keeps it prepared per
connection; each call only binds values.

`open_alert_statement` also folds a new alert's reads into its write: the alert row goes
in only if the notice has none yet (ON CONFLICT DO NOTHING) and the directory in force
is still the one the snapshot was frozen from (version and digest, read in the same
statement); on PostgreSQL its timeline entries, outbox rows and delivery records (the
engine's accept INSERT, `services.common.delivery.accepting`) go in the same statement.
A caller that gets no row back takes the slow path (read, decide, apply).

`open_alert_claiming_direct` is the same statement carrying the consumer's inbox claim
too (services/common/applying.py `ClaimCarrier`), for a statement sent without BEGIN:
the alert goes in only if the message is not recorded yet, the claim only with the
alert, so the effect and its claim commit together or not at all.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.delivery.accepting import accept_insert_params, accept_insert_sql
from services.common.delivery.insert_query import PENDING_COLUMNS
from services.common.direct import (
    DirectStatement,
    driver_connection,
    fetch_each_borrowed,
    holds_connection,
)
from services.common.messaging import inbox_messages, outbox_messages
from services.common.outbox import (
    OUTBOX_COLUMNS,
    leased_insert_sql,
    leased_result_sql,
    notify_relays,
)
from services.router.repository.alert_rows import COLUMNS, JSON_TEXT_COLUMNS
from services.router.tables import alert_timeline, alerts, delivery_records, directory_versions

__all__ = [
    "LEFT_OUT_OF_LEAN",
    "NO_DELIVERIES",
    "OUTBOX_COLUMNS",
    "TIMELINE_COLUMNS",
    "alert_by_id",
    "alert_by_notice",
    "alerts_by_ids",
    "alerts_by_ids_direct",
    "alerts_page",
    "fetch_each",
    "open_alert_claiming_direct",
    "open_alert_direct",
    "open_alert_statement",
    "versioned_update",
    "versioned_update_direct",
]

_PG = postgresql.dialect()  # type: ignore[no-untyped-call]
# The timeline columns `timeline_values` fills, in its order.
TIMELINE_COLUMNS = (
    "alert_id",
    "at",
    "kind",
    "notice_version",
    "step",
    "repeat",
    "recipient_id",
    "channel",
    "method",
    "delivery_id",
    "detail",
)


# The opening statement's delivery parameters for an alert that orders none (empty arrays).
NO_DELIVERIES = tuple(f"d_{name}" for name in PENDING_COLUMNS)


def _quoted(name: str) -> str:
    return str(_PG.identifier_preparer.quote(name))


def _pg_type(table: sa.Table, name: str) -> str:
    return str(table.c[name].type.compile(dialect=_PG))


@cache
def alert_by_id(*, lock: bool) -> sa.Select[tuple[object, ...]]:
    """One alert by `:alert_id`; `lock` adds FOR UPDATE (PostgreSQL; SQLite ignores it)."""
    query = sa.select(alerts).where(alerts.c.id == sa.bindparam("alert_id", type_=sa.String))
    return query.with_for_update() if lock else query


@cache
def alert_by_notice(*, lock: bool) -> sa.Select[tuple[object, ...]]:
    """The alert of `:notice_id`; `lock` as in `alert_by_id`."""
    query = sa.select(alerts).where(
        alerts.c.notice_id == sa.bindparam("notice_id", type_=sa.String)
    )
    return query.with_for_update() if lock else query


def alerts_page(states: Sequence[str], notice_id: str | None) -> sa.Select[tuple[object, ...]]:
    """Alerts newest first, in the order of `ix_alerts_listed` (router_0008), only in
    `states` (if any) or only the notice's.

    States without `resolved` are an unresolved alert's, whose `resolved_at` is NULL (set
    exactly when it is resolved): saying so lets the planner read only the unresolved
    alerts (the expiry's partial index) where they are few.
    """
    query = sa.select(alerts).order_by(alerts.c.triggered_at.desc(), alerts.c.id)
    if states:
        query = query.where(alerts.c.state.in_(list(states)))
        if "resolved" not in states:
            query = query.where(alerts.c.resolved_at.is_(None))
    if notice_id is not None:
        query = query.where(alerts.c.notice_id == notice_id)
    return query


# What a lean read leaves out: the alert's two JSON documents, the largest columns and
# the only ones whose reading costs a parse (see `lean_record_of`).
LEFT_OUT_OF_LEAN = frozenset({"content", "snapshot"})


@cache
def alerts_by_ids(dialect: str, *, lean: bool = False) -> sa.Select[tuple[object, ...]]:
    """The alerts whose ids are in `:alert_ids` (a list): one array on PostgreSQL, so one
    prepared statement whatever the count; an expanding IN elsewhere. `lean` reads every
    column but the content and the snapshot."""
    columns = [c for c in alerts.c if not (lean and c.name in LEFT_OUT_OF_LEAN)]
    if dialect == "postgresql":
        ids = sa.bindparam("alert_ids", type_=postgresql.ARRAY(sa.String))
        return sa.select(*columns).where(alerts.c.id == sa.any_(ids))
    return sa.select(*columns).where(alerts.c.id.in_(sa.bindparam("alert_ids", expanding=True)))


@cache
def lean_settle_read() -> str:
    """`alerts_by_ids(lean=True)` as text bound to `:read_ids`, for the delivery engine to
    carry in its settling statement (`SettleRead`): the id first (never NULL)."""
    quote = postgresql.dialect().identifier_preparer.quote  # type: ignore[no-untyped-call]
    names = ["id", *(c.name for c in alerts.c if c.name != "id" and c.name not in LEFT_OUT_OF_LEAN)]
    columns = ", ".join(quote(name) for name in names)
    # Identifiers come from the table's metadata, quoted by the dialect; ids are bound.
    return (
        f"SELECT {columns} FROM {quote(alerts.name)} "  # noqa: S608
        "WHERE id = ANY(CAST(:read_ids AS VARCHAR[]))"
    )


@cache
def alerts_by_ids_direct(*, lean: bool = False) -> DirectStatement:
    """`alerts_by_ids` on PostgreSQL, sent to asyncpg directly (JSON columns as text)."""
    return DirectStatement(lambda: alerts_by_ids("postgresql", lean=lean))


@cache
def open_alert_statement(dialect: str) -> sa.Executable:
    """Insert a new alert (`:a_<column>`) if its notice has none and the directory in force
    is `:directory_version` with `:directory_digest`; returns its id only if inserted.

    On PostgreSQL it also inserts the timeline entries, the outbox rows and the delivery
    engine's records (one array per column, `:t_<column>`, `:o_<column>` and
    `:d_<column>`, in the order given) when the alert went in, the outbox rows leased as
    `services.common.outbox.lease_values` says (`leased_ids`, `leased_messages`: what to
    hand over), the records as the engine prepared them (`accepted_ids`: the new ones).
    """
    if dialect == "postgresql":
        return _open_postgres()
    newest = sa.select(sa.func.max(directory_versions.c.version)).scalar_subquery()
    in_force = sa.exists().where(
        directory_versions.c.version == newest,
        directory_versions.c.version == sa.bindparam("directory_version", type_=sa.Integer),
        directory_versions.c.digest == sa.bindparam("directory_digest", type_=sa.String),
    )
    values = sa.select(*(sa.bindparam(f"a_{name}", type_=alerts.c[name].type) for name in COLUMNS))
    # A WHERE on the SELECT is what lets SQLite parse the ON CONFLICT clause after it.
    return (
        sqlite.insert(alerts)
        .from_select(list(COLUMNS), values.where(in_force))
        .on_conflict_do_nothing()
        .returning(alerts.c.id)
    )


@cache
def open_alert_direct() -> DirectStatement:
    """`open_alert_statement` on PostgreSQL, sent to asyncpg directly (no SQLAlchemy
    execution per call: see services/common/direct.py)."""
    return DirectStatement(_open_postgres)


@cache
def open_alert_claiming_direct() -> DirectStatement:
    """`open_alert_direct` also recording the inbox claim (`:c_consumer`, `:c_message_id`,
    `:c_topic`, `:c_processed_at`): nothing goes in if that message is recorded already,
    and the claim goes in only with the alert."""
    return DirectStatement(lambda: _open_postgres(claiming=True))


async def fetch_each(
    session: AsyncSession,
    statement: DirectStatement,
    values: Sequence[Mapping[str, Any]],
    *,
    lone: bool = False,
) -> list[Any]:
    """`statement` run once for each of `values`, in order, in the session's transaction,
    all sent in one round trip (asyncpg's `fetchmany`: one prepared statement, its
    executions pipelined, each seeing the ones before it; one error fails them all): every
    row they answered, in one flat list (asyncpg Records).

    `lone`: the executions are the unit of work's whole write, sent before anything else.
    With no transaction begun they go without BEGIN: PostgreSQL runs everything up to the
    pipeline's one Sync as one implicit transaction, committed as they answer, or rolled
    back whole when any fails (the unit of work's commit then sends nothing).
    """
    if not values:
        return []
    compiled = statement.compiled(session.get_bind().dialect)
    arguments = [compiled.arguments(each) for each in values]
    if lone and not holds_connection(session):
        return await fetch_each_borrowed(session.get_bind(), compiled.sql, arguments)
    driver = await driver_connection(session, begin=not lone)
    rows: list[Any] = await driver.fetchmany(compiled.sql, arguments)
    return rows


@cache
def versioned_update_direct(names: tuple[str, ...]) -> DirectStatement:
    """`versioned_update` on PostgreSQL, sent to asyncpg directly. With no `names`: only
    the timeline entries and outbox rows, no alert changed (`ids` is NULL)."""
    return DirectStatement(lambda: _versioned_update_postgres(names))


@cache
def versioned_update(dialect: str, names: tuple[str, ...]) -> sa.Executable:
    """Set `:v_<name>` for each of `names` on the alerts in `:b_alert_ids` still in one of
    `:b_states` at `:b_notice_version`; returns the ids that took (SQLite: one row each).

    On PostgreSQL it also inserts timeline entries and outbox rows (`:t_<column>` and
    `:o_<column>` arrays, in the order given; empty arrays for none) in the same
    statement, whether or not any row took (the caller folds in only what does not
    depend on the change), and returns one row: the ids that took (`ids`, an array).
    """
    if dialect == "postgresql":
        return _versioned_update_postgres(names)
    return (
        sa.update(alerts)
        .where(
            alerts.c.id.in_(sa.bindparam("b_alert_ids", expanding=True)),
            alerts.c.state.in_(sa.bindparam("b_states", expanding=True)),
            alerts.c.notice_version == sa.bindparam("b_notice_version", type_=sa.Integer),
        )
        .values({name: sa.bindparam(f"v_{name}", type_=alerts.c[name].type) for name in names})
        .returning(alerts.c.id)
    )


def _rows_insert(table: sa.Table, columns: tuple[str, ...], prefix: str) -> str:
    """INSERT of `table`'s rows given as one array per column (`:<prefix><column>`),
    in the order given (`_n`); the caller appends its WHERE and the ORDER BY."""
    names = ", ".join(_quoted(name) for name in columns)
    arrays = ", ".join(f"CAST(:{prefix}{name} AS {_pg_type(table, name)}[])" for name in columns)
    return (
        f"INSERT INTO {_quoted(table.name)} ({names}) "  # noqa: S608
        f"SELECT {names} FROM unnest({arrays}) WITH ORDINALITY AS r({names}, _n)"
    )


def _entries_cte() -> str:
    return _rows_insert(alert_timeline, TIMELINE_COLUMNS, "t_")


def _array_params(
    table: sa.Table, columns: tuple[str, ...], prefix: str
) -> list[sa.BindParameter[object]]:
    return [
        sa.bindparam(f"{prefix}{name}", type_=postgresql.ARRAY(table.c[name].type))
        for name in columns
    ]


def _entry_params() -> list[sa.BindParameter[object]]:
    return _array_params(alert_timeline, TIMELINE_COLUMNS, "t_")


def _lease_params() -> list[sa.BindParameter[object]]:
    """The outbox lease's values (`services.common.outbox.lease_values`)."""
    return [sa.bindparam("lease_by", type_=sa.String), sa.bindparam("lease_s", type_=sa.Float)]


def _notify_sql() -> str:
    """The outbox's NOTIFY to other processes' relays, as SQL (constant per process)."""
    compiled = notify_relays().compile(dialect=_PG, compile_kwargs={"literal_binds": True})
    return str(compiled)


def _versioned_update_postgres(names: tuple[str, ...]) -> sa.TextClause:
    sets = ", ".join(
        f"{_quoted(name)} = CAST(:v_{name} AS {_pg_type(alerts, name)})" for name in names
    )
    queued = leased_insert_sql("o_")
    # One row whatever took: the ids that did, the outbox's NOTIFY if a row went in, and
    # the outbox rows leased to this process's relay (services.common.outbox.handoff).
    took = (
        f"took AS (UPDATE alerts SET {sets} "  # noqa: S608
        "WHERE alerts.id = ANY(CAST(:b_alert_ids AS VARCHAR[])) "
        "AND alerts.state = ANY(CAST(:b_states AS VARCHAR[])) "
        "AND alerts.notice_version = CAST(:b_notice_version AS INTEGER) RETURNING alerts.id), "
    )
    ids = "(SELECT array_agg(id) FROM took)" if names else "CAST(NULL AS VARCHAR[])"
    sql = (
        f"WITH {took if names else ''}"  # noqa: S608
        f"noted AS ({_entries_cte()} ORDER BY _n), "
        f"queued AS ({queued} ORDER BY _n RETURNING id, message_id, claimed_by) "
        f"SELECT {ids} AS ids, "
        f"(SELECT {_notify_sql()} FROM (SELECT 1 FROM queued LIMIT 1) AS one) AS notified, "
        f"{leased_result_sql('queued')}"
    )
    return sa.text(sql).bindparams(
        *(sa.bindparam(f"v_{name}", type_=alerts.c[name].type) for name in names),
        *_entry_params(),
        *_array_params(outbox_messages, OUTBOX_COLUMNS, "o_"),
        *_lease_params(),
    )


_JSON_TEXT = frozenset(JSON_TEXT_COLUMNS)

# The inbox claim's columns, in `claim_message`'s order (services/common/inbox.py).
_CLAIM_COLUMNS = ("consumer", "message_id", "topic", "processed_at")


def _claim_sql() -> tuple[str, str, str]:
    """The claim's parts of the opening statement: its values (a CTE), the alert's extra
    condition (not recorded yet, in the statement's snapshot) and its INSERT (a CTE,
    only with the alert; a concurrent claim of the same message that committed since
    is left as it is: the alert's own uniqueness keeps its effect single)."""
    values = ", ".join(
        f"CAST(:c_{name} AS {_pg_type(inbox_messages, name)}) AS {_quoted(name)}"
        for name in _CLAIM_COLUMNS
    )
    names = ", ".join(_quoted(name) for name in _CLAIM_COLUMNS)
    unrecorded = (
        " AND NOT EXISTS (SELECT 1 FROM inbox_messages, claim "
        "WHERE inbox_messages.consumer = claim.consumer "
        "AND inbox_messages.message_id = claim.message_id)"
    )
    claimed = (
        f"claimed AS (INSERT INTO inbox_messages ({names}) "  # noqa: S608
        f"SELECT {names} FROM claim WHERE EXISTS (SELECT 1 FROM opened) "
        "ON CONFLICT DO NOTHING), "
    )
    return f"claim AS (SELECT {values}), ", unrecorded, claimed


def _open_postgres(*, claiming: bool = False) -> sa.TextClause:
    alert_names = ", ".join(_quoted(name) for name in COLUMNS)
    alert_values = ", ".join(f"CAST(:a_{name} AS {_pg_type(alerts, name)})" for name in COLUMNS)
    queued = leased_insert_sql("o_")
    opened = "WHERE EXISTS (SELECT 1 FROM opened)"
    # The delivery engine's accept INSERT (its SQL, router's condition): `:d_<column>`.
    accepted = accept_insert_sql(delivery_records, prefix="d_", where=opened)
    claim, unrecorded, claimed = _claim_sql() if claiming else ("", "", "")
    # Identifiers come from the tables' metadata, quoted by the dialect; values are bound.
    # The alert's timeline entries, outbox rows and deliveries go in only if the alert
    # did; the outbox's NOTIFY (as `enqueue` sends it) only if a row went in.
    sql = (
        "WITH in_force AS (SELECT version, digest FROM directory_versions "  # noqa: S608
        f"ORDER BY version DESC LIMIT 1), {claim}"
        f"opened AS (INSERT INTO alerts ({alert_names}) "
        f"SELECT {alert_values} FROM in_force "
        "WHERE in_force.version = :directory_version "
        f"AND in_force.digest = :directory_digest{unrecorded} "
        f"ON CONFLICT DO NOTHING RETURNING id), {claimed}"
        f"noted AS ({_entries_cte()} {opened} ORDER BY _n), "
        f"queued AS ({queued} {opened} ORDER BY _n RETURNING id, message_id, claimed_by), "
        f"accepted AS ({accepted}) "
        f"SELECT id, (SELECT {_notify_sql()} FROM (SELECT 1 FROM queued LIMIT 1) AS one), "
        f"{leased_result_sql('queued')}, "
        "(SELECT array_agg(delivery_id) FROM accepted) AS accepted_ids FROM opened"
    )
    return sa.text(sql).bindparams(
        # The JSON columns bound as their text, written by Pydantic (`alert_values`).
        *(
            sa.bindparam(f"a_{name}", type_=sa.Text if name in _JSON_TEXT else alerts.c[name].type)
            for name in COLUMNS
        ),
        *_entry_params(),
        *_array_params(outbox_messages, OUTBOX_COLUMNS, "o_"),
        *_lease_params(),
        *accept_insert_params(delivery_records, prefix="d_"),
        sa.bindparam("directory_version", type_=sa.Integer),
        sa.bindparam("directory_digest", type_=sa.String),
        *(
            sa.bindparam(f"c_{name}", type_=inbox_messages.c[name].type)
            for name in (_CLAIM_COLUMNS if claiming else ())
        ),
    )
