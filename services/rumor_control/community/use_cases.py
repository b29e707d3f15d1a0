"""Community subscribers by SMS: a keyword changes a subscription; bulletins reach the active.

`handle_keyword` runs in the route's transaction and returns the reply to text back
(sent after the commit). A publication adds one SMS per active subscriber to its orders
(`publishing.requests.community_orders`). `subscriber_sms` is the delivery plan's side:
at send time, a subscriber who has stopped meanwhile is skipped (`STOP` honoured for
every bulletin not yet sent).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import datetime

from services.common.delivery import DeliveryRecord, Skip, SmsOutbound
from services.common.logging import get_logger
from services.rumor_control.community.keywords import (
    Decision,
    Keyword,
    SubscriberState,
    decide,
    parse_keyword,
    reply_text,
)
from services.rumor_control.community.numbers import NumberVault
from services.rumor_control.community.repository import Subscriber, Subscribers
from services.rumor_control.deps import RumorControlDeps
from services.rumor_control.domain import VersionRow
from services.rumor_control.unit_of_work import RumorControlUoW
from services.rumor_control.vetting.common import sections_of

__all__ = ["KeywordOutcome", "handle_keyword", "subscriber_sms"]

log = get_logger(__name__)


@dataclass(frozen=True)
class KeywordOutcome:
    """The reply to text back (None: not a keyword) and the subscription after it."""

    reply: str | None
    subscriber_id: uuid.UUID | None = None
    state: SubscriberState | None = None


async def handle_keyword(
    uow: RumorControlUoW, *, deps: RumorControlDeps, sender: str, text: str
) -> KeywordOutcome:
    """JOIN/UNIRME, YES/CONFIRMO, STOP/ALTO or START/ALTA from a phone; the reply to send."""
    vault = deps.numbers
    number_hash = vault.lookup_hash(sender)
    keyword = parse_keyword(text)
    if keyword is None:
        uow.after_commit(lambda: log.info("sms.keyword_unknown", sender_tag=number_hash[:16]))
        return KeywordOutcome(reply=None)
    now = deps.clock()
    current = await uow.subscribers.by_hash(number_hash, for_update=True)
    decision, subscriber = _decided(current, keyword, vault, sender, number_hash, now=now)
    changed = subscriber is not None and subscriber != current
    if changed and subscriber is not None and not await uow.subscribers.save(subscriber):
        # Another text from this number made it a subscriber meanwhile (two first JOINs
        # at once): this keyword applies to that subscriber, as if it came second.
        current = await uow.subscribers.by_hash(number_hash, for_update=True)
        decision, subscriber = _decided(current, keyword, vault, sender, number_hash, now=now)
        if subscriber is not None and subscriber != current:
            await uow.subscribers.save(subscriber)
    fields = {
        "command": keyword.command,
        "language": keyword.language,
        "reply": decision.reply,
        "state": decision.state,
        "subscriber_id": None if subscriber is None else str(subscriber.subscriber_id),
    }
    uow.after_commit(lambda: log.info("sms.subscription", **fields))
    return KeywordOutcome(
        reply=reply_text(decision.reply, keyword.language),
        subscriber_id=None if subscriber is None else subscriber.subscriber_id,
        state=decision.state,
    )


def _decided(
    current: Subscriber | None,
    keyword: Keyword,
    vault: NumberVault,
    sender: str,
    number_hash: str,
    *,
    now: datetime,
) -> tuple[Decision, Subscriber | None]:
    """The keyword's decision and the subscriber it leaves (unchanged: `current`)."""
    decision = decide(None if current is None else current.state, keyword.command)
    if decision.state is None:
        return decision, current
    if current is None:
        new_id = uuid.uuid4()
        created = Subscriber(
            subscriber_id=new_id, number_hash=number_hash,
            number_sealed=vault.seal(sender, subscriber_id=new_id),
            language=keyword.language, state=decision.state,
            created_at=now, updated_at=now, confirmed_at=None,
        )  # fmt: skip
        return decision, created
    confirmed = current.confirmed_at or (now if decision.state == "active" else None)
    changed = replace(
        current, state=decision.state, language=keyword.language,
        updated_at=now, confirmed_at=confirmed,
    )  # fmt: skip
    return decision, changed


async def subscriber_sms(
    subscribers: Subscribers, *, numbers: NumberVault, record: DeliveryRecord, version: VersionRow
) -> SmsOutbound | Skip:
    """The version's short text for an active subscriber, in the record's language."""
    subscriber = await subscribers.get(record.recipient_id)
    if subscriber is None:
        return Skip("unknown_recipient")
    if subscriber.state != "active":
        return Skip("unsubscribed")  # STOP / ALTO arrived after the bulletin was published
    number = numbers.open(subscriber.number_sealed, subscriber_id=subscriber.subscriber_id)
    return SmsOutbound(to=number, text=sections_of(version.texts)[record.language].sms)
