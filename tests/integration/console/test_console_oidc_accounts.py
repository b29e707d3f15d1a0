"""Single sign-on identities on the real auth database (SQLite and PostgreSQL), and the
`aviso users create --oidc-subject | link | unlink` commands as an operator runs them."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.common.auth import authenticate, console_sessions
from services.common.db import make_engine, make_session_factory
from services.common.migrations import upgrade
from services.console.accounts import (
    AccountError,
    SecretBox,
    create_user,
    disable_user,
    link_identity,
    linked_identity,
    resolve_session,
    sign_in_with_identity,
    unlink_identity,
)
from services.console.config import ConsoleSettings
from services.console.oidc import OidcIdentity

pytestmark = pytest.mark.postgres

BOX = SecretBox("test-console-secret")
T0 = datetime.now(UTC).replace(microsecond=0)
TTL = timedelta(hours=8)
ISSUER = "https://idp.example.gov"
SPOC = OidcIdentity(issuer=ISSUER, subject="idp-person-7")


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


async def _enrol(sessions: async_sessionmaker[AsyncSession], login: str) -> Any:
    async with sessions.begin() as session:
        return await create_user(
            session,
            box=BOX,
            login=login,
            name=f"{login} name",
            role="contact",
            subject="3f0e7a53-0000-4000-8000-000000000001",
            now=T0,
        )


async def _sso(sessions: async_sessionmaker[AsyncSession], identity: OidcIdentity) -> Any:
    async with sessions.begin() as session:
        return await sign_in_with_identity(session, identity=identity, now=T0, ttl=TTL)


async def test_a_linked_identity_opens_the_same_token_backed_session_as_a_local_sign_in(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    enrolment = await _enrol(sessions, "spoc")
    # Nobody linked it yet: refused, and no session exists.
    unknown = await _sso(sessions, SPOC)
    assert unknown.session is None
    assert unknown.reason == "unknown_identity"
    async with sessions.begin() as session:
        await link_identity(
            session, login="spoc", issuer=ISSUER + "/", subject=SPOC.subject, now=T0
        )
    done = await _sso(sessions, SPOC)
    assert done.session is not None
    assert done.cookie is not None
    assert done.session.user_id == enrolment.user.id
    async with sessions.begin() as session:
        principal = await authenticate(session, done.cookie)
        live = await resolve_session(
            session, cookie=done.cookie, now=T0 + timedelta(minutes=1), idle=timedelta(minutes=30)
        )
    # The cookie is an API token of the account's role and subject, like a local sign-in's.
    assert principal is not None
    assert principal.role.value == "contact"
    assert principal.subject == "3f0e7a53-0000-4000-8000-000000000001"
    assert live is not None
    assert live.expires_at == T0 + TTL
    # The same subject at another provider is another person.
    elsewhere = await _sso(
        sessions, OidcIdentity(issuer="https://other.idp", subject="idp-person-7")
    )
    assert elsewhere.reason == "unknown_identity"


async def test_a_disabled_account_is_refused_and_links_are_one_to_one(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await _enrol(sessions, "spoc")
    await _enrol(sessions, "backup")
    async with sessions.begin() as session:
        await link_identity(session, login="spoc", issuer=ISSUER, subject=SPOC.subject, now=T0)
    async with sessions.begin() as session:
        with pytest.raises(AccountError, match="another console user"):
            await link_identity(
                session, login="backup", issuer=ISSUER, subject=SPOC.subject, now=T0
            )
    async with sessions.begin() as session:
        # Relinking replaces the account's earlier identity.
        user = await link_identity(session, login="spoc", issuer=ISSUER, subject="idp-new", now=T0)
        assert await linked_identity(session, user_id=user.id) == OidcIdentity(ISSUER, "idp-new")
    assert (await _sso(sessions, SPOC)).reason == "unknown_identity"
    async with sessions.begin() as session:
        await disable_user(session, login="spoc", now=T0)
    disabled = await _sso(sessions, OidcIdentity(ISSUER, "idp-new"))
    assert disabled.session is None
    assert disabled.reason == "disabled"
    async with sessions.begin() as session:
        assert await unlink_identity(session, login="spoc")
        assert not await unlink_identity(session, login="spoc")
        opened = (
            await session.execute(select(func.count()).select_from(console_sessions))
        ).scalar()
    assert opened == 0


def _aviso(
    var_dir: Path, *args: str, issuer: str | None = ISSUER
) -> subprocess.CompletedProcess[str]:
    env = dict(
        os.environ,
        AVISO_VAR_DIR=str(var_dir),
        AVISO_LOG_LEVEL="WARNING",
        AVISO_CONSOLE_SECRET="cli-test-console-secret",
    )
    for name in ("DATABASE_URL", "AVISO_DATABASE_URL", "AVISO_CONSOLE_OIDC_ISSUER"):
        env.pop(name, None)  # the embedded SQLite store under var_dir
    if issuer is not None:
        env["AVISO_CONSOLE_OIDC_ISSUER"] = issuer
    return subprocess.run(
        [sys.executable, "-m", "services.cli", "users", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_users_cli_links_and_unlinks_an_identity(tmp_path: Path) -> None:
    create = ["create", "--login", "a.reyes", "--name", "A. Reyes", "--role", "ops"]
    refused = _aviso(tmp_path, *create, "--oidc-subject", "idp-1", issuer=None)
    assert refused.returncode != 0
    assert "AVISO_CONSOLE_OIDC_ISSUER" in refused.stderr
    created = _aviso(tmp_path, *create, "--oidc-subject", "idp-1")
    assert created.returncode == 0, created.stderr
    assert "single sign-on: subject idp-1" in created.stdout
    _aviso(tmp_path, "create", "--login", "b.ortiz", "--name", "B. Ortiz", "--role", "ops")
    taken = _aviso(tmp_path, "link", "b.ortiz", "--oidc-subject", "idp-1")
    assert taken.returncode != 0
    assert "another console user" in taken.stderr

    settings = ConsoleSettings(var_dir=tmp_path, database_url=None)
    engine = make_engine(settings, "auth")
    try:
        factory = make_session_factory(engine)
        async with factory.begin() as session:
            opened = await sign_in_with_identity(
                session, identity=OidcIdentity(ISSUER, "idp-1"), now=T0, ttl=TTL
            )
        assert opened.session is not None
        assert opened.session.login == "a.reyes"
        assert _aviso(tmp_path, "unlink", "a.reyes").returncode == 0
        relinked = _aviso(tmp_path, "link", "b.ortiz", "--oidc-subject", "idp-1")
        assert relinked.returncode == 0, relinked.stderr
        async with factory.begin() as session:
            now_b = await sign_in_with_identity(
                session, identity=OidcIdentity(ISSUER, "idp-1"), now=T0, ttl=TTL
            )
        assert now_b.session is not None
        assert now_b.session.login == "b.ortiz"
    finally:
        await engine.dispose()
