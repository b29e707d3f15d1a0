"""Intake's unit of work: one transaction with the repositories use cases need.

Use cases are typed against `IntakeUoW`, the Protocol below, so unit tests pass an
in-memory fake (tests/unit/intake/fakes.py) and production passes `IntakeUnitOfWork`.
A use case never commits: whoever opened the unit of work commits after it returns.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from types import TracebackType
from typing import Protocol, Self, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.common.db import AfterCommit, SessionlessCommit, UnitOfWork
from services.intake.audit import AuditTrail
from services.intake.domain import (
    AuditNote,
    NoticeRecord,
    Operation,
    StoredIdempotencyKey,
    Transition,
    VersionRecord,
)
from services.intake.grouped_writes import GroupedWrites
from services.intake.ledger import RequestLedger
from services.intake.people import DirectoryPeople
from services.intake.repository import Cursor, NoticeFilters, NoticeRepository

__all__ = [
    "AuditLog",
    "Directory",
    "IntakeUnitOfWork",
    "IntakeUoW",
    "Notices",
    "Requests",
]


class Notices(Protocol):
    """What use cases read and write of notices (see repository.NoticeRepository)."""

    async def apply(self, transition: Transition, *, now: datetime) -> None: ...
    async def apply_new(self, transition: Transition, *, now: datetime) -> str | None: ...
    async def get(self, notice_id: str, *, for_update: bool = False) -> NoticeRecord | None: ...
    async def find_by_reference(
        self, *, source_key: str, reference: str
    ) -> NoticeRecord | None: ...
    async def versions(self, notice_id: str) -> list[VersionRecord]: ...
    async def version(self, notice_id: str, version: int) -> VersionRecord | None: ...
    async def page(
        self, filters: NoticeFilters, *, limit: int, offset: int = 0, after: Cursor | None = None
    ) -> list[NoticeRecord]: ...
    async def due_for_expiry(self, *, ended_before: datetime, limit: int) -> list[NoticeRecord]: ...
    async def due_for_purge(self, *, closed_before: datetime, limit: int) -> list[NoticeRecord]: ...


class Requests(Protocol):
    """Idempotency-Keys and signature replays (see ledger.RequestLedger)."""

    async def idempotency_key(
        self, *, source_key: str, key: str
    ) -> StoredIdempotencyKey | None: ...
    async def remember_key(
        self,
        *,
        source_key: str,
        key: str,
        operation: Operation,
        notice_id: str,
        digest: str,
        now: datetime,
    ) -> None: ...
    async def record_signature(
        self, *, fingerprint: str, signed_at: datetime, now: datetime
    ) -> bool: ...
    async def prune(self, *, replays_before: datetime, keys_before: datetime) -> int: ...
    async def lock_keys(self, keys: Sequence[str]) -> None: ...


class AuditLog(Protocol):
    """The hash-chained audit log (see audit.AuditTrail): append only; a sealer chains."""

    async def append(self, note: AuditNote, *, now: datetime) -> None: ...


class Directory(Protocol):
    """Who is in the directory in force (see people.DirectoryPeople)."""

    async def holds(self, person_id: str) -> bool: ...
    async def newest(self) -> tuple[datetime, int] | None: ...
    async def replace(self, *, version: int, person_ids: tuple[str, ...], at: datetime) -> None: ...


class IntakeUoW(Protocol):
    """What a use case is given: repositories and after-commit hooks, never `commit`."""

    @property
    def notices(self) -> Notices: ...
    @property
    def requests(self) -> Requests: ...
    @property
    def audit(self) -> AuditLog: ...
    @property
    def directory(self) -> Directory: ...
    def after_commit(self, effect: AfterCommit) -> None: ...


class IntakeUnitOfWork(UnitOfWork):
    """`services.common.db.UnitOfWork` with intake's repositories over its session.

    A submission's unit of work on PostgreSQL (`lone_write_commits`, with the process's
    `stand_in` session, which IntakeDeps gives on PostgreSQL only)
    opens its session only when something asks for it: a plain submission's one statement
    goes autocommitted on a borrowed connection with no session at all
    (fast_writes.insert_new_notice_alone), and its commit runs the after-commit hooks kept
    meanwhile (`SessionlessCommit`). A request that locks first (an Idempotency-Key, a
    signature) or reads (a retry) opens the session then, as every other unit of work
    opens it at once.
    """

    def __init__(
        self,
        factory: async_sessionmaker[AsyncSession],
        *,
        event_source: str,
        stand_in: AsyncSession | None = None,
        writes: GroupedWrites | None = None,
    ) -> None:
        super().__init__(factory)
        self._writes = writes
        self._event_source = event_source
        self._stand_in = stand_in
        self._entered = False
        self._sessionless: SessionlessCommit | None = None
        self._notices: NoticeRepository | None = None
        self._requests: RequestLedger | None = None
        self._audit: AuditTrail | None = None
        self._directory: DirectoryPeople | None = None
        self._lone_write_commits = False

    def lone_write_commits(self) -> Self:
        """Let a use case's only write, sent first, commit by itself on PostgreSQL.

        For a caller that runs a use case whose writes are one statement or begin with a
        lock (the submission: a plain one is one statement; one with an Idempotency-Key or
        a signature locks first, so its writes stay together). That statement then needs
        no BEGIN and COMMIT round trips (direct.py), nor a session when it is the first
        thing sent; it is as atomic and as durable, and the caller still commits (the rest
        of the unit of work, and its after-commit hooks).
        """
        self._lone_write_commits = True
        return self

    async def __aenter__(self) -> Self:
        if self._lone_write_commits and self._stand_in is not None:
            self._sessionless = SessionlessCommit(self._stand_in)
        else:
            await super().__aenter__()
        self._entered = True
        self._notices = NoticeRepository(
            self._session_now,
            event_source=self._event_source,
            lone_write_commits=self._lone_write_commits,
            sessionless=self._still_sessionless,
            writes=self._writes,
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if self._session is not None:
                await super().__aexit__(exc_type, exc, tb)
        finally:
            self._entered = False
            self._sessionless = None  # not committed: its hooks are dropped
            self._notices = self._requests = self._audit = self._directory = None

    def _session_now(self) -> AsyncSession:
        """The session, opened (begun lazily, by its first statement) when still unopened."""
        if not self._entered:
            raise RuntimeError("IntakeUnitOfWork used outside its `async with` block")
        if self._session is None:
            self._session = self._factory()
        return self._session

    def _still_sessionless(self) -> SessionlessCommit | None:
        return self._sessionless if self._session is None else None

    @property
    def session(self) -> AsyncSession:
        """The unit of work's session (opened now if the unit of work opened none yet)."""
        return self._session_now()

    def after_commit(self, effect: AfterCommit) -> None:
        """Run `effect` (a log line, a metric) only once this unit of work has committed."""
        sessionless = self._still_sessionless()
        if sessionless is not None:
            sessionless.after_commit(effect)
        else:
            super().after_commit(effect)

    async def commit(self) -> None:
        """Commit the transaction; the unit of work may not be used afterwards."""
        if self._session is not None:
            await super().commit()
        if self._sessionless is not None:
            sessionless, self._sessionless = self._sessionless, None
            sessionless.committed()

    @property
    def notices(self) -> NoticeRepository:
        """Notices and versions; `apply` writes a transition with its audit and event."""
        return _opened(self._notices)

    @property
    def requests(self) -> RequestLedger:
        """Idempotency-Keys and signature replays."""
        if self._requests is None:
            self._requests = RequestLedger(self._session_now())
        return self._requests

    @property
    def audit(self) -> AuditTrail:
        """The audit log: entries written with the change, chained later by the sealer."""
        if self._audit is None:
            self._audit = AuditTrail(self._session_now())
        return self._audit

    @property
    def directory(self) -> DirectoryPeople:
        """Who is in the directory in force, as router last announced it."""
        if self._directory is None:
            self._directory = DirectoryPeople(self._session_now())
        return self._directory


_T = TypeVar("_T")


def _opened(repository: _T | None) -> _T:
    if repository is None:
        raise RuntimeError("IntakeUnitOfWork used outside its `async with` block")
    return repository
