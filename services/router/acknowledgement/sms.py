"""Acknowledge by SMS: a reply `1`, `ACK`, `OK` or `SI` from the number an alert was sent to.

The number is matched against the alerts' frozen snapshots (the number each SMS went to,
not today's directory), among alerts that can still be acknowledged; a code in the reply
narrows them to the alerts it names, and the latest of those is acknowledged (timeline
method `sms`). Anything else changes nothing. The number is restricted data: logs carry
`number_tag` (a keyed hash that tells two senders apart, and nothing more).
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from dataclasses import dataclass
from typing import Literal

from services.common.logging import get_logger
from services.router.acknowledgement.acknowledge import acknowledge
from services.router.deps import RouterDeps
from services.router.domain import ACKNOWLEDGEABLE_STATES, AlertRecord
from services.router.domain.sms import parse_reply, sms_code
from services.router.errors import AlertClosed, NotARecipient, StaleVersion, UnknownVersion
from services.router.unit_of_work import RouterUoW

__all__ = ["SmsReplyOutcome", "acknowledge_by_sms", "number_tag"]

log = get_logger(__name__)

# Alerts open at once are few (one per notice in force); this bounds the search anyway.
_OPEN_ALERTS_SEARCHED = 500

Ignored = Literal["not_an_acknowledgement", "unknown_number", "wrong_code", "refused"]


@dataclass(frozen=True)
class SmsReplyOutcome:
    """What a reply did: acknowledged an alert (`already`: it was), or `ignored` why."""

    alert_id: uuid.UUID | None = None
    already: bool = False
    ignored: Ignored | None = None


def number_tag(deps: RouterDeps, number: str) -> str:
    """A keyed hash of a phone number, safe to log (never the number itself)."""
    key = deps.settings.kannel_mo_secret.get_secret_value().encode()
    return hmac.new(key, b"aviso-sms-number\x00" + number.encode(), hashlib.sha256).hexdigest()[:16]


async def acknowledge_by_sms(
    uow: RouterUoW, *, deps: RouterDeps, sender: str, text: str
) -> SmsReplyOutcome:
    """A phone's reply: acknowledge the latest open alert it names that reached this number."""
    tag = number_tag(deps, sender)
    reply = parse_reply(text)
    if reply is None:
        return _ignored(uow, "not_an_acknowledgement", tag)
    candidates = await uow.alerts.page(
        states=sorted(ACKNOWLEDGEABLE_STATES), limit=_OPEN_ALERTS_SEARCHED, offset=0
    )
    reached = [(alert, person) for alert in candidates if (person := _texted(alert, sender))]
    if not reached:
        return _ignored(uow, "unknown_number", tag)
    if reply.code is not None:
        reached = [(alert, person) for alert, person in reached if sms_code(alert.id) == reply.code]
        if not reached:
            return _ignored(uow, "wrong_code", tag)
    alert, person_id = max(reached, key=lambda pair: pair[0].version_triggered_at)
    try:
        result = await acknowledge(
            uow,
            deps=deps,
            alert_id=alert.id,
            person_id=person_id,
            notice_version=alert.notice_version,
            method="sms",
        )
    except (NotARecipient, StaleVersion, UnknownVersion, AlertClosed):
        return _ignored(uow, "refused", tag, alert_id=alert.id)
    return SmsReplyOutcome(alert_id=alert.id, already=result.already)


def _texted(alert: AlertRecord, number: str) -> uuid.UUID | None:
    """The person of the alert's snapshot whose SMS number is `number`, if any."""
    return next((r.person_id for r in alert.snapshot.recipients if r.channels.sms == number), None)


def _ignored(
    uow: RouterUoW, reason: Ignored, tag: str, *, alert_id: uuid.UUID | None = None
) -> SmsReplyOutcome:
    fields = {"reason": reason, "sender_tag": tag}
    if alert_id is not None:
        fields["alert_id"] = str(alert_id)
    uow.after_commit(lambda: log.info("sms.reply_ignored", **fields))
    return SmsReplyOutcome(alert_id=alert_id, ignored=reason)
