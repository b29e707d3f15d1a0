"""Acknowledgement: acknowledge a notice version, through the API or a one-click link."""

from __future__ import annotations

from services.router.acknowledgement.acknowledge import AckResult, acknowledge
from services.router.acknowledgement.links import (
    LinkClaims,
    LinkPage,
    ack_link,
    link_page,
    read_link,
)

__all__ = [
    "AckResult",
    "LinkClaims",
    "LinkPage",
    "ack_link",
    "acknowledge",
    "link_page",
    "read_link",
]
