"""Tables owned by the rumor_control service (its own PostgreSQL schema, or var/rumor_control.db)."""

from __future__ import annotations

from sqlalchemy import MetaData

__all__ = ["metadata"]

metadata = MetaData()
