"""What a notification's outcome does to its alert: the delivery engine's hooks, as use cases.

Each runs inside the transaction in which the engine records the outcome (the record's
new state, this alert's timeline entry, its outbox event and any escalation commit
together) and never commits it. Logs and metrics wait for the commit.

    delivered      -> timeline `delivered`, alert.delivered; triggered -> delivered
    attempt failed -> timeline `delivery_failed` (final: false), alert.delivery_failed
    failed for good-> timeline `delivery_failed` (final: true), alert.delivery_failed;
                      every channel of the current step failed -> escalate now
    skipped        -> timeline `delivery_skipped` (acknowledged, resolved, superseded)
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import assert_never

from services.common.delivery import (
    Delivered,
    DeliveryRecord,
    Failure,
    Settled,
    Skip,
)
from services.common.logging import get_logger
from services.router import domain
from services.router.delivery.compose import position_of
from services.router.delivery.notes import (
    Subject,
    delivered_told,
    failure_told,
    outcome_fields,
    skipped_told,
)
from services.router.deps import RouterDeps
from services.router.domain import AlertRecord, Publication, TimelineRecord, Transition
from services.router.metrics import STEPS_UNREACHABLE
from services.router.observability import alert_fields, drill_label
from services.router.unit_of_work import RouterUoW

__all__ = [
    "OutcomeWrites",
    "decide_outcomes",
    "record_attempt_failed",
    "record_delivered",
    "record_failed",
    "record_outcomes",
    "record_skipped",
]

log = get_logger(__name__)


async def _alert(
    uow: RouterUoW, record: DeliveryRecord, *, lock: bool = False
) -> AlertRecord | None:
    alert = await uow.alerts.get(record.aggregate_id, lock=lock)
    if alert is None:
        uow.after_commit(
            lambda: log.warning("alert.delivery_for_unknown_alert", **outcome_fields(record))
        )
    return alert


async def record_delivered(
    uow: RouterUoW, *, deps: RouterDeps, record: DeliveryRecord, result: Delivered
) -> None:
    """The receiver accepted the notification: the proof, and triggered -> delivered."""
    alert = await _alert(uow, record)
    if alert is None:
        return
    delivered = _delivered(alert, record, result, now=deps.clock())
    current = alert
    if delivered.mark is not None and await uow.alerts.apply(delivered.mark):
        current = delivered.mark.after
    await uow.alerts.apply(delivered.note(current))
    uow.after_commit(delivered.committed)


@dataclass(frozen=True)
class _Delivered:
    """What one delivered outcome writes: the state change (if any), then its timeline note."""

    mark: Transition | None
    entry: TimelineRecord
    publication: Publication
    committed: Callable[[], None]

    def note(self, current: AlertRecord) -> Transition:
        """The timeline entry and event, about the alert as it stands after `mark`."""
        return domain.record(current, self.entry, events=(self.publication,))


def _delivered(
    alert: AlertRecord, record: DeliveryRecord, result: Delivered, *, now: datetime
) -> _Delivered:
    told = delivered_told(Subject.of(alert), record, result, now=now)
    # triggered -> delivered (only for the version this message carried)
    mark = (
        None
        if record.purpose == "cancel"
        else domain.mark_delivered(alert, notice_version=record.aggregate_version, at=now)
    )
    assert told.publication is not None
    return _Delivered(mark, told.entry, told.publication, told.committed)


async def record_attempt_failed(
    uow: RouterUoW, *, deps: RouterDeps, record: DeliveryRecord, failure: Failure
) -> None:
    """An attempt failed and another follows: on the timeline and as an event.

    `circuit_open` is recorded too: the message did not go because its destination's
    breaker is open, which is what whoever reads the alert needs to know. It comes back
    once per breaker cool-down at most, so it cannot flood the timeline.
    """
    alert = await _alert(uow, record)
    if alert is None:
        return
    await _record_failure(uow, deps, alert, record, failure, step_unreachable=False)


async def record_failed(
    uow: RouterUoW, *, deps: RouterDeps, record: DeliveryRecord, failure: Failure
) -> None:
    """No more attempts on this channel; if the whole current step is unreachable, escalate now.

    The alert row is locked first: the step's other channels may be settled by other
    transactions (another batch, another router), and the last of them to commit must
    see the others' outcomes, or nobody would notice that the step is unreachable.
    """
    alert = await _alert(uow, record, lock=True)
    if alert is None:
        return
    now = deps.clock()
    hasten = domain.escalate_now(alert, now=now)
    unreachable = hasten is not None and await _step_unreachable(uow, alert, record)
    await _record_failure(uow, deps, alert, record, failure, step_unreachable=unreachable)
    if hasten is None or not unreachable or not await uow.alerts.apply(hasten):
        return

    def committed() -> None:
        STEPS_UNREACHABLE.labels(drill_label(alert)).inc()
        log.warning(
            "alert.step_unreachable",
            **alert_fields(alert, step=alert.step, repeat=alert.repeat),
            recipient_id=str(record.recipient_id),
        )
        deps.wake_escalation()

    uow.after_commit(committed)


async def _step_unreachable(uow: RouterUoW, alert: AlertRecord, record: DeliveryRecord) -> bool:
    """Whether every channel of the step this record belongs to has failed for good."""
    position = position_of(record)
    if record.purpose == "cancel" or not domain.notifies_current_step(
        alert,
        recipient_id=record.recipient_id,
        notice_version=record.aggregate_version,
        position=position,
    ):
        return False
    recipient = alert.snapshot.recipient(record.recipient_id)
    if recipient is None:
        return False
    siblings = [
        domain.delivery_id_for(
            alert_id=alert.id,
            notice_version=record.aggregate_version,
            recipient_id=record.recipient_id,
            channel=channel,
            purpose=record.purpose,
            position=position,
        )
        for channel in recipient.channels.kinds()
    ]
    if record.delivery_id not in siblings:
        return False  # not one of this step's notifications as notify() names them
    states = await uow.deliveries.states(siblings)
    states[record.delivery_id] = "failed"  # this one, settled in this transaction
    return all(states.get(delivery_id) == "failed" for delivery_id in siblings)


async def _record_failure(
    uow: RouterUoW,
    deps: RouterDeps,
    alert: AlertRecord,
    record: DeliveryRecord,
    failure: Failure,
    *,
    step_unreachable: bool,
) -> None:
    transition, committed = _failure(
        alert, record, failure, now=deps.clock(), step_unreachable=step_unreachable
    )
    await uow.alerts.apply(transition)
    uow.after_commit(committed)


def _failure(
    alert: AlertRecord,
    record: DeliveryRecord,
    failure: Failure,
    *,
    now: datetime,
    step_unreachable: bool,
) -> tuple[Transition, Callable[[], None]]:
    """The failure's timeline entry and event, and its after-commit log and metric."""
    told = failure_told(
        Subject.of(alert), record, failure, now=now, step_unreachable=step_unreachable
    )
    return domain.record(alert, told.entry, events=told.events), told.committed


