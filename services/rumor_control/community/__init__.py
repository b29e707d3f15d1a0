"""Community subscribers by SMS: opt in with a confirmation, bulletins in their language.

`keywords` (pure: what JOIN/UNIRME, YES/CONFIRMO, STOP/ALTO and START/ALTA do), `numbers`
(numbers sealed at rest, found by a keyed hash), `repository` (the `sms_subscribers`
table) and `use_cases` (a keyword from a phone; a publication's SMS orders; the delivery
plan's message for a subscriber). The gateway's callback is `http/sms.py`.
"""

from __future__ import annotations

from services.rumor_control.community.keywords import (
    KEYWORDS,
    Keyword,
    SubscriberState,
    decide,
    parse_keyword,
    reply_text,
)
from services.rumor_control.community.numbers import NumberVault, SealError
from services.rumor_control.community.repository import SqlSubscribers, Subscriber, Subscribers

__all__ = [
    "KEYWORDS",
    "Keyword",
    "NumberVault",
    "SealError",
    "SqlSubscribers",
    "Subscriber",
    "SubscriberState",
    "Subscribers",
    "decide",
    "parse_keyword",
    "reply_text",
]
