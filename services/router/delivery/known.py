"""An outcome batch decided from what its delivery records know, without reading alerts.

Why: the carried round (`carried.py`) read its alerts, autocommitted, before the settling
statement: one round trip a round, one statement a notice at 10/s. What the decisions
take from an alert is its notice, status and step (said in the entry, the event and the
log line) and its state and version (whether triggered -> delivered applies). A record
opened since notices' ids are kept in its context knows the first three as they were
when its alert was opened, which is what the read gives: a notice's id never changes,
the status the event says is the record's already, and a message tied to a step says
its own step. The change needs no read either: the carried statement guards it in SQL
by state and notice version (`delivered_unread`), as it always did, so an alert already
delivered, acknowledged or at a newer version is left as it is, as when the read
decided not to ask.

A batch where any record lacks these (written before notices' ids were kept, or a
cancellation, which is tied to no step and says its alert's current one) reads its
alerts as before.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import assert_never

from services.common.delivery import Delivered, DeliveryRecord, Failure, Settled, Skip
from services.router.delivery.compose import position_of
from services.router.delivery.notes import (
    Subject,
    Told,
    delivered_told,
    failure_told,
    skipped_told,
)
from services.router.domain import Publication, TimelineRecord, delivered_unread
from services.router.repository.alert_settled import CarriedWrites, Observer

__all__ = ["decide_known", "known_subject"]


def known_subject(record: DeliveryRecord) -> Subject | None:
    """The record's alert as it was when the record was ordered (None: it does not say
    its notice, or its message is tied to no step)."""
    notice_id, status = record.context.get("notice_id"), record.context.get("status")
    position = position_of(record)
    if notice_id is None or status is None or position is None:
        return None
    return Subject(record.aggregate_id, uuid.UUID(str(notice_id)), status, position.step)


def decide_known(outcomes: Sequence[Settled], *, now: datetime) -> CarriedWrites | None:
    """`decide_outcomes`' writes for `outcomes` (no final failure among them) from their
    records alone, or None: a record that does not know its alert, or delivered records
    of two notice versions (two changes: the transaction decides those)."""
    marks: list[tuple[uuid.UUID, DeliveryRecord]] = []
    entries: list[tuple[uuid.UUID, TimelineRecord, DeliveryRecord]] = []
    events: list[tuple[Publication, DeliveryRecord]] = []
    observers: list[tuple[DeliveryRecord, Observer]] = []
    for outcome in outcomes:
        record, result = outcome.record, outcome.result
        subject = known_subject(record)
        if subject is None:
            return None
        told: Told
        match result:
            case Delivered():
                told = delivered_told(subject, record, result, now=now)
                if record.purpose != "cancel":
                    marks.append((subject.id, record))  # triggered -> delivered, guarded
            case Failure():
                told = failure_told(subject, record, result, now=now, step_unreachable=False)
            case Skip():
                told = skipped_told(subject, record, result, now=now)
            case _:
                assert_never(result)
        entries.append((subject.id, told.entry, record))
        events.extend((publication, record) for publication in told.events)
        observers.append((record, told.committed))
    versions = {record.aggregate_version for _, record in marks}
    if len(versions) > 1:
        return None
    change = None
    if versions:
        guard, values = delivered_unread(notice_version=versions.pop(), at=now)
        change = (guard.states, guard.notice_version, tuple(sorted(values.items())))
    return CarriedWrites(change, marks, entries, events, observers)
