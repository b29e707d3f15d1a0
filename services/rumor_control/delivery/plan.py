"""rumor_control's delivery plan: what a bulletin delivery record becomes, and what its
outcome means for the bulletin.

The engine claims a record and asks `resolve` for the message: the version must still be
the bulletin's version in force (a newer version or a retraction supersedes it: Skip),
the recipient must still be in the department file (else Skip), and the address for the
record's channel comes from there (none: a permanent `no_address` failure). An SMS goes to
a liaison's number from that file, or to a community subscriber, still active (else
Skip), at their sealed number. Outcomes come
back to the hooks inside the transaction that records them; each applies one bulletin
transition (timeline entry, `bulletin.delivery_failed`), and logs and metrics follow the
commit.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import assert_never, cast
from weakref import WeakKeyDictionary

from sqlalchemy.ext.asyncio import AsyncSession

from schemas.base import Status
from schemas.deliveries import DeliveryChannel
from services.common.delivery import (
    BaseDeliveryPlan,
    Delivered,
    DeliveryError,
    DeliveryOrder,
    DeliveryRecord,
    EmailOutbound,
    Failure,
    Outbound,
    Settled,
    Skip,
    SmsOutbound,
    Transaction,
    WebhookOutbound,
    contract_reason,
)
from services.common.logging import get_logger
from services.rumor_control.community.numbers import NumberVault
from services.rumor_control.community.use_cases import subscriber_sms
from services.rumor_control.config import RumorControlSettings
from services.rumor_control.delivery.messages import (
    BulletinMessage,
    bulletin_message,
    email_text,
    webhook_payload,
)
from services.rumor_control.department import DepartmentConfig, Liaison, RadioDesk, Recipient
from services.rumor_control.deps import Clock, receipt_link, utc_now
from services.rumor_control.domain import VersionRow
from services.rumor_control.domain import delivery as delivery_outcomes
from services.rumor_control.domain.bulletins import BulletinTransition, BulletinView
from services.rumor_control.domain.delivery import BulletinDelivery
from services.rumor_control.metrics import DELIVERIES, DELIVERY_FAILURES
from services.rumor_control.unit_of_work import RumorControlUoW
from services.rumor_control.vetting.common import sections_of

__all__ = [
    "BulletinDeliveryPlan",
    "OutcomeStep",
    "ReceiptLinks",
    "bulletin_delivery",
    "failed_step",
]

log = get_logger(__name__)

# (bulletin_id, version, recipient_id) -> a signed receipt link.
ReceiptLinks = Callable[[uuid.UUID, int, uuid.UUID], str]
UnitOfWorkOn = Callable[[AsyncSession], RumorControlUoW]


class BulletinDeliveryPlan(BaseDeliveryPlan):
    """Bulletins to liaisons and the radio desk, on the channels the department configures."""

    def __init__(
        self,
        *,
        department: DepartmentConfig,
        unit_of_work: UnitOfWorkOn,
        receipt_links: ReceiptLinks,
        words_per_minute: int,
        give_up_after: timedelta,
        clock: Clock = utc_now,
        console_base_url: str | None = None,
        numbers: NumberVault | None = None,
    ) -> None:
        # Only the channels some recipient uses (SMS: the community's subscribers, when
        # `numbers` can open their numbers): the engine refuses to start when one of them
        # has no sender, instead of a message going out on another channel.
        channels: set[DeliveryChannel] = set(department.channels())
        if numbers is not None:
            channels.add("sms")
        self.channels = tuple(sorted(channels))
        self._numbers = numbers
        self._department = department
        self._unit_of_work = unit_of_work
        self._links = receipt_links
        self._words_per_minute = words_per_minute
        self._give_up_after = give_up_after
        self._clock = clock
        self._console = console_base_url.rstrip("/") if console_base_url else None
        # Bulletins read in one resolve transaction: a fan-out claims many records of one
        # bulletin at once, and reads it once per round.
        self._views: WeakKeyDictionary[AsyncSession, dict[uuid.UUID, BulletinView | None]] = (
            WeakKeyDictionary()
        )

    @classmethod
    def from_settings(
        cls,
        settings: RumorControlSettings,
        *,
        department: DepartmentConfig,
        unit_of_work: UnitOfWorkOn,
        clock: Clock = utc_now,
    ) -> BulletinDeliveryPlan:
        """The plan the settings describe (give-up time, reading speed, link signing)."""

        def links(bulletin_id: uuid.UUID, version: int, recipient_id: uuid.UUID) -> str:
            return receipt_link(
                settings, at=clock(), bulletin_id=bulletin_id, version=version,
                recipient_id=recipient_id,
            )  # fmt: skip

        return cls(
            department=department,
            unit_of_work=unit_of_work,
            receipt_links=links,
            words_per_minute=settings.rumor_radio_words_per_minute,
            give_up_after=timedelta(seconds=settings.rumor_delivery_give_up_s),
            clock=clock,
            console_base_url=settings.console_base_url,
            numbers=NumberVault.from_settings(settings) if settings.rumor_sms_subscribers else None,
        )

    def give_up_after(self, order: DeliveryOrder) -> timedelta:
        """Bulletins, updates and retractions alike: `rumor_delivery_give_up_s`."""
        return self._give_up_after

    # -- resolve ------------------------------------------------------------------------

    async def resolve(self, session: AsyncSession, record: DeliveryRecord) -> Outbound | Skip:
        """The recipient's message for a version still in force, or Skip."""
        view = await self._view(session, record.aggregate_id)
        if view is None:
            return Skip("unknown_bulletin")
        in_force = view.last_published
        if in_force is None or in_force.version != record.aggregate_version:
            # published v1 -> v2 (update) or Cancel (retraction): v1 is not sent any more.
            return Skip("superseded")
        recipient = self._department.recipient(record.recipient_id)
        if record.channel == "sms" and recipient is not None:
            return _liaison_sms(recipient, record, in_force)
        if record.channel == "sms":
            if self._numbers is None:
                return Skip("unknown_recipient")  # SMS subscriptions were switched off
            subscribers = self._unit_of_work(session).subscribers
            return await subscriber_sms(
                subscribers, numbers=self._numbers, record=record, version=in_force
            )
        if recipient is None:
            return Skip("unknown_recipient")  # removed from the department file meanwhile
        message = bulletin_message(
            delivery_id=record.delivery_id, bulletin=view.bulletin, version=in_force,
            purpose=record.purpose, language=record.language,
            radio_desk=isinstance(recipient, RadioDesk), words_per_minute=self._words_per_minute,
        )  # fmt: skip
        url = self._links(record.aggregate_id, record.aggregate_version, recipient.id)
        page = f"{self._console}/bulletins/{record.aggregate_id}" if self._console else None
        return _outbound(record, recipient, message, url, page)

    async def _view(self, session: AsyncSession, bulletin_id: uuid.UUID) -> BulletinView | None:
        seen = self._views.setdefault(session, {})
        if bulletin_id not in seen:
            seen[bulletin_id] = await self._unit_of_work(session).bulletins.view(bulletin_id)
        return seen[bulletin_id]

    # -- outcomes -----------------------------------------------------------------------

    async def on_delivered(
        self, tx: Transaction, record: DeliveryRecord, result: Delivered
    ) -> None:
        """sending -> delivered: on the timeline; counted and logged after commit."""
        await self._apply(tx, [self._step(record, result)])

    async def on_attempt_failed(
        self, tx: Transaction, record: DeliveryRecord, failure: Failure
    ) -> None:
        """An attempt failed and another follows: timeline, event (final false), metrics."""
        await self._apply(tx, [self._step(record, failure)])

    async def on_failed(self, tx: Transaction, record: DeliveryRecord, failure: Failure) -> None:
        """No more attempts (refused, no address, or give-up time): event with final true."""
        await self._apply(tx, [self._step(record, failure)])

    async def on_skipped(self, tx: Transaction, record: DeliveryRecord, skip: Skip) -> None:
        """Nothing was sent (version superseded, recipient gone): why, on the timeline."""
        await self._apply(tx, [self._step(record, skip)])

    async def on_outcomes(self, tx: Transaction, outcomes: Sequence[Settled]) -> None:
        """A batch of outcomes: one transition per bulletin, its timeline rows in one INSERT."""
        await self._apply(tx, [self._step(o.record, o.result) for o in outcomes])

    def _step(
        self, record: DeliveryRecord, result: Delivered | Failure | Skip
    ) -> OutcomeStep | None:
        """What one outcome writes and observes (None: nothing to write)."""
        delivery = bulletin_delivery(record)
        match result:
            case Delivered():
                transition = delivery_outcomes.delivered(
                    delivery, attempts=result.attempts, at=result.delivered_at
                )
                return OutcomeStep(transition, lambda: _observe(delivery, "sent", result.attempts))
            case Failure():
                # `circuit_open` too, as in the router: not a network attempt, but what a
                # reader of the bulletin needs to know (the liaison's endpoint is being left
                # alone); it comes back once per breaker cool-down at most.
                return failed_step(delivery, result)
            case Skip():

                def skipped() -> None:
                    _observe(delivery, "skipped", record.attempts, skip_reason=result.reason)

                if result.reason == "unknown_bulletin":
                    return OutcomeStep(None, skipped)  # no timeline to write on
                transition = delivery_outcomes.delivery_skipped(
                    delivery, skip_reason=result.reason, at=self._clock()
                )
                return OutcomeStep(transition, skipped)
            case _:
                assert_never(result)

    async def _apply(self, tx: Transaction, steps: Sequence[OutcomeStep | None]) -> None:
        """Apply the steps' transitions (merged per bulletin) and observe them after commit.

        An outcome's transition holds timeline entries and events only (no row changes), so
        the outcomes of one bulletin merge into one transition without changing meaning.
        """
        uow = self._unit_of_work(tx.session)
        merged: dict[uuid.UUID, BulletinTransition] = {}
        observers: list[Callable[[], None]] = []
        for step in steps:
            if step is None:
                continue
            observers.append(step.observe)
            if step.transition is None:
                continue
            t, seen = step.transition, merged.get(step.transition.bulletin_id)
            if seen is not None:
                t = replace(
                    seen, timeline=seen.timeline + t.timeline, events=seen.events + t.events
                )
            merged[t.bulletin_id] = t
        for transition in merged.values():
            await uow.bulletins.apply(transition)
        if observers:
            uow.after_commit(lambda: _observe_all(observers))