async def record_skipped(
    uow: RouterUoW, *, deps: RouterDeps, record: DeliveryRecord, skip: Skip
) -> None:
    """Nothing was sent because the notification is no longer wanted."""
    alert = await _alert(uow, record)
    if alert is None:
        return
    transition, committed = _skipped(alert, record, skip, now=deps.clock())
    await uow.alerts.apply(transition)
    uow.after_commit(committed)


def _skipped(
    alert: AlertRecord, record: DeliveryRecord, skip: Skip, *, now: datetime
) -> tuple[Transition, Callable[[], None]]:
    told = skipped_told(Subject.of(alert), record, skip, now=now)
    return domain.record(alert, told.entry), told.committed


async def record_outcomes(uow: RouterUoW, *, deps: RouterDeps, outcomes: Sequence[Settled]) -> None:
    """A batch of outcomes, with the meaning of the single hooks, in a constant number of calls.

    Their alerts are read in one query, without content or snapshot; the state changes
    (triggered -> delivered) and every timeline entry and event go to one `apply_all`. A
    final failure stays one at a time, after the rest: it locks its alert to decide
    whether the whole step is unreachable (see `record_failed`).
    """
    finals = [o for o in outcomes if isinstance(o.result, Failure) and o.result.final]
    rest = [o for o in outcomes if not (isinstance(o.result, Failure) and o.result.final)]
    # Neither the content nor the snapshot is needed here (a final failure, which may
    # look at the snapshot's channels, reads its alert whole in `record_failed`).
    found = await uow.alerts.get_many_lean({o.record.aggregate_id for o in rest})
    writes = decide_outcomes(found, rest, now=deps.clock())
    # The changes (triggered -> delivered) and every note in one call: a note changes no
    # row, and its entry and event stand whether or not a change's guard passes. A
    # notice's channels are often settled together: their marks of one alert are the
    # same change under the same guard, so it is written once.
    marks = list({(m.after.id, m.guard): m for m, _ in writes.marks}.values())
    notes = [note for note, _ in writes.notes]
    if marks or notes:
        await uow.alerts.apply_all([*marks, *notes])
    observers = [observe for _, observe in writes.observers]
    if observers:
        uow.after_commit(lambda: _observe_all(observers))
    for outcome in finals:
        assert isinstance(outcome.result, Failure)
        await record_failed(uow, deps=deps, record=outcome.record, failure=outcome.result)


@dataclass(frozen=True)
class OutcomeWrites:
    """What a batch of outcomes (no final failure among them) writes, each part with the
    record it is for: the state changes (one per delivered outcome that marks its alert;
    the same change for two records of one alert), the notes (timeline entry and event,
    no row change) and the after-commit log lines and metrics."""

    marks: list[tuple[Transition, DeliveryRecord]]
    notes: list[tuple[Transition, DeliveryRecord]]
    observers: list[tuple[DeliveryRecord, Callable[[], None]]]


def decide_outcomes(
    found: Mapping[uuid.UUID, AlertRecord], outcomes: Sequence[Settled], *, now: datetime
) -> OutcomeWrites:
    """The writes of `outcomes` (no final failure among them) given their alerts as read
    (`found`; an alert missing there is logged, nothing written for it)."""
    writes = OutcomeWrites([], [], [])
    for outcome in outcomes:
        record, result = outcome.record, outcome.result
        alert = found.get(record.aggregate_id)
        if alert is None:
            writes.observers.append((record, _unknown(record)))
            continue
        match result:
            case Delivered():
                decided = _delivered(alert, record, result, now=now)
                if decided.mark is not None:
                    writes.marks.append((decided.mark, record))
                note, observe = decided.note(alert), decided.committed
            case Failure():
                note, observe = _failure(alert, record, result, now=now, step_unreachable=False)
            case Skip():
                note, observe = _skipped(alert, record, result, now=now)
            case _:
                assert_never(result)
        writes.notes.append((note, record))
        writes.observers.append((record, observe))
    return writes


def _unknown(record: DeliveryRecord) -> Callable[[], None]:
    return lambda: log.warning("alert.delivery_for_unknown_alert", **outcome_fields(record))


def _observe_all(observers: Sequence[Callable[[], None]]) -> None:
    for observe in observers:
        observe()
