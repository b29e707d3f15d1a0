"""Bearer tokens: issue, store hashed, authenticate, revoke, cache, and enforce roles."""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import re
from collections.abc import AsyncIterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.operations import Operations
from fastapi import Depends, FastAPI
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from services.common import auth
from services.common.auth import (
    Principal,
    PrincipalDep,
    Role,
    TokenVerifier,
    api_tokens,
    auth_metadata,
    authenticate,
    generate_token,
    hash_token,
    issue_token,
    list_tokens,
    require_roles,
    revoke_token,
)
from services.common.problems import PROBLEM_JSON, install_problem_handlers

MIGRATION = (
    Path(__file__).resolve().parents[3] / "deploy/migrations/versions/auth/0001_api_tokens.py"
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'auth.db'}")
    async with engine.begin() as conn:
        await conn.run_sync(auth_metadata.create_all)
    try:
        yield engine
    finally:
        await engine.dispose()


@pytest.fixture
def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def verifier(sessions: async_sessionmaker[AsyncSession], clock: FakeClock) -> TokenVerifier:
    return TokenVerifier(sessions, ttl_s=30, clock=clock)


@pytest.fixture
def app(verifier: TokenVerifier) -> FastAPI:
    app = FastAPI()
    install_problem_handlers(app)
    app.state.token_verifier = verifier

    @app.get("/v1/whoami")
    async def whoami(principal: PrincipalDep) -> dict[str, str]:
        return {"name": principal.name, "role": principal.role, "subject": principal.subject}

    @app.get("/v1/directory")
    async def directory(
        principal: Principal = Depends(require_roles(Role.ADMIN)),
    ) -> dict[str, str]:
        return {"by": principal.name}

    @app.post("/v1/notices")
    async def submit(
        principal: Principal = Depends(require_roles(Role.FIELD_OFFICE, Role.CONTACT)),
    ) -> dict[str, str]:
        return {"for": principal.subject}

    return app


@pytest.fixture
async def http(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://aviso.test"
    ) as client:
        yield client


async def issue(
    sessions: async_sessionmaker[AsyncSession], role: Role, name: str, subject: str | None = None
) -> Any:
    async with sessions.begin() as session:
        return await issue_token(session, role=role, name=name, subject=subject)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    return body


def test_generated_tokens_are_prefixed_random_and_hash_to_sha256() -> None:
    tokens = {generate_token() for _ in range(50)}
    assert len(tokens) == 50
    for token in tokens:
        assert re.fullmatch(r"avs_[A-Za-z0-9_-]{43}", token)
        assert hash_token(token) == hashlib.sha256(token.encode()).hexdigest()


async def test_no_header_is_401_problem(http: httpx.AsyncClient) -> None:
    response = await http.get("/v1/whoami")
    assert_problem(response, 401)
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    "authorization",
    ["Basic dXNlcjpwYXNz", "Bearer", "Bearer avs_not-a-real-token", "Bearer " + "a" * 40],
)
async def test_bad_or_unknown_token_is_401(http: httpx.AsyncClient, authorization: str) -> None:
    response = await http.get("/v1/whoami", headers={"Authorization": authorization})
    assert_problem(response, 401)
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


