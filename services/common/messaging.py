"""The outbox and inbox tables every service keeps in its own schema.

The definitions are shared; each service's first migration creates them through
`create_messaging_tables` (version 1, frozen) and a later one makes the outbox version 2
(`drop_outbox_message_id_unique`), and the search path (PostgreSQL) or file (SQLite) decides
whose they are.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

__all__ = [
    "OUTBOX_VERSION",
    "create_messaging_tables",
    "drop_outbox_message_id_unique",
    "inbox_messages",
    "messaging_metadata",
    "outbox_messages",
    "restore_outbox_message_id_unique",
]

messaging_metadata = sa.MetaData()

# BIGINT on PostgreSQL; SQLite only autoincrements an INTEGER PRIMARY KEY.
_BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


# The outbox's version: 1 = the first shape; 2 = no unique index on `message_id` (a fresh
# uuid4 per event that no statement looks up or upserts on: the index cost every row two
# random B-tree writes, at its insert and at its relay's non-HOT update, and checked
# nothing a consumer relies on; consumers deduplicate on it in their own inbox).
OUTBOX_VERSION = 2
# PostgreSQL's default name for version 1's inline constraint (it was never named).
_MESSAGE_ID_UNIQUE = "outbox_messages_message_id_key"


def _outbox_columns(version: int = OUTBOX_VERSION) -> list[Any]:
    return [
        # The id orders the outbox: per key, rows are published in id order.
        sa.Column("id", _BigId, primary_key=True, autoincrement=True),
        sa.Column("message_id", sa.String(64), nullable=False, unique=version == 1),
        sa.Column("topic", sa.String(249), nullable=False),
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("event_type", sa.String(100), nullable=False),
        sa.Column("headers", sa.JSON, nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("claimed_by", sa.String(64), nullable=True),
        sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
    ]


def _inbox_columns() -> list[Any]:
    return [
        sa.Column("consumer", sa.String(100), primary_key=True),
        sa.Column("message_id", sa.String(128), primary_key=True),
        sa.Column("topic", sa.String(249), nullable=False),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=False),
    ]


# PostgreSQL keeps a fifth of each page free (intake_0005, router_0006,
# rumor_control_0008): the relay's update of a row just written lands on the row's own
# page, where its WAL record holds the changed bytes instead of the whole new row.
outbox_messages = sa.Table(
    "outbox_messages",
    messaging_metadata,
    *_outbox_columns(),
    postgresql_with={"fillfactor": 80},
)
sa.Index(
    "ix_outbox_pending_key", outbox_messages.c.sent_at, outbox_messages.c.key, outbox_messages.c.id
)
inbox_messages = sa.Table("inbox_messages", messaging_metadata, *_inbox_columns())


def create_messaging_tables(op: Any) -> None:
    """Create the outbox and inbox tables inside an alembic migration (frozen at v1)."""
    op.create_table("outbox_messages", *_outbox_columns(1))
    op.create_index("ix_outbox_pending_key", "outbox_messages", ["sent_at", "key", "id"])
    op.create_table("inbox_messages", *_inbox_columns())


def drop_outbox_message_id_unique(op: Any) -> None:
    """Outbox version 1 -> 2 inside an alembic migration: `message_id` no longer unique."""
    _reshape_outbox(op, version=2)


def restore_outbox_message_id_unique(op: Any) -> None:
    """Outbox version 2 -> 1 (a downgrade): `message_id` unique again."""
    _reshape_outbox(op, version=1)


def _reshape_outbox(op: Any, *, version: int) -> None:
    if op.get_bind().dialect.name != "sqlite":
        if version == 1:
            op.create_unique_constraint(_MESSAGE_ID_UNIQUE, "outbox_messages", ["message_id"])
        else:
            op.drop_constraint(_MESSAGE_ID_UNIQUE, "outbox_messages", type_="unique")
        return
    # SQLite cannot drop or add a table's constraint: the table is rebuilt from the
    # version's own definition (columns, pending index), its rows copied over.
    shape = sa.Table("outbox_messages", sa.MetaData(), *_outbox_columns(version))
    sa.Index("ix_outbox_pending_key", shape.c.sent_at, shape.c.key, shape.c.id)
    with op.batch_alter_table("outbox_messages", recreate="always", copy_from=shape):
        pass
