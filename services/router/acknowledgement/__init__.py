"""Acknowledgement of a notice version: through the API, a one-click link or an SMS reply."""

from __future__ import annotations

from services.router.acknowledgement.acknowledge import AckResult, acknowledge
from services.router.acknowledgement.links import (
    LinkClaims,
    LinkPage,
    ack_link,
    link_page,
    read_link,
)
from services.router.acknowledgement.sms import SmsReplyOutcome, acknowledge_by_sms, number_tag

__all__ = [
    "AckResult",
    "LinkClaims",
    "LinkPage",
    "SmsReplyOutcome",
    "ack_link",
    "acknowledge",
    "acknowledge_by_sms",
    "link_page",
    "number_tag",
    "read_link",
]
