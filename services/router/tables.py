"""Tables owned by the router service (its own PostgreSQL schema, or var/router.db)."""

from __future__ import annotations

from sqlalchemy import MetaData

__all__ = ["metadata"]

metadata = MetaData()