@dataclass(frozen=True)
class OutcomeStep:
    """One outcome's transition (None: nothing to write) and its after-commit log and metric."""

    transition: BulletinTransition | None
    observe: Callable[[], None]


def _observe_all(observers: Sequence[Callable[[], None]]) -> None:
    for observe in observers:
        observe()


def failed_step(delivery: BulletinDelivery, failure: Failure) -> OutcomeStep:
    """A failed attempt (or a handset failure report): its transition, metric and log."""
    reason = contract_reason(failure.reason)
    transition = delivery_outcomes.delivery_failed(
        delivery, reason=reason, attempts=failure.attempts, final=failure.final, at=failure.at
    )

    def observe() -> None:
        DELIVERY_FAILURES.labels(delivery.channel, reason, str(failure.final).lower()).inc()
        if failure.final:
            _observe(delivery, "failed", failure.attempts, reason=reason)
            return
        DELIVERIES.labels(delivery.channel, "retry").inc()
        log.warning(
            "bulletin.delivery_failed",
            **_fields(delivery),
            reason=reason,
            attempts=failure.attempts,
            final=False,
        )

    return OutcomeStep(transition, observe)


def _outbound(
    record: DeliveryRecord,
    recipient: Recipient,
    message: BulletinMessage,
    url: str,
    page: str | None,
) -> Outbound:
    """The message on the record's own channel, at the recipient's address for it."""
    match record.channel:
        case "webhook":
            if not recipient.webhook_url:
                raise DeliveryError("no webhook configured for the recipient", reason="no_address")
            payload = webhook_payload(message, receipt_url=url, console_url=page)
            return WebhookOutbound(url=recipient.webhook_url, payload=payload)
        case "email":
            if not recipient.email:
                raise DeliveryError("no e-mail configured for the recipient", reason="no_address")
            return EmailOutbound(
                to=recipient.email,
                subject=message.marked(message.headline),
                text=email_text(message, receipt_url=url, console_url=page),
                language=message.language,
            )
        case "sms":
            # `resolve` addresses SMS itself (`_liaison_sms`, `subscriber_sms`).
            raise DeliveryError("no SMS number for the recipient", reason="no_address")
        case _:
            assert_never(record.channel)


