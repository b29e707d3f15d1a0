"""Fresh ids for what a submission writes: its notice, its audit entry, its event."""

from __future__ import annotations

from services.common.problems import new_correlation_id

__all__ = ["new_id"]


def new_id() -> str:
    """A random UUID's text, exactly as `str(uuid.uuid4())` writes it.

    Drawn and formatted without a `uuid.UUID` object (~1.5 us less each, three a
    submission); the same function as a request's correlation id, under an honest name.
    """
    return new_correlation_id()
