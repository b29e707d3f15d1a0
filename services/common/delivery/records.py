"""The durable delivery record: one row per delivery id = (request, recipient, channel).

States (the record is the delivery's whole memory; nothing about it lives in Kafka):

    pending --claim--> sending --sent--> delivered
       ^                  |  \\--permanent failure or give_up_at passed--> failed
       |                  \\--plan says nothing to send--> skipped
       \\--transient failure: next_attempt_at = now + backoff--/
    pending --engine.cancel()--> cancelled

`next_attempt_at` is the durable retry timer (it survives restarts); `claimed_by` and
`claimed_until` are a lease renewed by the claimant's heartbeat, so a crashed process's
records are taken over once the lease runs out. The row holds no address: the owning
service resolves the address when it sends, and only a keyed hash of it
(`destination_key`) is kept, for the circuit breaker and per-destination limits.

Each service keeps the table in its own schema: `delivery_records_table(metadata)` in its
`tables.py`, `create_delivery_records_table(op)` in an alembic migration (version 1, frozen)
followed by one helper per later version (`add_delivery_segments_column(op)`: version 2,
`add_delivery_report_columns(op)`: version 3, `add_in_flight_indexes(op)`: version 4).

From version 4 the claim's indexes hold only records in flight: `ix_<name>_due` the
pending ones, `ix_<name>_leased` the ones being sent. A record's last update (to
delivered, failed, skipped or cancelled) then writes no entry into either, and the
indexes stay as small as the queue instead of growing with every record ever sent. A
service that reads an aggregate's records only to cancel its pending ones (router) keeps
`ix_<name>_aggregate` over pending records only too (`pending_aggregate=True`); one that
lists an aggregate's records of every state (rumor_control's bulletin deliveries) keeps
it whole. A statement meant to use one of these indexes names the state as a literal
(`state_is`): a bound state would leave a generic plan unable to prove the index's
predicate.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, cast

import sqlalchemy as sa

from schemas.base import Language
from schemas.deliveries import DeliveryChannel, DeliveryPurpose
from services.common.delivery.errors import ReasonClass

__all__ = [
    "ACTIVE_STATES",
    "DEFAULT_TABLE_NAME",
    "TABLE_VERSION",
    "Delivered",
    "DeliveryOrder",
    "DeliveryRecord",
    "DeliveryState",
    "Failure",
    "add_delivery_report_columns",
    "add_delivery_segments_column",
    "add_in_flight_indexes",
    "as_utc",
    "create_delivery_records_table",
    "delivery_records_columns",
    "delivery_records_table",
    "drop_delivery_report_columns",
    "drop_delivery_segments_column",
    "drop_in_flight_indexes",
    "record_from_row",
    "state_is",
]

DeliveryState = Literal["pending", "sending", "delivered", "failed", "cancelled", "skipped"]
ACTIVE_STATES: tuple[DeliveryState, ...] = ("pending", "sending")
DEFAULT_TABLE_NAME = "delivery_records"
# The table's current version: 1 = the first shape, 2 = `segments` (the SMS receipt),
# 3 = `report` and `reported_at` (the SMS gateway's delivery report), 4 = the claim's
# indexes over records in flight only (no new column).
TABLE_VERSION = 4

_Time = sa.DateTime(timezone=True)


def delivery_records_columns(version: int = TABLE_VERSION) -> list[sa.Column[Any]]:
    """The columns of the delivery records table at `version` (migrations freeze each)."""
    columns: list[sa.Column[Any]] = [
        sa.Column("delivery_id", sa.String(36), primary_key=True),
        sa.Column("aggregate_id", sa.String(36), nullable=False),
        sa.Column("aggregate_version", sa.Integer, nullable=False),
        sa.Column("recipient_id", sa.String(36), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("purpose", sa.String(32), nullable=False),
        sa.Column("language", sa.String(8), nullable=False),
        # Releasable inputs the owner renders the message from (never an address).
        sa.Column("context", sa.JSON, nullable=False),
        sa.Column("correlation_id", sa.String(128), nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        # Attempts that reached the network (a circuit_open reschedule is not one).
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_attempt_at", _Time, nullable=False),
        sa.Column("give_up_at", _Time, nullable=False),
        sa.Column("claimed_by", sa.String(64), nullable=True),
        sa.Column("claimed_until", _Time, nullable=True),
        sa.Column("last_error_class", sa.String(32), nullable=True),
        sa.Column("destination_key", sa.String(64), nullable=True),
        sa.Column("created_at", _Time, nullable=False),
        sa.Column("updated_at", _Time, nullable=False),
        sa.Column("delivered_at", _Time, nullable=True),
    ]
    if version >= 2:
        columns.append(_segments_column())
    if version >= 3:
        columns.extend(_report_columns())
    return columns


def _report_columns() -> list[sa.Column[Any]]:
    # The furthest a text got by the gateway's delivery reports: accepted (by the carrier),
    # delivered (to the handset) or failed; NULL when no report came (or not an SMS).
    return [
        sa.Column("report", sa.String(16), nullable=True),
        sa.Column("reported_at", _Time, nullable=True),
    ]


def _segments_column() -> sa.Column[Any]:
    # SMS segments the gateway accepted for a delivered text (its receipt); NULL otherwise.
    return sa.Column("segments", sa.Integer, nullable=True)


@dataclass(frozen=True)
class _IndexSpec:
    """One index of the table: its name, key columns and (partial) the state it covers."""

    name: str
    columns: list[str]
    state: DeliveryState | None = None

    def where(self) -> Any:
        """The partial index's predicate (None: every row), in both dialects' DDL."""
        return None if self.state is None else sa.text(f"state = '{self.state}'")


def _indexes(name: str, version: int, *, pending_aggregate: bool) -> list[_IndexSpec]:
    if version < 4:
        return [
            # The dispatcher's claim and its "when is the next one due" question.
            _IndexSpec(f"ix_{name}_due", ["state", "next_attempt_at"]),
            # Cancelling an aggregate's pending deliveries; timelines by alert or bulletin.
            _IndexSpec(f"ix_{name}_aggregate", ["aggregate_id", "state"]),
        ]
    aggregate = (
        _IndexSpec(f"ix_{name}_aggregate", ["aggregate_id"], "pending")
        if pending_aggregate
        else _IndexSpec(f"ix_{name}_aggregate", ["aggregate_id", "state"])
    )
    return [
        # The claim of pending records due, oldest first, and the next retry timer.
        _IndexSpec(f"ix_{name}_due", ["next_attempt_at"], "pending"),
        # The claim of records whose claimant stopped renewing, and the next lease end.
        # Keyed as the due index, not on `claimed_until`: a renewed lease stays HOT.
        _IndexSpec(f"ix_{name}_leased", ["next_attempt_at"], "sending"),
        # Cancelling an aggregate's pending deliveries (and, whole, listing its records).
        aggregate,
    ]


def state_is(column: Any, state: DeliveryState) -> Any:
    """`column = '<state>'` with the state written into the statement, not bound: the
    partial indexes' predicates are then provable in every plan (a generic plan knows
    no bound value; SQLite matches a partial index's terms as written)."""
    return column == sa.literal_column(f"'{state}'", sa.String)


