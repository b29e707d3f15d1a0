"""What intake's use cases receive besides their arguments, built once at start-up."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from schemas.fingerprints import MIN_KEY_BYTES
from services.intake.config import IntakeSettings
from services.intake.crypto import KeyRing
from services.intake.grouped_writes import GroupedWrites
from services.intake.policy import Policy
from services.intake.signatures import SignatureCheck
from services.intake.unit_of_work import IntakeUnitOfWork

__all__ = ["Clock", "IntakeDeps", "utc_now"]

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


@dataclass(frozen=True)
class IntakeDeps:
    """Settings-derived values and collaborators of intake; one per process."""

    unit_of_work: Callable[[], IntakeUnitOfWork]
    clock: Clock
    keyring: KeyRing
    policy: Policy
    signatures: SignatureCheck
    fingerprint_key: bytes
    expiry_grace: timedelta
    retention: timedelta
    idempotency_ttl: timedelta
    replay_ttl: timedelta
    sweep_interval_s: float
    audit_key: bytes = b"aviso-dev-audit-key-change-me"
    audit_seal_interval_s: float = 1.0
    # The process's grouped writes of plain submissions (PostgreSQL only; None on SQLite).
    writes: GroupedWrites | None = None

    @classmethod
    def build(
        cls,
        *,
        settings: IntakeSettings,
        sessions: async_sessionmaker[AsyncSession],
        keyring: KeyRing,
        policy: Policy,
        event_source: str,
        clock: Clock = utc_now,
    ) -> IntakeDeps:
        """Derive the dependencies from settings; raises ValueError on a bad key."""
        # A signed request older than tolerance (or further ahead than the skew) is
        # refused before the replay table is asked, so entries may go after that.
        replay_s = settings.intake_signature_tolerance_s + settings.intake_signature_future_skew_s
        fingerprint_key = settings.fingerprint_key.get_secret_value().encode("utf-8")
        if len(fingerprint_key) < MIN_KEY_BYTES:
            # Checked at start: otherwise the first notice would fail, not the deployment.
            raise ValueError(f"AVISO_FINGERPRINT_KEY must be at least {MIN_KEY_BYTES} bytes")
        # Never begun nor used for a statement: what a submission's sessionless commit
        # notes into (services.common.db.SessionlessCommit), one per process; PostgreSQL
        # only (SQLite's submission keeps its session).
        session = sessions()
        stand_in = session if session.get_bind().dialect.driver == "asyncpg" else None
        # A plain submission's statement, grouped with those waiting when the writers
        # are busy (grouped_writes.py); PostgreSQL only, as the stand-in.
        writes = None
        if stand_in is not None:
            assert isinstance(stand_in.bind, AsyncEngine)
            writes = GroupedWrites(stand_in.bind, writers=settings.intake_group_writers)
        return cls(
            unit_of_work=lambda: IntakeUnitOfWork(
                sessions, event_source=event_source, stand_in=stand_in, writes=writes
            ),
            clock=clock,
            keyring=keyring,
            policy=policy,
            signatures=SignatureCheck.from_settings(settings),
            fingerprint_key=fingerprint_key,
            expiry_grace=timedelta(seconds=settings.intake_expiry_grace_s),
            retention=timedelta(seconds=settings.intake_restricted_retention_s),
            idempotency_ttl=timedelta(seconds=settings.intake_idempotency_ttl_s),
            replay_ttl=timedelta(seconds=replay_s + 60),
            sweep_interval_s=settings.intake_sweep_interval_s,
            audit_key=settings.intake_audit_key.get_secret_value().encode("utf-8"),
            audit_seal_interval_s=settings.intake_audit_seal_interval_s,
            writes=writes,
        )
