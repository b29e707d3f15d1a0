"""The indexes nothing reads go (outbox message id, intake's audit log by notice) and come
back with the downgrade, rows kept, on SQLite and PostgreSQL; PostgreSQL keeps a fifth of
the outbox's and delivery records' pages free; the schema at head is the metadata's in
every service."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection

from services.common.db import make_engine
from services.common.messaging import outbox_messages
from services.common.migrations import alembic_config, target_metadata, upgrade
from services.common.settings import CommonSettings
from services.router.tables import delivery_records as router_deliveries
from services.rumor_control.tables import delivery_records as rumor_deliveries

pytestmark = pytest.mark.postgres

# The revision before the one that drops the indexes, per service.
_BEFORE = {"intake": "intake_0004", "router": "router_0005", "rumor_control": "rumor_control_0007"}
# The tables whose pages PostgreSQL keeps a fifth free at head, per service.
_FILLFACTOR_TABLES = {
    "intake": ("outbox_messages",),
    "router": ("outbox_messages", "delivery_records"),
    "rumor_control": ("outbox_messages", "delivery_records"),
}


def _message_id_unique(connection: Connection) -> bool:
    inspector = sa.inspect(connection)
    constraints = inspector.get_unique_constraints("outbox_messages")
    indexes = inspector.get_indexes("outbox_messages")
    return any(c["column_names"] == ["message_id"] for c in constraints) or any(
        ix["unique"] and ix["column_names"] == ["message_id"] for ix in indexes
    )


def _index_names(connection: Connection, table: str) -> set[str]:
    return {str(ix["name"]) for ix in sa.inspect(connection).get_indexes(table)}


def _outbox_ids(connection: Connection) -> list[str]:
    rows = connection.execute(sa.select(outbox_messages.c.message_id).order_by("id"))
    return [row.message_id for row in rows]


def _fillfactors(connection: Connection) -> dict[str, str | None]:
    """The fillfactor PostgreSQL keeps per table written on the hot path (None: default)."""
    if connection.dialect.name != "postgresql":
        return {}
    rows = connection.execute(
        sa.text(
            "SELECT c.relname, (SELECT o FROM unnest(c.reloptions) AS o"
            " WHERE o LIKE 'fillfactor=%') AS fillfactor FROM pg_class c"
            " WHERE c.relnamespace = current_schema()::regnamespace"
            " AND c.relname IN ('outbox_messages', 'delivery_records')"
        )
    )
    return {row.relname: row.fillfactor for row in rows}


def _downgrade(connection: Connection, component: str, revision: str) -> None:
    config = alembic_config(component)
    config.attributes["connection"] = connection
    command.downgrade(config, revision)


def _differences(connection: Connection, component: str) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    # A list of metadata works at runtime (as in env.py); the stubs name one MetaData.
    return list(compare_metadata(context, target_metadata(component)))  # type: ignore[arg-type]


def _outbox_row(message_id: str) -> dict[str, Any]:
    return {
        "message_id": message_id,
        "topic": "aviso.notices.v1",
        "key": "k",
        "event_type": "notice.received",
        "headers": {},
        "payload": "{}",
        "created_at": datetime.now(UTC),
    }


@pytest.mark.parametrize("component", sorted(_BEFORE))
async def test_outbox_message_id_index_goes_and_comes_back_with_rows_kept(
    component: str, database_url: str | None, make_settings: Callable[..., CommonSettings]
) -> None:
    settings = make_settings(database_url=database_url)
    await upgrade(settings, component, _BEFORE[component])
    engine = make_engine(settings, component)
    try:
        async with engine.connect() as conn:
            assert await conn.run_sync(_message_id_unique)
            await conn.execute(sa.insert(outbox_messages), [_outbox_row("m-1")])
            await conn.commit()
        await upgrade(settings, component)
        async with engine.connect() as conn:
            assert not await conn.run_sync(_message_id_unique)
            assert "ix_outbox_pending_key" in await conn.run_sync(_index_names, "outbox_messages")
            assert await conn.run_sync(_outbox_ids) == ["m-1"]
            assert await conn.run_sync(_differences, component) == []
            packed = await conn.run_sync(_fillfactors)
            if database_url is not None:
                assert packed == dict.fromkeys(_FILLFACTOR_TABLES[component], "fillfactor=80")
            await conn.run_sync(_downgrade, component, _BEFORE[component])
            await conn.commit()
            assert set((await conn.run_sync(_fillfactors)).values()) <= {None}
            assert await conn.run_sync(_message_id_unique)
            assert "ix_outbox_pending_key" in await conn.run_sync(_index_names, "outbox_messages")
            assert await conn.run_sync(_outbox_ids) == ["m-1"]
        await upgrade(settings, component)
        async with engine.connect() as conn:
            assert await conn.run_sync(_differences, component) == []
    finally:
        await engine.dispose()


async def test_intake_audit_log_notice_index_goes_and_comes_back(
    database_url: str | None, make_settings: Callable[..., CommonSettings]
) -> None:
    settings = make_settings(database_url=database_url)
    await upgrade(settings, "intake")
    engine = make_engine(settings, "intake")
    try:
        async with engine.connect() as conn:
            assert "ix_audit_log_notice_id" not in await conn.run_sync(_index_names, "audit_log")
            await conn.run_sync(_downgrade, "intake", _BEFORE["intake"])
            await conn.commit()
            assert "ix_audit_log_notice_id" in await conn.run_sync(_index_names, "audit_log")
    finally:
        await engine.dispose()


def test_the_declarations_keep_the_fillfactor_the_migrations_set() -> None:
    for table in (outbox_messages, router_deliveries, rumor_deliveries):
        ddl = str(sa.schema.CreateTable(table).compile(dialect=postgresql.dialect()))
        assert "WITH (fillfactor = 80)" in ddl, table.name