def delivery_records_table(
    metadata: sa.MetaData, name: str = DEFAULT_TABLE_NAME, *, pending_aggregate: bool = False
) -> sa.Table:
    """Define the delivery records table in `metadata` (a service's `tables.py`);
    `pending_aggregate`: the aggregate index over pending records only (see above)."""
    table = sa.Table(name, metadata, *delivery_records_columns())
    for spec in _indexes(name, TABLE_VERSION, pending_aggregate=pending_aggregate):
        where = spec.where()
        sa.Index(
            spec.name,
            *(table.c[c] for c in spec.columns),
            postgresql_where=where,
            sqlite_where=where,
        )
    return table


def create_delivery_records_table(
    op: Any, name: str = DEFAULT_TABLE_NAME, *, version: int = 1, pending_aggregate: bool = False
) -> None:
    """Create the table and its indexes inside an alembic migration.

    Version 1 unless told otherwise: a service's first delivery migration stays what it
    was, and later revisions add what came after (`add_delivery_segments_column`). A test
    set-up passes `version=TABLE_VERSION`.
    """
    op.create_table(name, *delivery_records_columns(version))
    for spec in _indexes(name, version, pending_aggregate=pending_aggregate):
        _create_index(op, name, spec)


def _create_index(op: Any, table: str, spec: _IndexSpec) -> None:
    where = spec.where()
    op.create_index(spec.name, table, spec.columns, postgresql_where=where, sqlite_where=where)


def add_in_flight_indexes(
    op: Any, name: str = DEFAULT_TABLE_NAME, *, pending_aggregate: bool = False
) -> None:
    """Version 3 -> 4 inside an alembic migration: the claim's indexes over records in
    flight only (and, with `pending_aggregate`, the aggregate index over pending ones)."""
    _replace_indexes(op, name, 3, 4, pending_aggregate)


