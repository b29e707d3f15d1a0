"""In-memory fakes of rumor_control's repositories and unit of work, for use-case tests.

One `Store` holds what the database would; each `FakeUnitOfWork` sees it. Effects
registered with `after_commit` run only when the fake commits, as on the real one, so a
test can tell a log line written after commit from one that leaked out of a rolled-back
transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, Self

from schemas.base import EventData, Language, Status
from schemas.notices import NoticeReceived, NoticeUpdated
from services.common.db import AfterCommit
from services.common.delivery import DeliveryOrder
from services.common.delivery.handset import HandsetPolicy, ReportEffect
from services.common.delivery.sms_reports import DeliveryReport
from services.common.inbox import Claim
from services.rumor_control.community.repository import Subscriber
from services.rumor_control.config import PACKAGE_DIR, RumorControlSettings
from services.rumor_control.department import load_department
from services.rumor_control.deps import RumorControlDeps
from services.rumor_control.domain import (
    Aggregate,
    AuditEntry,
    BulletinRow,
    BulletinState,
    DeliveryRow,
    NoticeRow,
    ReceiptRow,
    ReportRow,
    RumorRow,
    TimelineRecord,
    VersionApplied,
    VersionRow,
    fingerprint_key_id,
)
from services.rumor_control.domain.bulletins import BulletinTransition, BulletinView
from services.rumor_control.domain.rumors import RumorTransition
from services.rumor_control.drafting import Drafter
from services.rumor_control.gazetteer import load_gazetteer
from tests.support.events import fingerprinted_notice

__all__ = [
    "FakeClock",
    "FakeDeliveryEngine",
    "FakeUnitOfWork",
    "Store",
    "make_deps",
    "notice",
]


class FakeClock:
    """A clock a test moves by hand."""

    def __init__(self, now: datetime | None = None) -> None:
        self.now = now or datetime(2026, 3, 3, 15, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        """Move the clock forward by a timedelta's keyword arguments."""
        self.now += timedelta(**delta)


@dataclass
class Store:
    """What the database holds, plus the outbox and the timeline as written."""

    notices: dict[uuid.UUID, NoticeRow] = field(default_factory=dict)
    standby_requests: set[uuid.UUID] = field(default_factory=set)
    # The consumer's inbox as a carried claim wrote it: (consumer, message id).
    claims: set[tuple[str, str]] = field(default_factory=set)
    rumors: dict[uuid.UUID, RumorRow] = field(default_factory=dict)
    reports: list[ReportRow] = field(default_factory=list)
    bulletins: dict[uuid.UUID, BulletinRow] = field(default_factory=dict)
    versions: dict[uuid.UUID, dict[int, VersionRow]] = field(default_factory=dict)
    deliveries: dict[uuid.UUID, DeliveryRow] = field(default_factory=dict)
    # What the delivery engine accepted, by delivery id (in the publishing transaction).
    orders: dict[uuid.UUID, DeliveryOrder] = field(default_factory=dict)
    receipts: dict[tuple[uuid.UUID, int, uuid.UUID], ReceiptRow] = field(default_factory=dict)
    timeline: list[TimelineRecord] = field(default_factory=list)
    outbox: list[EventData] = field(default_factory=list)
    subscribers: dict[uuid.UUID, Subscriber] = field(default_factory=dict)
    # What the SQL `apply_report` would decide, by delivery id (set by a test), and the
    # reports applied.
    report_effects: dict[str, ReportEffect] = field(default_factory=dict)
    applied_reports: list[DeliveryReport] = field(default_factory=list)

    def events(self, kind: type[EventData]) -> list[Any]:
        """Outgoing events of one type, oldest first."""
        return [event for event in self.outbox if isinstance(event, kind)]

    def actions(self, aggregate_id: uuid.UUID) -> list[str]:
        """The timeline of one rumor or bulletin, as action names."""
        return [step.action for step in self.timeline if step.aggregate_id == aggregate_id]


