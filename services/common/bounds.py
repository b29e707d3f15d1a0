"""Bounds on what a request may say about time and paging (the same in every service).

A page is at most `MAX_PAGE_SIZE` items from at most `MAX_OFFSET` deep: a larger offset is
a 422, never an integer the database cannot hold (2**63 overflowed before).

A timestamp is a string with a zone, between the years 2000 and 2100: numbers (`0` would be
1970) and booleans are refused rather than read as seconds, and years near 1 or 9999 never
reach arithmetic that would overflow (converting `9999-12-31T23:59:59-14:00` to UTC does).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, AwareDatetime, BeforeValidator

__all__ = [
    "EARLIEST_YEAR",
    "LATEST_YEAR",
    "MAX_OFFSET",
    "MAX_PAGE_SIZE",
    "BoundedDatetime",
    "bounded_utc",
    "in_bounds",
]

EARLIEST_YEAR = 2000
LATEST_YEAR = 2100
MAX_PAGE_SIZE = 500
MAX_OFFSET = 10_000


def in_bounds(value: datetime) -> bool:
    """Whether `value` lies in the accepted years (checked before any zone arithmetic)."""
    return EARLIEST_YEAR <= value.year <= LATEST_YEAR


def bounded_utc(value: datetime) -> datetime:
    """`value` in UTC; ValueError outside the accepted years."""
    if not in_bounds(value):
        raise ValueError(f"year must be between {EARLIEST_YEAR} and {LATEST_YEAR}")
    return value.astimezone(UTC)


def _a_string(value: Any) -> Any:
    if not isinstance(value, str | datetime):
        raise ValueError("must be an ISO 8601 date-time string with a zone")
    return value


BoundedDatetime = Annotated[AwareDatetime, BeforeValidator(_a_string), AfterValidator(bounded_utc)]
"""An ISO 8601 date-time with a zone, in 2000-2100, normalised to UTC."""