def drop_in_flight_indexes(
    op: Any, name: str = DEFAULT_TABLE_NAME, *, pending_aggregate: bool = False
) -> None:
    """Version 4 -> 3 (an alembic downgrade): the whole-table indexes back."""
    _replace_indexes(op, name, 4, 3, pending_aggregate)


def _replace_indexes(op: Any, name: str, old: int, new: int, pending_aggregate: bool) -> None:
    before = {s.name: s for s in _indexes(name, old, pending_aggregate=pending_aggregate)}
    after = {s.name: s for s in _indexes(name, new, pending_aggregate=pending_aggregate)}
    for spec in before.values():
        if after.get(spec.name) != spec:
            op.drop_index(spec.name, table_name=name)
    for spec in after.values():
        if before.get(spec.name) != spec:
            _create_index(op, name, spec)


def add_delivery_segments_column(op: Any, name: str = DEFAULT_TABLE_NAME) -> None:
    """Version 1 -> 2 inside an alembic migration: the nullable `segments` column."""
    op.add_column(name, _segments_column())


def drop_delivery_segments_column(op: Any, name: str = DEFAULT_TABLE_NAME) -> None:
    """Version 2 -> 1 (an alembic downgrade)."""
    op.drop_column(name, "segments")


def add_delivery_report_columns(op: Any, name: str = DEFAULT_TABLE_NAME) -> None:
    """Version 2 -> 3 inside an alembic migration: the nullable `report` and `reported_at`."""
    for column in _report_columns():
        op.add_column(name, column)


def drop_delivery_report_columns(op: Any, name: str = DEFAULT_TABLE_NAME) -> None:
    """Version 3 -> 2 (an alembic downgrade)."""
    for column in reversed(_report_columns()):
        op.drop_column(name, column.name)


@dataclass(frozen=True)
class DeliveryOrder:
    """What a service asks the engine to deliver (`engine.accept`).

    `context` holds the releasable inputs the service's plan renders the message from
    (JSON-serialisable); it must never hold an address or restricted detail.
    `give_up_at` overrides the plan's deadline for this purpose; `not_before` delays
    the first attempt.
    """

    delivery_id: uuid.UUID
    aggregate_id: uuid.UUID
    aggregate_version: int
    recipient_id: uuid.UUID
    channel: DeliveryChannel
    purpose: DeliveryPurpose
    language: Language = "en"
    context: Mapping[str, Any] = field(default_factory=dict)
    correlation_id: str | None = None
    not_before: datetime | None = None
    give_up_at: datetime | None = None


@dataclass(frozen=True)
class DeliveryRecord:
    """A claimed record as the plan sees it (`attempts`: network attempts before this one)."""

    delivery_id: uuid.UUID
    aggregate_id: uuid.UUID
    aggregate_version: int
    recipient_id: uuid.UUID
    channel: DeliveryChannel
    purpose: DeliveryPurpose
    language: Language
    context: Mapping[str, Any]
    correlation_id: str | None
    attempts: int
    created_at: datetime
    give_up_at: datetime
    destination_key: str | None
    last_error_class: str | None


@dataclass(frozen=True)
class Delivered:
    """The receiver accepted the message; `segments`: the SMS gateway's count (else None)."""

    attempts: int
    delivered_at: datetime
    destination_key: str
    segments: int | None = None


@dataclass(frozen=True)
class Failure:
    """An attempt that failed. `final`: no more attempts (gave up, or permanent)."""

    reason: ReasonClass
    permanent: bool
    final: bool
    attempts: int
    at: datetime
    retry_at: datetime | None
    destination_key: str | None


def as_utc(value: datetime | None) -> datetime | None:
    """`value` as an aware UTC datetime: SQLite hands datetimes back naive (stored as UTC)."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def record_from_row(row: Any) -> DeliveryRecord:
    """A `delivery_records` row (a mapping) as the engine's record."""
    context = row["context"]
    if isinstance(context, str):
        context = json.loads(context)
    return DeliveryRecord(
        delivery_id=uuid.UUID(row["delivery_id"]),
        aggregate_id=uuid.UUID(row["aggregate_id"]),
        aggregate_version=row["aggregate_version"],
        recipient_id=uuid.UUID(row["recipient_id"]),
        channel=row["channel"],
        purpose=row["purpose"],
        language=row["language"],
        context=context,
        correlation_id=row["correlation_id"],
        attempts=row["attempts"],
        created_at=cast(datetime, as_utc(row["created_at"])),
        give_up_at=cast(datetime, as_utc(row["give_up_at"])),
        destination_key=row["destination_key"],
        last_error_class=row["last_error_class"],
    )