class FakeNotices:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def lock(self, notice_id: uuid.UUID) -> None:
        return None

    async def get(self, notice_id: uuid.UUID) -> NoticeRow | None:
        return self.store.notices.get(notice_id)

    async def get_many(self, notice_ids: Iterable[uuid.UUID]) -> list[NoticeRow]:
        return [self.store.notices[i] for i in set(notice_ids) if i in self.store.notices]

    async def recent(self, *, since: datetime) -> list[NoticeRow]:
        return [
            n for n in self.store.notices.values() if n.window_end is None or n.window_end >= since
        ]

    async def apply_version(
        self, notice: NoticeReceived | NoticeUpdated, *, at: datetime
    ) -> VersionApplied:
        prints = frozenset(notice.restricted_fingerprints)
        fresh = NoticeRow(
            notice.notice_id, notice.version, notice.status, notice.area, notice.area_code,
            notice.window_start, notice.window_end, None, prints,
            frozenset({notice.fingerprint_key_id}),
        )  # fmt: skip
        existing = self.store.notices.get(notice.notice_id)
        if existing is not None:
            merged = fresh if notice.version > existing.version else existing
            fresh = replace(
                merged,
                cancelled_at=existing.cancelled_at,
                fingerprints=existing.fingerprints | prints,
                key_ids=existing.key_ids | {notice.fingerprint_key_id},
            )
        self.store.notices[notice.notice_id] = fresh
        waiting = notice.notice_id in self.store.standby_requests
        self.store.standby_requests.discard(notice.notice_id)
        return VersionApplied(first_seen=existing is None, standby_requested=waiting)

    async def project_versions(
        self, versions: Sequence[NoticeReceived | NoticeUpdated], *, at: datetime
    ) -> list[VersionApplied]:
        applied = []
        for notice in versions:
            waiting = notice.notice_id in self.store.standby_requests
            self.store.standby_requests.discard(notice.notice_id)
            new = notice.notice_id not in self.store.notices
            if new:
                await self.apply_version(notice, at=at)
            applied.append(VersionApplied(first_seen=new, standby_requested=waiting))
        return applied

    async def merge_version(self, notice: NoticeReceived | NoticeUpdated, *, at: datetime) -> None:
        await self.apply_version(notice, at=at)

    async def project_new_claiming(
        self, notice: NoticeReceived | NoticeUpdated, *, at: datetime, claim: Claim
    ) -> bool:
        key = (claim.consumer, claim.message_id)
        if (
            key in self.store.claims
            or notice.notice_id in self.store.notices
            or notice.notice_id in self.store.standby_requests
        ):
            return False
        self.store.claims.add(key)
        await self.apply_version(notice, at=at)
        return True

    async def cancel(
        self, *, notice_id: uuid.UUID, version: int, status: Status, at: datetime
    ) -> None:
        existing = self.store.notices.get(notice_id)
        if existing is None:
            existing = NoticeRow(
                notice_id, version, status, None, None, None, None, None, frozenset()
            )
        self.store.notices[notice_id] = replace(
            existing, cancelled_at=at, version=max(version, existing.version)
        )

    async def fingerprints_of(
        self, notice_ids: Iterable[uuid.UUID]
    ) -> tuple[frozenset[str], frozenset[str]]:
        notices = await self.get_many(notice_ids)
        return (
            frozenset().union(*(n.fingerprints for n in notices)),
            frozenset().union(*(n.key_ids for n in notices)),
        )

    async def request_standby(
        self, *, notice_id: uuid.UUID, alert_id: uuid.UUID, by: uuid.UUID, at: datetime
    ) -> None:
        self.store.standby_requests.add(notice_id)


class FakeRumors:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def candidates(
        self,
        *,
        status: Status,
        area_code: str | None,
        place_key: str,
        observed_at: datetime,
        window: timedelta,
    ) -> list[RumorRow]:
        return sorted(
            (
                r
                for r in self.store.rumors.values()
                if r.status == status
                and r.area_code == area_code
                and (area_code is not None or r.place_key == place_key)
                and r.last_observed_at >= observed_at - window
                and r.first_observed_at <= observed_at + window
            ),
            key=lambda r: r.first_reported_at,
        )

    async def get(self, rumor_id: uuid.UUID, *, for_update: bool = False) -> RumorRow | None:
        return self.store.rumors.get(rumor_id)

    async def latest(self, *, limit: int = 200) -> list[RumorRow]:
        rumors = sorted(self.store.rumors.values(), key=lambda r: r.last_reported_at, reverse=True)
        return rumors[:limit]

    async def reports_of(self, rumor_id: uuid.UUID) -> list[ReportRow]:
        return [r for r in self.store.reports if r.rumor_id == rumor_id]

    async def reports_of_many(
        self, rumor_ids: Sequence[uuid.UUID]
    ) -> dict[uuid.UUID, list[ReportRow]]:
        return {i: await self.reports_of(i) for i in rumor_ids}

    async def apply(self, transition: RumorTransition) -> None:
        assert transition.created == (transition.rumor.rumor_id not in self.store.rumors)
        self.store.rumors[transition.rumor.rumor_id] = transition.rumor
        if transition.report is not None:
            self.store.reports.append(transition.report)
        self.store.timeline.append(transition.timeline)
        self.store.outbox.append(transition.event)


