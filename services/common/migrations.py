"""Alembic migrations for every component, on PostgreSQL and on SQLite.

One alembic environment (`deploy/migrations/env.py`) serves all components; each
component keeps its revisions in `deploy/migrations/versions/<component>/` and its
own `alembic_version` table (in its schema on PostgreSQL, in its file on SQLite).
"""

from __future__ import annotations

import importlib
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import MetaData, text
from sqlalchemy.engine import Connection

from services.common.db import COMPONENTS, is_postgres, make_engine
from services.common.settings import CommonSettings, repo_root

__all__ = ["METADATA", "alembic_config", "target_metadata", "upgrade", "upgrade_all"]

MIGRATIONS_DIR = repo_root() / "deploy" / "migrations"

# Where each component's SQLAlchemy metadata lives (for autogenerate and drift checks).
METADATA = {
    "auth": "services.common.auth:auth_metadata",
    "intake": "services.intake.tables:metadata",
    "router": "services.router.tables:metadata",
    "rumor_control": "services.rumor_control.tables:metadata",
}


def target_metadata(component: str) -> list[MetaData]:
    """The metadata alembic compares `component`'s schema against."""
    from services.common.messaging import messaging_metadata

    module_name, attr = METADATA[component].split(":")
    own: MetaData = getattr(importlib.import_module(module_name), attr)
    return [own] if component == "auth" else [own, messaging_metadata]


def versions_dir(component: str) -> Path:
    """The folder holding `component`'s revisions."""
    return MIGRATIONS_DIR / "versions" / component


def alembic_config(component: str) -> Config:
    """An alembic Config for `component` (usable with alembic's command API)."""
    if component not in COMPONENTS:
        raise ValueError(f"unknown component {component!r}; expected one of {COMPONENTS}")
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("version_locations", str(versions_dir(component)))
    config.set_main_option("path_separator", "os")
    config.attributes["component"] = component
    return config


def _upgrade_sync(connection: Connection, component: str, revision: str) -> None:
    config = alembic_config(component)
    config.attributes["connection"] = connection
    command.upgrade(config, revision)


async def upgrade(settings: CommonSettings, component: str, revision: str = "head") -> None:
    """Bring `component`'s tables to `revision`; safe when several processes start at once."""
    engine = make_engine(settings, component, command_timeout_s=None)
    try:
        async with engine.connect() as conn:
            if is_postgres(engine):
                # Serialise concurrent starters: CREATE SCHEMA and alembic's own
                # bookkeeping are not safe to race.
                await conn.execute(
                    text("SELECT pg_advisory_lock(hashtext(:k))"),
                    {"k": f"aviso-migrate-{component}"},
                )
                await conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{component}"'))
                await conn.commit()
            try:
                await conn.run_sync(_upgrade_sync, component, revision)
                await conn.commit()
            finally:
                if is_postgres(engine):
                    await conn.execute(
                        text("SELECT pg_advisory_unlock(hashtext(:k))"),
                        {"k": f"aviso-migrate-{component}"},
                    )
                    await conn.commit()
    finally:
        await engine.dispose()


async def upgrade_all(settings: CommonSettings, components: tuple[str, ...] = COMPONENTS) -> None:
    """Upgrade every listed component to head."""
    for component in components:
        await upgrade(settings, component)
