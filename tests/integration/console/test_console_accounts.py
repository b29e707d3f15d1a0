"""Console accounts and sessions on the real auth database (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pyotp
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.common.auth import api_tokens, authenticate, console_users
from services.common.db import make_engine, make_session_factory
from services.common.migrations import upgrade
from services.console.accounts import (
    LockoutPolicy,
    SecretBox,
    create_user,
    disable_user,
    reset_user,
    resolve_session,
    revoke_session,
    sign_in,
    sweep_sessions,
)
from services.console.accounts.users import AccountError
from services.console.config import ConsoleSettings

pytestmark = pytest.mark.postgres

BOX = SecretBox("test-console-secret")
# Near the real time: the services check token expiry against their own clock.
T0 = datetime.now(UTC).replace(microsecond=0)
TTL = timedelta(hours=8)
IDLE = timedelta(minutes=30)
POLICY = LockoutPolicy(max_failures=3, first_lock_s=60, max_lock_s=600)
PASSWORD = "correct horse battery"


@pytest.fixture
async def sessions(
    database_url: str | None, make_settings: Callable[..., Any]
) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    settings = make_settings(ConsoleSettings, database_url=database_url)
    await upgrade(settings, "auth")
    engine = make_engine(settings, "auth")
    try:
        yield make_session_factory(engine)
    finally:
        await engine.dispose()


async def _enrol(sessions: async_sessionmaker[AsyncSession], login: str = "spoc") -> Any:
    async with sessions.begin() as session:
        return await create_user(
            session,
            box=BOX,
            login=login,
            name="A. Reyes",
            role="contact",
            subject="3f0e7a53-0000-4000-8000-000000000001",
            password=PASSWORD,
            now=T0,
        )


async def _sign_in(
    sessions: async_sessionmaker[AsyncSession], *, password: str, code: str, now: datetime
) -> Any:
    async with sessions.begin() as session:
        return await sign_in(
            session,
            box=BOX,
            login="spoc",
            password=password,
            code=code,
            now=now,
            ttl=TTL,
            policy=POLICY,
        )


async def test_sign_in_needs_password_and_code_and_opens_a_token_backed_session(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    enrolment = await _enrol(sessions)
    totp = pyotp.TOTP(enrolment.totp_secret)
    wrong_password = await _sign_in(sessions, password="nope nope nope", code=totp.at(T0), now=T0)
    assert wrong_password.session is None
    assert wrong_password.reason == "password"
    wrong_code = await _sign_in(sessions, password=PASSWORD, code="000000", now=T0)
    assert wrong_code.session is None
    assert wrong_code.reason == "totp"
    done = await _sign_in(sessions, password=PASSWORD, code=totp.at(T0), now=T0)
    assert done.session is not None
    assert done.cookie is not None
    # The cookie is an API token of the user's role and subject, expiring with the session.
    async with sessions.begin() as session:
        principal = await authenticate(session, done.cookie)
        stored = (await session.execute(select(console_users.c.password_hash))).scalar_one()
        token_row = (await session.execute(select(api_tokens))).one()
    assert principal is not None
    assert principal.role.value == "contact"
    assert principal.subject == "3f0e7a53-0000-4000-8000-000000000001"
    assert PASSWORD not in stored
    assert done.cookie not in str(token_row)
    # The same code again is a replay.
    replay = await _sign_in(sessions, password=PASSWORD, code=totp.at(T0), now=T0)
    assert replay.session is None
    assert replay.reason == "totp"


async def test_repeated_failures_lock_the_account_even_for_the_right_code(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    enrolment = await _enrol(sessions)
    for _ in range(3):
        refused = await _sign_in(sessions, password="wrong password!", code="000000", now=T0)
    assert refused.locked_until == T0 + timedelta(seconds=60)
    totp = pyotp.TOTP(enrolment.totp_secret)
    locked = await _sign_in(sessions, password=PASSWORD, code=totp.at(T0), now=T0)
    assert locked.session is None
    assert locked.refusal == "locked"
    later = T0 + timedelta(seconds=61)
    opened = await _sign_in(sessions, password=PASSWORD, code=totp.at(later), now=later)
    assert opened.session is not None


async def test_sessions_end_on_expiry_idle_time_revocation_and_disabling(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    enrolment = await _enrol(sessions)
    totp = pyotp.TOTP(enrolment.totp_secret)
    first = await _sign_in(sessions, password=PASSWORD, code=totp.at(T0), now=T0)
    async with sessions.begin() as session:
        # Used within the idle time: alive; unused for longer: ended and its token revoked.
        assert await resolve_session(
            session, cookie=first.cookie, now=T0 + timedelta(minutes=29), idle=IDLE
        )
        assert not await resolve_session(
            session, cookie=first.cookie, now=T0 + timedelta(minutes=60), idle=IDLE
        )
        assert await authenticate(session, first.cookie) is None
    t1 = T0 + timedelta(minutes=2)
    second = await _sign_in(sessions, password=PASSWORD, code=totp.at(t1), now=t1)
    async with sessions.begin() as session:
        assert await revoke_session(session, session_id=second.session.session_id, now=t1)
        assert not await resolve_session(session, cookie=second.cookie, now=t1, idle=IDLE)
    t2 = T0 + timedelta(minutes=4)
    third = await _sign_in(sessions, password=PASSWORD, code=totp.at(t2), now=t2)
    async with sessions.begin() as session:
        await disable_user(session, login="spoc", now=t2)
        assert not await resolve_session(session, cookie=third.cookie, now=t2, idle=IDLE)
        assert await authenticate(session, third.cookie) is None
    t3 = T0 + timedelta(minutes=6)
    refused = await _sign_in(sessions, password=PASSWORD, code=totp.at(t3), now=t3)
    assert refused.session is None
    assert refused.reason == "disabled"


async def test_sweep_ends_expired_sessions_and_reset_issues_new_secrets(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    enrolment = await _enrol(sessions)
    opened = await _sign_in(
        sessions, password=PASSWORD, code=pyotp.TOTP(enrolment.totp_secret).at(T0), now=T0
    )
    async with sessions.begin() as session:
        assert await sweep_sessions(session, now=T0 + TTL, idle=timedelta(days=1)) == 1
        assert await authenticate(session, opened.cookie) is None
        fresh = await reset_user(session, box=BOX, login="spoc", password=None, now=T0)
        with pytest.raises(AccountError):
            await create_user(
                session, box=BOX, login="spoc", name="x", role="ops", subject=None, now=T0
            )
    assert fresh.totp_secret != enrolment.totp_secret
    assert fresh.password != PASSWORD
    t1 = T0 + timedelta(minutes=1)
    again = await _sign_in(
        sessions, password=fresh.password, code=pyotp.TOTP(fresh.totp_secret).at(t1), now=t1
    )
    assert again.session is not None