class FakeBulletins:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def get(self, bulletin_id: uuid.UUID, *, for_update: bool = False) -> BulletinRow | None:
        return self.store.bulletins.get(bulletin_id)

    async def view(
        self, bulletin_id: uuid.UUID, *, for_update: bool = False
    ) -> BulletinView | None:
        bulletin = self.store.bulletins.get(bulletin_id)
        if bulletin is None:
            return None
        versions = self.store.versions[bulletin_id]
        return BulletinView(bulletin, tuple(versions[n] for n in sorted(versions)))

    async def standby_for(self, notice_id: uuid.UUID) -> uuid.UUID | None:
        for bulletin in self.store.bulletins.values():
            if bulletin.standby_for_notice == notice_id:
                return bulletin.bulletin_id
        return None

    async def of_rumor(
        self, rumor_id: uuid.UUID, *, states: Sequence[BulletinState]
    ) -> list[uuid.UUID]:
        found = [b for b in self.store.bulletins.values() if b.rumor_id == rumor_id]
        return [b.bulletin_id for b in sorted(found, key=lambda b: b.created_at)
                if b.state in states]  # fmt: skip

    async def latest(
        self,
        *,
        states: Sequence[BulletinState] | None = None,
        drills: bool = True,
        limit: int = 200,
    ) -> list[tuple[BulletinRow, VersionRow]]:
        rows = [
            (b, self.store.versions[b.bulletin_id][b.current_version])
            for b in self.store.bulletins.values()
            if (states is None or b.state in states) and (drills or b.status == "Actual")
        ]
        return sorted(rows, key=lambda row: row[0].updated_at, reverse=True)[:limit]

    async def citing(
        self, notice_id: uuid.UUID, *, states: Sequence[BulletinState]
    ) -> list[tuple[BulletinRow, VersionRow]]:
        rows = [
            (b, self.store.versions[b.bulletin_id][b.current_version])
            for b in self.store.bulletins.values()
            if b.state in states and notice_id in b.notice_ids
        ]
        return sorted(rows, key=lambda row: row[0].created_at)

    async def public_versions(self, *, limit: int = 200) -> list[tuple[BulletinRow, VersionRow]]:
        rows = [
            (b, v)
            for b in self.store.bulletins.values()
            if b.status == "Actual"
            for v in self.store.versions[b.bulletin_id].values()
            if v.state == "published"
        ]
        return sorted(rows, key=lambda row: row[1].published_at or row[1].drafted_at, reverse=True)

    async def apply(self, transition: BulletinTransition) -> None:
        store = self.store
        if transition.bulletin is not None:
            known = transition.bulletin.bulletin_id in store.bulletins
            assert known != transition.created
            store.bulletins[transition.bulletin_id] = transition.bulletin
        versions = store.versions.setdefault(transition.bulletin_id, {})
        for version in transition.inserted:
            assert version.version not in versions
            versions[version.version] = version
        for version in transition.updated:
            assert version.version in versions
            versions[version.version] = version
        store.timeline.extend(transition.timeline)
        store.outbox.extend(transition.events)


class FakeDeliveries:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def of(self, bulletin_id: uuid.UUID) -> list[DeliveryRow]:
        return [d for d in self.store.deliveries.values() if d.bulletin_id == bulletin_id]

    async def apply_report(
        self, report: DeliveryReport, *, now: datetime, policy: HandsetPolicy
    ) -> ReportEffect | None:
        self.store.applied_reports.append(report)
        return self.store.report_effects.get(report.delivery_id)

    async def confirm_receipt(
        self,
        *,
        bulletin_id: uuid.UUID,
        version: int,
        recipient_id: uuid.UUID,
        at: datetime,
        first_step: TimelineRecord,
    ) -> bool:
        key = (bulletin_id, version, recipient_id)
        existing = self.store.receipts.get(key)
        if existing is not None:
            self.store.receipts[key] = replace(
                existing, last_seen_at=at, seen_count=existing.seen_count + 1
            )
            return False
        self.store.receipts[key] = ReceiptRow(bulletin_id, version, recipient_id, at, at, 1)
        self.store.timeline.append(first_step)
        return True

    async def receipts_of(self, bulletin_id: uuid.UUID) -> list[ReceiptRow]:
        return [r for r in self.store.receipts.values() if r.bulletin_id == bulletin_id]


