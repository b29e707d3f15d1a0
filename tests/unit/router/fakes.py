"""In-memory fakes of router's repositories and unit of work (no database, no Kafka).

`FakeStore` holds what PostgreSQL would; `FakeUnitOfWork` gives a use case the same
repositories the real one does, and runs after-commit effects only on `commit()`.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, cast

from schemas.base import Status, version_ref
from schemas.directory import DirectoryPublished
from schemas.notices import NoticeCancelled, NoticeReceived, NoticeUpdated
from services.common.db import AfterCommit
from services.common.delivery import DeliveryOrder, DeliveryState
from services.common.delivery.handset import HandsetPolicy, ReportEffect
from services.common.delivery.sms_reports import DeliveryReport
from services.common.inbox import Claim
from services.router.config import RouterSettings
from services.router.deps import RouterDeps
from services.router.domain import (
    OPEN_STATES,
    AlertRecord,
    DirectoryDocument,
    DirectorySource,
    DirectoryVersion,
    EscalationGuard,
    Publication,
    TimelineEntry,
    Transition,
    VersionGuard,
)
from services.router.repository.alert_rows import UNREAD_CONTENT, UNREAD_SNAPSHOT
from services.router.unit_of_work import RouterUnitOfWork

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
SPOC = uuid.UUID("00000000-0000-4000-8000-000000000001")
BACKUP = uuid.UUID("00000000-0000-4000-8000-000000000002")
DEPUTY = uuid.UUID("00000000-0000-4000-8000-000000000003")


class Clock:
    """A clock the test moves."""

    def __init__(self, now: datetime = NOW) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@dataclass
class FakeStore:
    """Everything the fake repositories keep, shared by every unit of work of a test."""

    alerts: dict[uuid.UUID, AlertRecord] = field(default_factory=dict)
    timeline: list[tuple[uuid.UUID, TimelineEntry]] = field(default_factory=list)
    outbox: list[Publication] = field(default_factory=list)
    directories: list[DirectoryVersion] = field(default_factory=list)
    # What the delivery engine was asked to deliver, and the state of each record.
    orders: list[DeliveryOrder] = field(default_factory=list)
    delivery_states: dict[uuid.UUID, DeliveryState] = field(default_factory=dict)
    # What the SMS report store answers for a delivery id (set by a test), and the reports.
    report_effects: dict[str, ReportEffect] = field(default_factory=dict)
    reports: list[DeliveryReport] = field(default_factory=list)
    # Alerts opened by `open` (no read of the alert or the directory first).
    opened_without_reads: int = 0
    opened_together: int = 0  # `open_many` calls (one round trip each on PostgreSQL)
    # Inbox claims an opening carried: (consumer, message id).
    claims: set[tuple[str, str]] = field(default_factory=set)

    def events(self, event_type: str) -> list[Any]:
        """The enqueued events of one type, in order."""
        return [p.event for p in self.outbox if p.event.event_type == event_type]

    def entries(self, alert_id: uuid.UUID, kind: str | None = None) -> list[TimelineEntry]:
        return [e for a, e in self.timeline if a == alert_id and (kind is None or e.kind == kind)]


def _passes(stored: AlertRecord, transition: Transition) -> bool:
    guard = transition.guard
    match guard:
        case None:
            return True
        case EscalationGuard():
            return stored.state in guard.states and (
                stored.active_escalation_id == guard.escalation_id
            )
        case VersionGuard():
            return stored.state in guard.states and stored.notice_version == guard.notice_version


class FakeAlerts:
    def __init__(self, store: FakeStore) -> None:
        self.store = store

    async def get(self, alert_id: uuid.UUID, *, lock: bool = False) -> AlertRecord | None:
        return self.store.alerts.get(alert_id)

    async def get_many(self, alert_ids: Collection[uuid.UUID]) -> dict[uuid.UUID, AlertRecord]:
        return {a: self.store.alerts[a] for a in alert_ids if a in self.store.alerts}

    async def get_many_lean(self, alert_ids: Collection[uuid.UUID]) -> dict[uuid.UUID, AlertRecord]:
        lean = {"content": UNREAD_CONTENT, "snapshot": UNREAD_SNAPSHOT}
        alerts = self.store.alerts
        return {a: replace(alerts[a], **lean) for a in alert_ids if a in alerts}

    async def for_notice(self, notice_id: uuid.UUID, *, lock: bool = False) -> AlertRecord | None:
        return next((a for a in self.store.alerts.values() if a.notice_id == notice_id), None)

    async def page(
        self,
        *,
        states: Sequence[str],
        limit: int,
        offset: int,
        notice_id: uuid.UUID | None = None,
    ) -> list[AlertRecord]:
        found = [
            a
            for a in self.store.alerts.values()
            if (not states or a.state in states) and notice_id in (None, a.notice_id)
        ]
        found.sort(key=lambda a: a.triggered_at, reverse=True)
        return found[offset : offset + limit]

    async def count_by_state(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for alert in self.store.alerts.values():
            counts[alert.state] = counts.get(alert.state, 0) + 1
        return counts

    async def apply(self, transition: Transition) -> bool:
        after = transition.after
        stored = self.store.alerts.get(after.id)
        if transition.before is None:
            assert stored is None, "one notice, one alert"
        else:
            assert stored is not None
            if not _passes(stored, transition):
                return False
        if transition.before is not after:  # a note (no change) writes no row
            if stored is not None and after.content is UNREAD_CONTENT:
                # A lean record's change writes none of the columns it did not read.
                after = replace(after, content=stored.content, snapshot=stored.snapshot)
            self.store.alerts[after.id] = after
        for record in transition.timeline:
            entry = TimelineEntry(
                id=len(self.store.timeline) + 1,
                at=record.at,
                kind=record.kind,
                notice_version=record.notice_version,
                step=record.position.step if record.position else None,
                repeat=record.position.repeat if record.position else None,
                recipient_id=record.recipient_id,
                channel=record.channel,
                method=record.method,
                delivery_id=record.delivery_id,
                detail=dict(record.detail),
            )
            self.store.timeline.append((after.id, entry))
        self.store.outbox.extend(transition.events)
        for order in transition.deliveries:
            if order.delivery_id not in self.store.delivery_states:
                self.store.orders.append(order)
                self.store.delivery_states[order.delivery_id] = "pending"
        return True

    async def open(
        self,
        transition: Transition,
        *,
        directory_version: int,
        directory_digest: str,
        claim: Claim | None = None,
    ) -> bool:
        if claim is not None and (claim.consumer, claim.message_id) in self.store.claims:
            return False  # the message was recorded already: nothing is written
        in_force = self.store.directories[-1] if self.store.directories else None
        if in_force is None or (in_force.version, in_force.digest) != (
            directory_version,
            directory_digest,
        ):
            return False
        if any(a.notice_id == transition.after.notice_id for a in self.store.alerts.values()):
            return False
        self.store.opened_without_reads += 1
        if claim is not None:
            self.store.claims.add((claim.consumer, claim.message_id))
        return await self.apply(transition)

    async def open_many(
        self,
        transitions: Sequence[Transition],
        *,
        directory_version: int,
        directory_digest: str,
        claims: Sequence[Claim] | None = None,
    ) -> list[bool]:
        self.store.opened_together += 1
        version, digest = directory_version, directory_digest
        carried: Sequence[Claim | None] = [None] * len(transitions) if claims is None else claims
        return [
            await self.open(t, directory_version=version, directory_digest=digest, claim=claim)
            for t, claim in zip(transitions, carried, strict=True)
        ]

    async def apply_all(self, transitions: Sequence[Transition]) -> list[bool]:
        return [await self.apply(t) for t in transitions]

    async def claim_due_timers(
        self, *, now: datetime, limit: int, skip: Sequence[str] = ()
    ) -> list[AlertRecord]:
        due = [
            a
            for a in self.store.alerts.values()
            if a.next_fire_at is not None
            and a.next_fire_at <= now
            and a.state in OPEN_STATES
            and str(a.id) not in skip
        ]
        due.sort(key=lambda a: cast(datetime, a.next_fire_at))
        return due[:limit]

    async def claim_due_expiry(
        self, *, now: datetime, skip: Sequence[str] = ()
    ) -> uuid.UUID | None:
        due = [
            a
            for a in self.store.alerts.values()
            if a.state != "resolved" and a.expires_at <= now and str(a.id) not in skip
        ]
        return min(due, key=lambda a: a.expires_at).id if due else None

    async def next_deadline(self) -> datetime | None:
        times = [
            a.next_fire_at
            for a in self.store.alerts.values()
            if a.next_fire_at is not None and a.state in OPEN_STATES
        ] + [a.expires_at for a in self.store.alerts.values() if a.state != "resolved"]
        return min(times) if times else None

    async def timeline(self, alert_id: uuid.UUID) -> list[TimelineEntry]:
        return self.store.entries(alert_id)

    async def notified_entry(
        self, alert_id: uuid.UUID, *, delivery_id: uuid.UUID
    ) -> TimelineEntry | None:
        return next(
            (e for e in self.store.entries(alert_id, "notified") if e.delivery_id == delivery_id),
            None,
        )

    async def notified_recipients(self, alert_id: uuid.UUID) -> list[uuid.UUID]:
        return list(
            dict.fromkeys(
                e.recipient_id
                for e in self.store.entries(alert_id, "notified")
                if e.recipient_id is not None
            )
        )


class FakeDirectory:
    def __init__(self, store: FakeStore) -> None:
        self.store = store

    async def current(self) -> DirectoryVersion | None:
        return self.store.directories[-1] if self.store.directories else None

    async def last_file_digest(self) -> str | None:
        files = [d for d in self.store.directories if d.source == "file"]
        return files[-1].digest if files else None

    async def add(
        self,
        *,
        version: int,
        document: DirectoryDocument,
        digest: str,
        source: DirectorySource,
        created_by: str,
        at: datetime,
    ) -> None:
        self.store.directories.append(
            DirectoryVersion(version, document, digest, source, created_by, at)
        )

    async def announce(self, event: DirectoryPublished) -> None:
        self.store.outbox.append(Publication(event))


class FakeDeliveries:
    def __init__(self, store: FakeStore) -> None:
        self.store = store

    async def apply_report(
        self, report: DeliveryReport, *, now: datetime, policy: HandsetPolicy
    ) -> ReportEffect | None:
        self.store.reports.append(report)
        effect = self.store.report_effects.get(report.delivery_id)
        if effect is not None and effect.failure is not None:
            failed = effect.failure.final
            self.store.delivery_states[effect.record.delivery_id] = (
                "failed" if failed else "pending"
            )
        return effect

    async def states(self, delivery_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, DeliveryState]:
        return {
            i: self.store.delivery_states[i]
            for i in delivery_ids
            if i in self.store.delivery_states
        }


class FakeUnitOfWork:
    """The repositories over a `FakeStore`; effects run on commit, never on rollback."""

    def __init__(self, store: FakeStore) -> None:
        self.store = store
        self.alerts = FakeAlerts(store)
        self.directory = FakeDirectory(store)
        self.deliveries = FakeDeliveries(store)
        self.effects: list[AfterCommit] = []
        self.committed = False

    def after_commit(self, effect: AfterCommit) -> None:
        self.effects.append(effect)

    async def commit(self) -> None:
        self.committed = True
        for effect in self.effects:
            effect()
        self.effects = []
        # What an effect put off by two loop turns (a new alert's line) has run by the
        # time a real caller's task resumes after its commit.
        await asyncio.sleep(0)
        await asyncio.sleep(0)

    async def __aenter__(self) -> FakeUnitOfWork:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.effects = []


@dataclass(frozen=True)
class FakeDeps(RouterDeps):
    """RouterDeps whose units of work are fakes over one store."""

    store: FakeStore = field(default_factory=FakeStore)

    def unit_of_work(self) -> RouterUnitOfWork:
        return cast(RouterUnitOfWork, FakeUnitOfWork(self.store))


def make_deps(tmp_path: Path, *, clock: Clock | None = None, **settings: Any) -> FakeDeps:
    """Deps for a use case under test: fake store, a movable clock (no delivery engine: the
    fake repository records the orders a transition carries)."""
    values: dict[str, Any] = {
        "var_dir": tmp_path,
        "database_url": None,
        "link_secret": "unit-test-link-secret",
        "public_base_url": "http://router.test",
        "router_intake_base_url": "http://intake.test",
    }
    values.update(settings)
    return FakeDeps(
        settings=RouterSettings(**values),
        sessions=None,  # type: ignore[arg-type]  # never opened: the store is in memory
        clock=clock or Clock(),
    )


def directory_document(
    *, spoc_wait_s: float = 60, backup_wait_s: float = 60, repeat: int = 0
) -> DirectoryDocument:
    """SPOC (webhook + e-mail), a deputy (webhook), a backup (e-mail); SPOC then backup."""
    return DirectoryDocument.model_validate(
        {
            "people": [
                {
                    "id": str(SPOC),
                    "name": "Assistant Chief",
                    "channels": {
                        "webhook_url": "https://hooks.test/spoc",
                        "email": "spoc@police.example",
                    },
                },
                {
                    "id": str(DEPUTY),
                    "name": "Commander",
                    "channels": {"webhook_url": "https://hooks.test/deputy"},
                },
                {"id": str(BACKUP), "name": "Captain", "channels": {"email": "b@police.example"}},
            ],
            "spoc": {"person_id": str(SPOC)},
            "policy": {
                "steps": [
                    {"target": "spoc", "wait_s": spoc_wait_s},
                    {"target": "person", "person_id": str(BACKUP), "wait_s": backup_wait_s},
                ],
                "repeat": repeat,
            },
        }
    )


def with_directory(store: FakeStore, document: DirectoryDocument | None = None) -> FakeStore:
    """Put version 1 of a directory in the store."""
    store.directories.append(
        DirectoryVersion(1, document or directory_document(), "digest", "api", "admin", NOW)
    )
    return store


def received(
    *, status: Status = "Actual", starts_in: timedelta = timedelta(hours=1), now: datetime = NOW
) -> NoticeReceived:
    """Version 1 of a notice, releasable fields only."""
    return NoticeReceived(
        notice_id=uuid.uuid4(),
        version=1,
        references=(),
        status=status,
        sent_at=now,
        received_at=now,
        received_via="api",
        operation_type="targeted_arrest",
        public_safety_nexus=True,
        window_start=now + starts_in,
        window_end=now + starts_in + timedelta(hours=4),
        area="District 4",
        summary="Federal agents plan an operation in the district.",
        policy_annotations=(),
        restricted_fingerprints=(),
        fingerprint_key_id="test",
    )


def updated(first: NoticeReceived, version: int, *, summary: str) -> NoticeUpdated:
    """A later version of `first`."""
    data = first.model_dump()
    data.update(
        version=version,
        msg_type="Update",
        references=tuple(version_ref(first.notice_id, v) for v in range(1, version)),
        summary=summary,
    )
    return NoticeUpdated.model_validate(data)


def cancelled(first: NoticeReceived, version: int) -> NoticeCancelled:
    """The cancellation of `first`."""
    return NoticeCancelled(
        notice_id=first.notice_id,
        version=version,
        references=tuple(version_ref(first.notice_id, v) for v in range(1, version)),
        status=first.status,
        sent_at=NOW,
        received_at=NOW,
        reason="operation_postponed",
    )
