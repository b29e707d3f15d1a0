"""Why a use case refused: the edges turn these into problem+json answers."""

from __future__ import annotations

__all__ = ["InvalidInput", "InvalidLink", "NotFound"]


class NotFound(Exception):
    """No rumor or bulletin with that id."""


class InvalidInput(Exception):
    """A request that is well-formed but cannot be applied; `code` says why."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(code)
        self.code = code
        self.detail = detail


class InvalidLink(Exception):
    """A receipt link that is forged, expired or malformed."""