class FakeTimeline:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def entries(self, *, aggregate: Aggregate, aggregate_id: uuid.UUID) -> list[AuditEntry]:
        return [
            AuditEntry(
                step.at,
                step.aggregate,
                step.aggregate_id,
                step.version,
                step.action,
                None if step.actor is None else step.actor.id,
                None if step.actor is None else step.actor.name,
                None if step.actor is None else step.actor.role,
                step.detail,
            )
            for step in self.store.timeline
            if step.aggregate == aggregate and step.aggregate_id == aggregate_id
        ]


class FakeSubscribers:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def by_hash(self, number_hash: str, *, for_update: bool = False) -> Subscriber | None:
        found = [s for s in self.store.subscribers.values() if s.number_hash == number_hash]
        return found[0] if found else None

    async def get(self, subscriber_id: uuid.UUID) -> Subscriber | None:
        return self.store.subscribers.get(subscriber_id)

    async def save(self, subscriber: Subscriber) -> bool:
        taken = [
            s
            for s in self.store.subscribers.values()
            if s.number_hash == subscriber.number_hash
            and s.subscriber_id != subscriber.subscriber_id
        ]
        if taken:
            return False  # the unique number hash
        self.store.subscribers[subscriber.subscriber_id] = subscriber
        return True

    async def active(self) -> list[tuple[uuid.UUID, Language]]:
        return sorted(
            (s.subscriber_id, s.language)
            for s in self.store.subscribers.values()
            if s.state == "active"
        )


class FakeUnitOfWork:
    """The unit of work over a `Store`; after-commit effects run on commit only."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.notices = FakeNotices(store)
        self.rumors = FakeRumors(store)
        self.bulletins = FakeBulletins(store)
        self.deliveries = FakeDeliveries(store)
        self.timeline = FakeTimeline(store)
        self.subscribers = FakeSubscribers(store)
        self.effects: list[AfterCommit] = []
        self.committed = False
        # Stands for the transaction's session: only the fake delivery engine receives it.
        self.session: Any = self

    def after_commit(self, effect: AfterCommit) -> None:
        self.effects.append(effect)

    async def commit(self) -> None:
        self.committed = True
        for effect in self.effects:
            effect()
        self.effects.clear()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.effects.clear()


class FakeDeliveryEngine:
    """The delivery engine's `accept_many`: records orders in the store, idempotent on ids."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def accept_many(self, session: Any, orders: Sequence[DeliveryOrder]) -> int:
        new = 0
        for order in orders:
            if order.delivery_id not in self.store.orders:
                self.store.orders[order.delivery_id] = order
                new += 1
        return new


_DEPARTMENT = load_department(PACKAGE_DIR / "department.yaml")
_GAZETTEER = load_gazetteer(PACKAGE_DIR / "gazetteer.yaml")
_DRAFTER = Drafter(PACKAGE_DIR / "templates", _DEPARTMENT)


def make_deps(store: Store, clock: FakeClock | None = None) -> RumorControlDeps:
    """Deps over the bundled department, gazetteer and templates, with fakes for the rest."""
    return RumorControlDeps(
        settings=RumorControlSettings(),
        department=_DEPARTMENT,
        gazetteer=_GAZETTEER,
        drafter=_DRAFTER,
        source="aviso.rumor_control",
        unit_of_work=lambda: FakeUnitOfWork(store),
        delivery=FakeDeliveryEngine(store),
        clock=clock or FakeClock(),
    )


def notice(
    deps: RumorControlDeps,
    *,
    area_code: str = "riverside",
    status: Status = "Actual",
    restricted_terms: tuple[str, ...] = (),
    start: datetime | None = None,
) -> NoticeReceived:
    """A notice as intake would emit it: restricted terms only as fingerprints."""
    return fingerprinted_notice(
        fingerprint_key=deps.fingerprint_key,
        key_id=fingerprint_key_id(deps.fingerprint_key),
        now=deps.clock(),
        area_code=area_code,
        status=status,
        restricted_terms=restricted_terms,
        start=start,
    )
