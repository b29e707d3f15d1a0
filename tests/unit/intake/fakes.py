"""In-memory fakes of intake's unit of work and repositories, for use-case unit tests.

They keep what the real ones keep (rows, versions, audit entries, outbox events,
Idempotency-Keys, signed requests) in lists and dicts, and follow the same rules
that matter to a use case: `apply` writes a transition whole, nothing is visible to
`after_commit` effects until `commit`, and a rolled-back unit of work keeps nothing.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, Self

from services.common.auth import Principal, Role
from services.intake.crypto import KeyRing
from services.intake.deps import IntakeDeps
from services.intake.domain import (
    AuditNote,
    NoticeEvent,
    NoticeRecord,
    Operation,
    StoredIdempotencyKey,
    Transition,
    VersionRecord,
)
from services.intake.policy import load_policy
from services.intake.repository import Cursor, NoticeFilters
from services.intake.signatures import SignatureCheck

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
FINGERPRINT_KEY = b"unit-test-fingerprint-key-0123456789"

FIELD_OFFICE = Principal(token_id="t-fo", name="SF system", role=Role.FIELD_OFFICE, subject="fo-sf")
OTHER_OFFICE = Principal(token_id="t-la", name="LA system", role=Role.FIELD_OFFICE, subject="fo-la")
CONTACT = Principal(token_id="t-c", name="SPOC", role=Role.CONTACT, subject="spoc")
OPS = Principal(token_id="t-ops", name="Operations", role=Role.OPS, subject="ops")


@dataclass
class Store:
    """What the fake database holds; shared by every unit of work opened on it."""

    notices: dict[str, NoticeRecord] = field(default_factory=dict)
    versions: dict[str, list[VersionRecord]] = field(default_factory=dict)
    audit: list[tuple[AuditNote, datetime]] = field(default_factory=list)
    events: list[NoticeEvent] = field(default_factory=list)
    keys: dict[tuple[str, str], tuple[StoredIdempotencyKey, datetime]] = field(default_factory=dict)
    signatures: dict[str, datetime] = field(default_factory=dict)
    # The directory in force as router announced it: (published_at, version) and person ids.
    # CONTACT is in it, as the SPOC is in a real deployment's directory.
    directory: tuple[tuple[datetime, int], frozenset[str]] | None = (
        (NOW - timedelta(days=1), 1),
        frozenset({CONTACT.subject}),
    )


class FakeDirectory:
    def __init__(self, store: Store) -> None:
        self._store = store

    async def holds(self, person_id: str) -> bool:
        return self._store.directory is not None and person_id in self._store.directory[1]

    async def newest(self) -> tuple[datetime, int] | None:
        return self._store.directory[0] if self._store.directory is not None else None

    async def replace(self, *, version: int, person_ids: tuple[str, ...], at: datetime) -> None:
        self._store.directory = ((at, version), frozenset(person_ids))


class FakeAudit:
    def __init__(self, store: Store) -> None:
        self._store = store

    async def append(self, note: AuditNote, *, now: datetime) -> None:
        self._store.audit.append((note, now))


class FakeNotices:
    def __init__(self, store: Store, audit: FakeAudit) -> None:
        self._store = store
        self._audit = audit

    async def apply(self, transition: Transition, *, now: datetime) -> None:
        notice = transition.notice
        assert (notice.id not in self._store.notices) == transition.created
        self._store.notices[notice.id] = notice
        versions = self._store.versions.setdefault(notice.id, [])
        if transition.version is not None:
            assert transition.version.version == len(versions) + 1
            versions.append(transition.version)
        if transition.purge_restricted:
            versions[:] = [replace(v, restricted_sealed=None) for v in versions]
        if transition.event is not None:
            self._store.events.append(transition.event)
        await self._audit.append(transition.audit, now=now)

    async def apply_new(self, transition: Transition, *, now: datetime) -> str | None:
        notice = transition.notice
        existing = await self.find_by_reference(
            source_key=notice.source_key, reference=notice.reference
        )
        if existing is not None:
            return existing.id
        await self.apply(transition, now=now)
        return None

    async def get(self, notice_id: str, *, for_update: bool = False) -> NoticeRecord | None:
        return self._store.notices.get(notice_id)

    async def find_by_reference(self, *, source_key: str, reference: str) -> NoticeRecord | None:
        return next(
            (
                n
                for n in self._store.notices.values()
                if n.source_key == source_key and n.reference == reference
            ),
            None,
        )

    async def versions(self, notice_id: str) -> list[VersionRecord]:
        return list(self._store.versions.get(notice_id, []))

    async def version(self, notice_id: str, version: int) -> VersionRecord | None:
        return next((v for v in await self.versions(notice_id) if v.version == version), None)

    async def page(
        self, filters: NoticeFilters, *, limit: int, offset: int = 0, after: Cursor | None = None
    ) -> list[NoticeRecord]:
        rows = [n for n in self._store.notices.values() if _matches(n, filters)]
        rows.sort(key=lambda n: (n.received_at, n.id), reverse=True)
        if after is not None:
            rows = [n for n in rows if (n.received_at, n.id) < (after.received_at, after.notice_id)]
        return rows[offset : offset + limit]

    async def due_for_expiry(self, *, ended_before: datetime, limit: int) -> list[NoticeRecord]:
        rows = [
            n
            for n in self._store.notices.values()
            if n.state in ("received", "updated") and n.window_end <= ended_before
        ]
        return sorted(rows, key=lambda n: n.window_end)[:limit]

    async def due_for_purge(self, *, closed_before: datetime, limit: int) -> list[NoticeRecord]:
        rows = [
            n
            for n in self._store.notices.values()
            if n.state in ("cancelled", "expired")
            and n.closed_at is not None
            and n.closed_at <= closed_before
            and n.restricted_purged_at is None
        ]
        return sorted(rows, key=lambda n: n.closed_at or NOW)[:limit]


def _matches(notice: NoticeRecord, filters: NoticeFilters) -> bool:
    wanted: dict[str, Any] = {
        "source_key": filters.source_key,
        "status": filters.status,
        "operation_type": filters.operation_type,
        "state": filters.state,
    }
    if any(value is not None and getattr(notice, k) != value for k, value in wanted.items()):
        return False
    if filters.window_from is not None and notice.window_end < filters.window_from:
        return False
    return filters.window_to is None or notice.window_start <= filters.window_to


class FakeRequests:
    def __init__(self, store: Store) -> None:
        self._store = store
        # The natural keys this transaction locked, in the order asked.
        self.locked: list[str] = []

    async def lock_keys(self, keys: Sequence[str]) -> None:
        self.locked.extend(keys)

    async def idempotency_key(self, *, source_key: str, key: str) -> StoredIdempotencyKey | None:
        stored = self._store.keys.get((source_key, key))
        return stored[0] if stored is not None else None

    async def remember_key(
        self,
        *,
        source_key: str,
        key: str,
        operation: Operation,
        notice_id: str,
        digest: str,
        now: datetime,
    ) -> None:
        assert (source_key, key) not in self._store.keys
        self._store.keys[(source_key, key)] = (
            StoredIdempotencyKey(operation, notice_id, digest),
            now,
        )

    async def record_signature(
        self, *, fingerprint: str, signed_at: datetime, now: datetime
    ) -> bool:
        if fingerprint in self._store.signatures:
            return False
        self._store.signatures[fingerprint] = now
        return True

    async def prune(self, *, replays_before: datetime, keys_before: datetime) -> int:
        old_replays = [f for f, seen in self._store.signatures.items() if seen < replays_before]
        old_keys = [k for k, (_, created) in self._store.keys.items() if created < keys_before]
        for fingerprint in old_replays:
            del self._store.signatures[fingerprint]
        for key in old_keys:
            del self._store.keys[key]
        return len(old_replays) + len(old_keys)


class FakeUnitOfWork:
    """One transaction over a `Store`: a copy is worked on and swapped in on commit."""

    def __init__(self, store: Store) -> None:
        self._committed_store = store
        self._effects: list[Callable[[], None]] = []
        self.committed = False
        self._begin()

    def _begin(self) -> None:
        self.store = copy.deepcopy(self._committed_store)
        self.audit = FakeAudit(self.store)
        self.notices = FakeNotices(self.store, self.audit)
        self.requests = FakeRequests(self.store)
        self.directory = FakeDirectory(self.store)

    def after_commit(self, effect: Callable[[], None]) -> None:
        self._effects.append(effect)

    def lone_write_commits(self) -> Self:
        """As IntakeUnitOfWork's (the submit route asks): nothing to change here."""
        return self

    async def commit(self) -> None:
        for name, value in vars(self.store).items():
            setattr(self._committed_store, name, value)
        self.committed = True
        effects, self._effects = self._effects, []
        for effect in effects:
            effect()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._effects.clear()  # rolled back, or committed already


def make_deps(store: Store | None = None, *, now: datetime = NOW) -> IntakeDeps:
    """Deps for unit tests: a fixed clock, a test key, the shipped policy, fake storage."""
    store = store if store is not None else Store()
    return IntakeDeps(
        unit_of_work=lambda: FakeUnitOfWork(store),  # type: ignore[arg-type,return-value]
        clock=lambda: now,
        keyring=KeyRing(keys={"k1": b"k" * 32}, active_key_id="k1"),
        policy=load_policy(),
        signatures=SignatureCheck(
            secrets=(b"s",), required=False, tolerance_s=300, future_skew_s=30
        ),
        fingerprint_key=FINGERPRINT_KEY,
        expiry_grace=timedelta(hours=2),
        retention=timedelta(days=30),
        idempotency_ttl=timedelta(days=7),
        replay_ttl=timedelta(minutes=7),
        sweep_interval_s=60.0,
    )
