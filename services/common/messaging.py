"""The outbox and inbox tables every service keeps in its own schema.

The definitions are shared; each service's first migration creates them through
`create_messaging_tables`, and the search path (PostgreSQL) or file (SQLite) decides
whose they are.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

__all__ = ["create_messaging_tables", "inbox_messages", "messaging_metadata", "outbox_messages"]

messaging_metadata = sa.MetaData()

# BIGINT on PostgreSQL; SQLite only autoincrements an INTEGER PRIMARY KEY.
_BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _outbox_columns() -> list[Any]:
    return [
        # The id orders the outbox: per key, rows are published in id order.
        sa.Column("id", _BigId, primary_key=True, autoincrement=True),
        sa.Column("message_id", sa.String(64), nullable=False, unique=True),
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


outbox_messages = sa.Table("outbox_messages", messaging_metadata, *_outbox_columns())
sa.Index(
    "ix_outbox_pending_key", outbox_messages.c.sent_at, outbox_messages.c.key, outbox_messages.c.id
)
inbox_messages = sa.Table("inbox_messages", messaging_metadata, *_inbox_columns())


def create_messaging_tables(op: Any) -> None:
    """Create the outbox and inbox tables inside an alembic migration (frozen at v1)."""
    op.create_table("outbox_messages", *_outbox_columns())
    op.create_index("ix_outbox_pending_key", "outbox_messages", ["sent_at", "key", "id"])
    op.create_table("inbox_messages", *_inbox_columns())
