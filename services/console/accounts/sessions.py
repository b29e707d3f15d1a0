"""Signing in and console sessions, kept server-side in the `auth` schema.

The session cookie IS a short-lived API token of the existing token store, issued at
sign-in for the user's role and subject, and stored (like every token) only as its hash.
Why the cookie rather than a token kept in a server-side session: nothing the console
stores could call the services if the database leaked (only hashes are kept), there is
no second secret to protect, and a session is revoked in one place (the token) for the
console and for the services alike. The token expires with the session (api_tokens
.expires_at), so a stolen cookie stops working at the services too; revocation reaches
the services within their token cache lifetime (`auth_cache_ttl_s`). The console itself
checks `console_sessions` on every request (expiry, idle time, revocation, disabled user).

Every function takes the auth session and never commits; the caller commits.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.auth import (
    Role,
    api_tokens,
    console_sessions,
    console_users,
    hash_token,
    issue_token,
)
from services.console.accounts.secrets import SecretBox, matching_totp_step, verify_password

__all__ = [
    "ConsoleSession",
    "LockoutPolicy",
    "SignInResult",
    "open_session",
    "resolve_session",
    "revoke_session",
    "revoke_user_sessions",
    "sign_in",
    "sweep_sessions",
]


@dataclass(frozen=True, slots=True)
class LockoutPolicy:
    """Failures in a row before a lock-out, and how long locks last (doubling, capped)."""

    max_failures: int = 5
    first_lock_s: float = 60.0
    max_lock_s: float = 3600.0

    def lock_for(self, failures: int) -> timedelta | None:
        """How long the account locks after `failures` failures in a row (None: not yet)."""
        if failures < self.max_failures:
            return None
        seconds = self.first_lock_s * 2 ** (failures - self.max_failures)
        return timedelta(seconds=min(seconds, self.max_lock_s))


@dataclass(frozen=True, slots=True)
class ConsoleSession:
    """A live console session and who is signed in."""

    session_id: str
    token_id: str
    user_id: str
    login: str
    name: str
    role: Role
    subject: str
    language: str
    expires_at: datetime


Refusal = Literal["refused", "locked"]


@dataclass(frozen=True, slots=True)
class SignInResult:
    """A new session with its cookie value (the API token), or why sign-in was refused."""

    session: ConsoleSession | None
    cookie: str | None = None
    refusal: Refusal | None = None
    reason: str | None = None  # for the audit log only: unknown, password, totp, disabled
    user_id: str | None = None
    locked_until: datetime | None = None


def _aware(value: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes; everything stored is UTC.
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


async def sign_in(
    session: AsyncSession,
    *,
    box: SecretBox,
    login: str,
    password: str,
    code: str,
    now: datetime,
    ttl: timedelta,
    policy: LockoutPolicy,
) -> SignInResult:
    """Check password and TOTP code; open a session, or count the failure (and lock)."""
    row = (
        await session.execute(
            select(console_users)
            .where(console_users.c.login == login.strip().lower())
            .with_for_update()
        )
    ).one_or_none()
    if row is None:
        verify_password(None, password)  # the same cost as a wrong password
        return SignInResult(None, refusal="refused", reason="unknown")
    locked_until = _aware(row.locked_until)
    if locked_until is not None and locked_until > now:
        return SignInResult(
            None, refusal="locked", reason="locked", user_id=row.id, locked_until=locked_until
        )
    if row.disabled_at is not None:
        verify_password(None, password)
        return SignInResult(None, refusal="refused", reason="disabled", user_id=row.id)
    if not verify_password(row.password_hash, password):
        return await _failed(session, row, "password", now=now, policy=policy)
    secret = box.open(row.totp_sealed, user_id=row.id)
    step = matching_totp_step(secret, code, now=now, after=row.totp_last_step)
    if step is None:
        return await _failed(session, row, "totp", now=now, policy=policy)
    await session.execute(
        update(console_users)
        .where(console_users.c.id == row.id)
        .values(totp_last_step=step, failed_attempts=0, locked_until=None, last_sign_in_at=now)
    )
    return await open_session(session, row, now=now, ttl=ttl)


async def _failed(
    session: AsyncSession, row: object, reason: str, *, now: datetime, policy: LockoutPolicy
) -> SignInResult:
    user_id: str = row.id  # type: ignore[attr-defined]
    failures: int = (row.failed_attempts or 0) + 1  # type: ignore[attr-defined]
    lock = policy.lock_for(failures)
    locked_until = now + lock if lock is not None else None
    await session.execute(
        update(console_users)
        .where(console_users.c.id == user_id)
        .values(failed_attempts=failures, locked_until=locked_until)
    )
    return SignInResult(
        None, refusal="refused", reason=reason, user_id=user_id, locked_until=locked_until
    )


async def open_session(
    session: AsyncSession, row: object, *, now: datetime, ttl: timedelta
) -> SignInResult:
    """A new session for the console_users `row` (its cookie: a token of the user's role)."""
    user_id: str = row.id  # type: ignore[attr-defined]
    expires_at = now + ttl
    issued = await issue_token(
        session,
        role=row.role,  # type: ignore[attr-defined]
        name=row.name,  # type: ignore[attr-defined]
        subject=row.subject,  # type: ignore[attr-defined]
        expires_at=expires_at,
    )
    session_id = str(uuid.uuid4())
    await session.execute(
        console_sessions.insert().values(
            id=session_id,
            user_id=user_id,
            token_id=issued.id,
            created_at=now,
            expires_at=expires_at,
            last_seen_at=now,
        )
    )
    live = ConsoleSession(
        session_id=session_id,
        token_id=issued.id,
        user_id=user_id,
        login=row.login,  # type: ignore[attr-defined]
        name=row.name,  # type: ignore[attr-defined]
        role=Role(row.role),  # type: ignore[attr-defined]
        subject=row.subject,  # type: ignore[attr-defined]
        language=row.language,  # type: ignore[attr-defined]
        expires_at=expires_at,
    )
    return SignInResult(live, cookie=issued.token, user_id=user_id)


async def resolve_session(
    session: AsyncSession, *, cookie: str, now: datetime, idle: timedelta
) -> ConsoleSession | None:
    """The live session the cookie opens, touched; None when ended, expired or idle."""
    if not cookie or len(cookie) > 256:
        return None
    row = (
        await session.execute(
            select(
                console_sessions.c.id,
                console_sessions.c.token_id,
                console_sessions.c.expires_at,
                console_sessions.c.last_seen_at,
                console_sessions.c.revoked_at,
                api_tokens.c.revoked_at.label("token_revoked_at"),
                console_users.c.id.label("user_id"),
                console_users.c.login,
                console_users.c.name,
                console_users.c.role,
                console_users.c.subject,
                console_users.c.language,
                console_users.c.disabled_at,
            )
            .join(api_tokens, api_tokens.c.id == console_sessions.c.token_id)
            .join(console_users, console_users.c.id == console_sessions.c.user_id)
            .where(api_tokens.c.token_hash == hash_token(cookie))
        )
    ).one_or_none()
    if row is None or row.revoked_at is not None or row.token_revoked_at is not None:
        return None
    expires_at = _aware(row.expires_at)
    last_seen = _aware(row.last_seen_at)
    assert expires_at is not None
    assert last_seen is not None
    if row.disabled_at is not None or expires_at <= now or now - last_seen >= idle:
        await revoke_session(session, session_id=row.id, now=now)
        return None
    await session.execute(
        update(console_sessions).where(console_sessions.c.id == row.id).values(last_seen_at=now)
    )
    return ConsoleSession(
        session_id=row.id,
        token_id=row.token_id,
        user_id=row.user_id,
        login=row.login,
        name=row.name,
        role=Role(row.role),
        subject=row.subject,
        language=row.language,
        expires_at=expires_at,
    )


async def revoke_session(session: AsyncSession, *, session_id: str, now: datetime) -> bool:
    """End one session and revoke its API token; False when it had already ended."""
    token_id = (
        await session.execute(
            select(console_sessions.c.token_id).where(
                console_sessions.c.id == session_id, console_sessions.c.revoked_at.is_(None)
            )
        )
    ).scalar_one_or_none()
    if token_id is None:
        return False
    await session.execute(
        update(console_sessions).where(console_sessions.c.id == session_id).values(revoked_at=now)
    )
    await session.execute(
        update(api_tokens)
        .where(api_tokens.c.id == token_id, api_tokens.c.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    return True


async def revoke_user_sessions(session: AsyncSession, *, user_id: str, now: datetime) -> int:
    """End every live session of a user; returns how many ended."""
    ids = (
        await session.execute(
            select(console_sessions.c.id).where(
                console_sessions.c.user_id == user_id, console_sessions.c.revoked_at.is_(None)
            )
        )
    ).scalars()
    ended = 0
    for session_id in list(ids):
        ended += await revoke_session(session, session_id=session_id, now=now)
    return ended


async def sweep_sessions(session: AsyncSession, *, now: datetime, idle: timedelta) -> int:
    """Revoke sessions past their expiry or idle time (so their tokens stop at the services)."""
    ids = (
        await session.execute(
            select(console_sessions.c.id).where(
                console_sessions.c.revoked_at.is_(None),
                (console_sessions.c.expires_at <= now)
                | (console_sessions.c.last_seen_at <= now - idle),
            )
        )
    ).scalars()
    ended = 0
    for session_id in list(ids):
        ended += await revoke_session(session, session_id=session_id, now=now)
    return ended
