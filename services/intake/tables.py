"""Tables owned by the intake service (its own PostgreSQL schema, or var/intake.db)."""

from __future__ import annotations

from sqlalchemy import MetaData

__all__ = ["metadata"]

metadata = MetaData()
