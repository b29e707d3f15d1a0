"""The outbox keeps its rows out of TOAST and half of each page free on PostgreSQL (the
migrations intake_0006, router_0007, rumor_control_0010), and the downgrade puts back what
was there; on SQLite both run and change nothing."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable

import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy.engine import Connection

from services.common.db import make_engine, make_session_factory
from services.common.messaging import outbox_messages
from services.common.migrations import alembic_config, upgrade
from services.common.outbox import enqueue
from services.common.settings import CommonSettings
from tests.support.events import notice_updated

pytestmark = pytest.mark.postgres

# The revision before the inline rows, per service.
_BEFORE = {"intake": "intake_0005", "router": "router_0006", "rumor_control": "rumor_control_0009"}


def _options(connection: Connection) -> set[str]:
    if connection.dialect.name != "postgresql":
        return set()
    options = connection.execute(
        sa.text(
            "SELECT reloptions FROM pg_class WHERE relname = 'outbox_messages'"
            " AND relnamespace = current_schema()::regnamespace"
        )
    ).scalar_one()
    return set(options or ())


def _toast_bytes(connection: Connection) -> int:
    return int(
        connection.execute(
            sa.text(
                "SELECT pg_relation_size(reltoastrelid) FROM pg_class"
                " WHERE relname = 'outbox_messages'"
                " AND relnamespace = current_schema()::regnamespace"
            )
        ).scalar_one()
    )


def _downgrade(connection: Connection, component: str, revision: str) -> None:
    config = alembic_config(component)
    config.attributes["connection"] = connection
    command.downgrade(config, revision)


@pytest.mark.parametrize("component", sorted(_BEFORE))
async def test_the_outbox_keeps_its_rows_inline_and_the_downgrade_puts_toast_back(
    component: str, database_url: str | None, make_settings: Callable[..., CommonSettings]
) -> None:
    settings = make_settings(database_url=database_url)
    await upgrade(settings, component)
    engine = make_engine(settings, component)
    try:
        async with engine.connect() as conn:
            options = await conn.run_sync(_options)
            if database_url is not None:
                assert {"fillfactor=50", "toast_tuple_target=8160"} <= options
            await conn.run_sync(_downgrade, component, _BEFORE[component])
            await conn.commit()
            options = await conn.run_sync(_options)
            assert not any(o.startswith("toast_tuple_target") for o in options)
            if database_url is not None:
                assert "fillfactor=80" in options
    finally:
        await engine.dispose()


async def test_a_three_kilobyte_row_stays_out_of_toast(
    database_url: str | None, make_settings: Callable[..., CommonSettings]
) -> None:
    if database_url is None:
        pytest.skip("TOAST is PostgreSQL's")
    settings = make_settings(database_url=database_url)
    await upgrade(settings, "intake")
    engine = make_engine(settings, "intake")
    try:
        # Random hex, which no compression shrinks: a row as large as intake's
        # notice.received with its fingerprints.
        event = notice_updated(uuid.uuid4(), 2, summary=secrets.token_hex(900)).model_copy(
            update={"restricted_fingerprints": tuple(secrets.token_hex(16) for _ in range(40))}
        )
        async with make_session_factory(engine)() as session, session.begin():
            await enqueue(session, event, source="aviso.test")
        async with engine.connect() as conn:
            width = (
                await conn.execute(sa.select(sa.func.pg_column_size(outbox_messages.c.payload)))
            ).scalar_one()
            assert width > 3000
            assert await conn.run_sync(_toast_bytes) == 0
    finally:
        await engine.dispose()