def _liaison_sms(recipient: Recipient, record: DeliveryRecord, version: VersionRow) -> SmsOutbound:
    """The version's short text in the record's language, to the liaison's number."""
    if not isinstance(recipient, Liaison) or not recipient.sms:
        # The number was removed from the department file since the bulletin was published.
        raise DeliveryError("no SMS number for the recipient", reason="no_address")
    return SmsOutbound(to=recipient.sms, text=sections_of(version.texts)[record.language].sms)


def bulletin_delivery(record: DeliveryRecord) -> BulletinDelivery:
    """The engine's record as the bulletin's domain sees it (ids, never an address)."""
    return BulletinDelivery(
        delivery_id=record.delivery_id,
        bulletin_id=record.aggregate_id,
        version=record.aggregate_version,
        recipient_id=record.recipient_id,
        channel=record.channel,
        language=record.language,
        purpose=record.purpose,
        status=cast(Status, record.context.get("status", "Actual")),
    )


def _fields(delivery: BulletinDelivery) -> dict[str, object]:
    return {
        "bulletin_id": str(delivery.bulletin_id),
        "version": delivery.version,
        "recipient_id": str(delivery.recipient_id),
        "channel": delivery.channel,
        "purpose": delivery.purpose,
        "delivery_id": str(delivery.delivery_id),
    }


def _observe(delivery: BulletinDelivery, outcome: str, attempts: int, **extra: object) -> None:
    """The outcome's metric and its `bulletin.delivery` log line (after commit)."""
    DELIVERIES.labels(delivery.channel, outcome).inc()
    level = log.warning if outcome == "failed" else log.info
    if outcome == "failed":
        log.error(
            "bulletin.delivery_failed", **_fields(delivery), attempts=attempts, final=True,
            **extra,
        )  # fmt: skip
    level("bulletin.delivery", **_fields(delivery), outcome=outcome, attempts=attempts, **extra)
