"""Console accounts: create, list, disable, reset, change role, language. Each takes a
session; callers commit."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.auth import Role, console_users
from services.console.accounts.secrets import (
    SecretBox,
    generate_password,
    hash_password,
    new_totp_secret,
    provisioning_uri,
)
from services.console.accounts.sessions import revoke_user_sessions
from services.console.i18n import LANGUAGES

__all__ = [
    "AccountError",
    "Enrolment",
    "UserRecord",
    "create_user",
    "disable_user",
    "find_user",
    "list_users",
    "reset_user",
    "set_language",
    "set_role",
]

_LOGIN = re.compile(r"^[a-z0-9][a-z0-9._-]{1,79}$")


class AccountError(ValueError):
    """An account request that cannot be done (unknown login, taken login, bad value).

    `str(exc)` is the English sentence the CLI prints; `code` and `params` name the same
    message in the console's locales, so each person reads it in their own language.
    """

    def __init__(self, message: str, *, code: str, **params: str) -> None:
        super().__init__(message)
        self.code = code
        self.params = params


@dataclass(frozen=True, slots=True)
class UserRecord:
    """A console user as stored (without the password hash or the TOTP secret)."""

    id: str
    login: str
    name: str
    role: Role
    subject: str
    language: str
    disabled_at: datetime | None
    locked_until: datetime | None = None
    last_sign_in_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Enrolment:
    """What the new or reset user needs, shown once: password and authenticator secret."""

    user: UserRecord
    password: str = field(repr=False)
    totp_secret: str = field(repr=False)
    totp_uri: str = field(repr=False)


def _record(row: object) -> UserRecord:
    return UserRecord(
        id=row.id,  # type: ignore[attr-defined]
        login=row.login,  # type: ignore[attr-defined]
        name=row.name,  # type: ignore[attr-defined]
        role=Role(row.role),  # type: ignore[attr-defined]
        subject=row.subject,  # type: ignore[attr-defined]
        language=row.language,  # type: ignore[attr-defined]
        disabled_at=row.disabled_at,  # type: ignore[attr-defined]
        locked_until=row.locked_until,  # type: ignore[attr-defined]
        last_sign_in_at=row.last_sign_in_at,  # type: ignore[attr-defined]
    )


async def find_user(session: AsyncSession, *, login: str) -> UserRecord | None:
    """The user with `login`, if any."""
    row = (
        await session.execute(select(console_users).where(console_users.c.login == login))
    ).one_or_none()
    return None if row is None else _record(row)


async def list_users(session: AsyncSession) -> list[UserRecord]:
    """Every console user, by login."""
    rows = await session.execute(select(console_users).order_by(console_users.c.login))
    return [_record(row) for row in rows]


async def create_user(
    session: AsyncSession,
    *,
    box: SecretBox,
    login: str,
    name: str,
    role: Role | str,
    subject: str | None,
    language: str = "en",
    password: str | None = None,
    now: datetime,
) -> Enrolment:
    """Create an account; returns its password and TOTP secret, the only time they show."""
    login = login.strip().lower()
    if not _LOGIN.match(login):
        raise AccountError(
            "a login is 2-80 characters: a-z, 0-9, '.', '_' or '-'", code="users.error.login"
        )
    if language not in LANGUAGES:
        raise AccountError(
            f"language must be one of {', '.join(LANGUAGES)}", code="users.error.language"
        )
    if await find_user(session, login=login) is not None:
        raise AccountError(f"the login {login!r} is taken", code="users.error.taken", login=login)
    role = Role(role)
    password = password or generate_password()
    if len(password) < 12:
        raise AccountError("a password has at least 12 characters", code="users.error.password")
    secret = new_totp_secret()
    user_id = str(uuid.uuid4())
    await session.execute(
        insert(console_users).values(
            id=user_id,
            login=login,
            name=name.strip() or login,
            role=role.value,
            subject=(subject or "").strip() or str(uuid.uuid4()),
            language=language,
            password_hash=hash_password(password),
            totp_sealed=box.seal(secret, user_id=user_id),
            failed_attempts=0,
            created_at=now,
        )
    )
    user = await find_user(session, login=login)
    assert user is not None
    return Enrolment(user, password, secret, provisioning_uri(secret, login=login))


async def disable_user(session: AsyncSession, *, login: str, now: datetime) -> UserRecord:
    """Disable an account and end its sessions (their API tokens are revoked too)."""
    user = await _existing(session, login)
    await session.execute(
        update(console_users).where(console_users.c.id == user.id).values(disabled_at=now)
    )
    await revoke_user_sessions(session, user_id=user.id, now=now)
    return user


async def reset_user(
    session: AsyncSession, *, box: SecretBox, login: str, password: str | None, now: datetime
) -> Enrolment:
    """New password and TOTP secret, lock-out cleared, account enabled, sessions ended."""
    user = await _existing(session, login)
    password = password or generate_password()
    if len(password) < 12:
        raise AccountError("a password has at least 12 characters", code="users.error.password")
    secret = new_totp_secret()
    await session.execute(
        update(console_users)
        .where(console_users.c.id == user.id)
        .values(
            password_hash=hash_password(password),
            totp_sealed=box.seal(secret, user_id=user.id),
            totp_last_step=None,
            failed_attempts=0,
            locked_until=None,
            disabled_at=None,
        )
    )
    await revoke_user_sessions(session, user_id=user.id, now=now)
    return Enrolment(user, password, secret, provisioning_uri(secret, login=user.login))


async def set_role(
    session: AsyncSession, *, login: str, role: Role | str, now: datetime
) -> UserRecord:
    """Give an account another role and end its sessions: their API tokens carry the old one."""
    user = await _existing(session, login)
    role = Role(role)
    await session.execute(
        update(console_users).where(console_users.c.id == user.id).values(role=role.value)
    )
    await revoke_user_sessions(session, user_id=user.id, now=now)
    return user


async def set_language(session: AsyncSession, *, user_id: str, language: str) -> None:
    """Remember the user's language."""
    if language not in LANGUAGES:
        raise AccountError(
            f"language must be one of {', '.join(LANGUAGES)}", code="users.error.language"
        )
    await session.execute(
        update(console_users).where(console_users.c.id == user_id).values(language=language)
    )


async def _existing(session: AsyncSession, login: str) -> UserRecord:
    user = await find_user(session, login=login.strip().lower())
    if user is None:
        raise AccountError(f"no console user {login!r}", code="users.error.unknown", login=login)
    return user