async def test_right_role_is_200_and_subject_defaults_to_name(
    http: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    admin = await issue(sessions, Role.ADMIN, "Directory admin")
    office = await issue(sessions, Role.FIELD_OFFICE, "Field office system", subject="fo-7")
    whoami = await http.get("/v1/whoami", headers=bearer(admin.token))
    directory = await http.get("/v1/directory", headers=bearer(admin.token))
    submit = await http.post("/v1/notices", headers=bearer(office.token))
    assert whoami.json() == {
        "name": "Directory admin",
        "role": "admin",
        "subject": "Directory admin",
    }
    assert directory.json() == {"by": "Directory admin"}
    assert submit.json() == {"for": "fo-7"}


async def test_wrong_role_is_403_problem(
    http: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    ops = await issue(sessions, Role.OPS, "Ops desk")
    for method, path in [("GET", "/v1/directory"), ("POST", "/v1/notices")]:
        response = await http.request(method, path, headers=bearer(ops.token))
        body = assert_problem(response, 403)
        assert body["type"] == "https://aviso.local/problems/forbidden"


async def test_revoked_token_is_401(
    http: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    issued = await issue(sessions, Role.CONTACT, "SPOC")
    async with sessions.begin() as session:
        assert await revoke_token(session, token_id=issued.id) is True
        assert await revoke_token(session, token_id=issued.id) is False
        assert await revoke_token(session, token_id="no-such-id") is False
    response = await http.get("/v1/whoami", headers=bearer(issued.token))
    assert_problem(response, 401)
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


async def test_cache_serves_hits_without_the_database_until_ttl(
    http: httpx.AsyncClient,
    engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
    verifier: TokenVerifier,
    clock: FakeClock,
) -> None:
    issued = await issue(sessions, Role.LIAISON, "Community centre")
    assert (await http.get("/v1/whoami", headers=bearer(issued.token))).status_code == 200
    async with sessions.begin() as session:
        await revoke_token(session, token_id=issued.id)
    clock.now += 29
    # Within the TTL the cached principal answers: no database round trip.
    assert (await http.get("/v1/whoami", headers=bearer(issued.token))).status_code == 200
    clock.now += 2
    assert_problem(await http.get("/v1/whoami", headers=bearer(issued.token)), 401)


async def test_invalidate_drops_a_cached_token_at_once(
    http: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession], verifier: TokenVerifier
) -> None:
    keep = await issue(sessions, Role.VETTER, "Vetter A")
    drop = await issue(sessions, Role.VETTER, "Vetter B")
    for token in (keep.token, drop.token):
        assert (await http.get("/v1/whoami", headers=bearer(token))).status_code == 200
    async with sessions.begin() as session:
        await revoke_token(session, token_id=drop.id)
    verifier.invalidate(drop.id)
    assert_problem(await http.get("/v1/whoami", headers=bearer(drop.token)), 401)
    assert (await http.get("/v1/whoami", headers=bearer(keep.token))).status_code == 200


async def test_cache_is_bounded(sessions: async_sessionmaker[AsyncSession]) -> None:
    verifier = TokenVerifier(sessions, max_entries=2)
    issued = [await issue(sessions, Role.OPS, f"ops-{i}") for i in range(3)]
    for token in issued:
        assert await verifier.verify(token.token) is not None
    assert len(verifier._cache) == 2
    assert hash_token(issued[0].token) not in verifier._cache  # the oldest went first


class _HeldLookups:
    """`authenticate` counted, each call held after its read until `release`: lookups
    under way (then failing with `fail_with` when set)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = 0
        self.started = asyncio.Event()
        self.release = asyncio.Event()
        self.fail_with: Exception | None = None
        real = auth.authenticate

        async def held(session: AsyncSession, token: str) -> Principal | None:
            self.calls += 1
            found = await real(session, token)
            self.started.set()
            await self.release.wait()
            if self.fail_with is not None:
                raise self.fail_with
            return found

        monkeypatch.setattr(auth, "authenticate", held)


async def test_an_expired_token_is_looked_up_once_for_all_who_wait_on_it(
    sessions: async_sessionmaker[AsyncSession],
    verifier: TokenVerifier,
    clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    issued = await issue(sessions, Role.FIELD_OFFICE, "Field office")
    assert await verifier.verify(issued.token) is not None
    clock.now += 31  # the cached entry expired: a busy client's next requests all miss
    held = _HeldLookups(monkeypatch)
    waiting = [asyncio.create_task(verifier.verify(issued.token)) for _ in range(20)]
    await asyncio.wait_for(held.started.wait(), 30)
    held.release.set()
    principals = await asyncio.gather(*waiting)
    assert held.calls == 1  # one SELECT and one UPDATE of the token's row, not twenty
    assert {p.token_id for p in principals if p is not None} == {issued.id}
    assert None not in principals
    # Cached again: the next request needs no lookup.
    assert await verifier.verify(issued.token) is not None
    assert held.calls == 1


@pytest.fixture
async def issued(sessions: async_sessionmaker[AsyncSession]) -> Any:
    return await issue(sessions, Role.FIELD_OFFICE, "Field office")


@pytest.fixture
def held(monkeypatch: pytest.MonkeyPatch) -> _HeldLookups:
    return _HeldLookups(monkeypatch)


async def test_a_caller_that_goes_away_leaves_the_lookup_to_the_others(
    issued: Any, verifier: TokenVerifier, held: _HeldLookups
) -> None:
    first = asyncio.create_task(verifier.verify(issued.token))
    await asyncio.wait_for(held.started.wait(), 30)
    second = asyncio.create_task(verifier.verify(issued.token))
    await asyncio.sleep(0)  # the second is waiting on the first's lookup
    first.cancel()
    held.release.set()
    principal = await second
    assert principal is not None
    assert principal.token_id == issued.id
    assert held.calls == 1
    assert first.cancelled()


async def test_a_failed_lookup_reaches_every_waiter_and_the_next_request_tries_again(
    issued: Any, verifier: TokenVerifier, held: _HeldLookups
) -> None:
    held.fail_with = ConnectionError("database away")
    waiting = [asyncio.create_task(verifier.verify(issued.token)) for _ in range(3)]
    await asyncio.wait_for(held.started.wait(), 30)
    held.release.set()
    results = await asyncio.gather(*waiting, return_exceptions=True)
    assert [type(r) for r in results] == [ConnectionError] * 3
    held.fail_with = None
    assert await verifier.verify(issued.token) is not None
    assert held.calls == 2


async def test_a_lookup_under_way_when_invalidated_answers_but_is_not_cached(
    issued: Any, verifier: TokenVerifier, held: _HeldLookups
) -> None:
    pending = asyncio.create_task(verifier.verify(issued.token))
    await asyncio.wait_for(held.started.wait(), 30)  # it has read the token: valid
    verifier.invalidate(issued.id)  # as after a revocation committed meanwhile
    held.release.set()
    assert await pending is not None  # what it read is its caller's answer
    # ... but is not kept: the next request looks the token up again.
    assert await verifier.verify(issued.token) is not None
    assert held.calls == 2


async def test_tokens_are_stored_only_as_hashes(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    issued = await issue(sessions, Role.FIELD_OFFICE, "FO system", subject="fo-1")
    assert issued.token not in repr(issued)
    async with engine.connect() as conn:
        rows = (await conn.execute(sa.select(api_tokens))).mappings().all()
    (row,) = rows
    assert row["token_hash"] == hash_token(issued.token)
    assert all(issued.token not in str(value) for value in row.values())
    assert issued.token.encode() not in (tmp_path / "auth.db").read_bytes()


async def test_authenticate_records_use_and_list_shows_metadata(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    first = await issue(sessions, Role.CONTACT, "SPOC")
    second = await issue(sessions, Role.CONTACT, "Backup")
    async with sessions.begin() as session:
        principal = await authenticate(session, first.token)
        assert principal == Principal(
            token_id=first.id, name="SPOC", role=Role.CONTACT, subject="SPOC"
        )
        await revoke_token(session, token_id=second.id)
    async with sessions() as session:
        listed = {info.id: info for info in await list_tokens(session)}
    assert listed[first.id].last_used_at is not None
    assert listed[first.id].revoked_at is None
    revoked_at = listed[second.id].revoked_at
    assert revoked_at is not None
    assert revoked_at.tzinfo is not None
    assert listed[second.id].last_used_at is None


async def test_issue_rejects_unknown_roles_and_empty_names(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions.begin() as session:
        with pytest.raises(ValueError, match="superuser"):
            await issue_token(session, role="superuser", name="x")
        with pytest.raises(ValueError, match="name"):
            await issue_token(session, role=Role.OPS, name="  ")


def _load_migration(path: Path = MIGRATION) -> ModuleType:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_migration_matches_metadata_and_downgrades(tmp_path: Path) -> None:
    migration = _load_migration()
    assert migration.revision == "auth_0001"
    assert migration.down_revision is None
    # The console's users and sessions (and api_tokens.expires_at) come next.
    console = _load_migration(MIGRATION.with_name("0002_console.py"))
    assert console.down_revision == "auth_0001"
    # Then the admin's explicit grant of restricted detail (api_tokens.restricted_grant).
    grant = _load_migration(MIGRATION.with_name("0003_restricted_grant.py"))
    assert grant.down_revision == "auth_0002"
    # Then the single sign-on identities linked to console accounts.
    identities = _load_migration(MIGRATION.with_name("0004_console_identities.py"))
    assert identities.down_revision == "auth_0003"
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'migrated.db'}")
    try:
        with engine.begin() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            with Operations.context(context):
                migration.upgrade()
                console.upgrade()
                grant.upgrade()
                identities.upgrade()
            assert compare_metadata(context, auth_metadata) == []
            with Operations.context(context):
                identities.downgrade()
                assert not sa.inspect(conn).has_table("console_identities")
                grant.downgrade()
                columns = {c["name"] for c in sa.inspect(conn).get_columns("api_tokens")}
                assert "restricted_grant" not in columns
                console.downgrade()
                assert not sa.inspect(conn).has_table("console_users")
                migration.downgrade()
            assert not sa.inspect(conn).has_table("api_tokens")
    finally:
        engine.dispose()
