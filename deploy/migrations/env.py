"""Alembic environment shared by every Aviso component.

Run programmatically by `services.common.migrations.upgrade` (which hands over a
connection already pointed at the component's schema or file), or from the command
line for autogenerate::

    alembic -c deploy/migrations/alembic.ini -x component=intake revision --autogenerate -m "..."
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from services.common.db import make_engine
from services.common.migrations import target_metadata
from services.common.settings import CommonSettings

config = context.config
component: str = config.attributes.get("component") or context.get_x_argument(
    as_dictionary=True
).get("component", "")
if not component:
    raise SystemExit("choose a component: alembic -x component=<intake|router|rumor_control|auth>")


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata(component),
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_with_own_engine() -> None:
    engine = make_engine(CommonSettings(), component)
    async with engine.connect() as conn:
        await conn.run_sync(_run)
        await conn.commit()
    await engine.dispose()


connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    asyncio.run(_run_with_own_engine())
