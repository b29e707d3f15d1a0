"""Bearer tokens stored hashed, roles, and the FastAPI dependencies that enforce them.

Tokens are issued by the CLI, shown once, and kept only as a SHA-256 hash. A
service checks a token through `TokenVerifier`, which caches successful lookups
briefly so that every request is not a round trip to the `auth` database.
"""

import asyncio
import dataclasses
import datetime as dt
import hashlib
import secrets
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Coroutine
from enum import StrEnum
from functools import partial
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    UniqueConstraint,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.common.problems import forbidden, unauthorized

__all__ = [
    "TOKEN_PREFIX",
    "IssuedToken",
    "Principal",
    "PrincipalDep",
    "Role",
    "TokenInfo",
    "TokenVerifier",
    "api_tokens",
    "auth_metadata",
    "authenticate",
    "console_identities",
    "console_sessions",
    "console_users",
    "current_principal",
    "generate_token",
    "hash_token",
    "issue_token",
    "list_tokens",
    "require_roles",
    "revoke_token",
]

TOKEN_PREFIX = "avs_"  # noqa: S105 - a public prefix, not a credential
# Longer than any token we issue; bounds the work an attacker can make us do.
_MAX_TOKEN_LENGTH = 256


class Role(StrEnum):
    """What a token may do (BRIEF: Auth)."""

    FIELD_OFFICE = "field_office"
    CONTACT = "contact"
    VETTER = "vetter"
    LIAISON = "liaison"
    OPS = "ops"
    ADMIN = "admin"


# Named constraints so the migration and the metadata agree on every database.
auth_metadata = MetaData(
    naming_convention={
        "pk": "pk_%(table_name)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ix": "ix_%(table_name)s_%(column_0_name)s",
    }
)

# No schema here: the db layer points search_path at `auth` on PostgreSQL and
# uses a separate SQLite file for the auth component.
api_tokens = Table(
    "api_tokens",
    auth_metadata,
    Column("id", String(36), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("role", String(32), nullable=False),
    # Whom the token acts for, e.g. the field office id of a field_office token.
    Column("subject", String(200), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("revoked_at", DateTime(timezone=True), nullable=True),
    Column("last_used_at", DateTime(timezone=True), nullable=True),
    # Tokens the console issues for a sign-in end with the session; CLI tokens never expire.
    Column("expires_at", DateTime(timezone=True), nullable=True),
    # An admin's explicit grant to read restricted detail (a contact outside the directory,
    # e.g. a backup being onboarded); null means none.
    Column("restricted_grant", Boolean, nullable=True),
)

# People who sign in to the console: an argon2 password hash and a TOTP secret sealed
# with the console's key. Each console session is backed by one short-lived api_token
# (same role and subject as the user), so the services decide permissions as for any token.
console_users = Table(
    "console_users",
    auth_metadata,
    Column("id", String(36), primary_key=True),
    Column("login", String(80), nullable=False, unique=True),
    Column("name", String(200), nullable=False),
    Column("role", String(32), nullable=False),
    Column("subject", String(200), nullable=False),
    Column("language", String(8), nullable=False),
    Column("password_hash", String(200), nullable=False),
    Column("totp_sealed", LargeBinary, nullable=False),
    # The last TOTP time step accepted: a code is good once, never replayed.
    Column("totp_last_step", Integer, nullable=True),
    Column("failed_attempts", Integer, nullable=False, default=0),
    Column("locked_until", DateTime(timezone=True), nullable=True),
    Column("disabled_at", DateTime(timezone=True), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("last_sign_in_at", DateTime(timezone=True), nullable=True),
)

console_sessions = Table(
    "console_sessions",
    auth_metadata,
    Column("id", String(36), primary_key=True),
    Column("user_id", String(36), nullable=False, index=True),
    # The api_token the session's cookie carries (the cookie is that token; its hash is
    # in api_tokens, never here).
    Column("token_id", String(36), nullable=False, unique=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("last_seen_at", DateTime(timezone=True), nullable=False),
    Column("revoked_at", DateTime(timezone=True), nullable=True),
)


# Single sign-on: the identity (OpenID Provider issuer + its `sub`) an admin linked to a
# console account. Only a linked identity may sign in through the provider; one per account.
console_identities = Table(
    "console_identities",
    auth_metadata,
    Column("user_id", String(36), primary_key=True),
    Column("issuer", String(300), nullable=False),
    Column("oidc_subject", String(255), nullable=False),
    Column("linked_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("issuer", "oidc_subject"),
)


@dataclasses.dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller of a request."""

    token_id: str
    name: str
    role: Role
    subject: str
    # The admin granted this token restricted detail explicitly (services/intake/permissions.py).
    restricted_grant: bool = False


@dataclasses.dataclass(frozen=True, slots=True)
class IssuedToken:
    """A newly issued token; `token` is the only copy of the plaintext."""

    id: str
    role: Role
    name: str
    subject: str
    token: str = dataclasses.field(repr=False)
    restricted_grant: bool = False


@dataclasses.dataclass(frozen=True, slots=True)
class TokenInfo:
    """A stored token's metadata (never its hash or plaintext)."""

    id: str
    name: str
    role: Role
    subject: str
    created_at: dt.datetime
    revoked_at: dt.datetime | None
    last_used_at: dt.datetime | None


def generate_token() -> str:
    """Return a new random bearer token (`avs_` + 256 random bits, URL-safe)."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """Return the SHA-256 hex digest under which a token is stored."""
    # A plain, unsalted hash is enough: tokens carry 256 random bits, so there is
    # nothing to brute-force, and a deterministic hash is what lets us look up
    # the row by index instead of scanning and comparing every stored token.
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _aware(value: dt.datetime | None) -> dt.datetime | None:
    # SQLite hands back naive datetimes; everything we store is UTC.
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=dt.UTC)


async def issue_token(
    session: AsyncSession,
    *,
    role: Role | str,
    name: str,
    subject: str | None = None,
    expires_at: dt.datetime | None = None,
    restricted_grant: bool = False,
) -> IssuedToken:
    """Store a new token's hash and return the plaintext once; the caller commits."""
    role = Role(role)
    name = name.strip()
    if not name:
        raise ValueError("a token needs a name")
    subject = (subject or name).strip()
    token = generate_token()
    token_id = str(uuid.uuid4())
    await session.execute(
        insert(api_tokens).values(
            id=token_id,
            name=name,
            role=role.value,
            subject=subject,
            token_hash=hash_token(token),
            created_at=_utcnow(),
            expires_at=expires_at,
            restricted_grant=restricted_grant or None,
        )
    )
    return IssuedToken(
        id=token_id,
        role=role,
        name=name,
        subject=subject,
        token=token,
        restricted_grant=restricted_grant,
    )


async def revoke_token(session: AsyncSession, *, token_id: str) -> bool:
    """Revoke a token; return False when it does not exist or was already revoked."""
    result = await session.execute(
        update(api_tokens)
        .where(api_tokens.c.id == token_id, api_tokens.c.revoked_at.is_(None))
        .values(revoked_at=_utcnow())
    )
    return bool(getattr(result, "rowcount", 0))


async def list_tokens(session: AsyncSession) -> list[TokenInfo]:
    """Return every token's metadata, oldest first."""
    rows = await session.execute(
        select(
            api_tokens.c.id,
            api_tokens.c.name,
            api_tokens.c.role,
            api_tokens.c.subject,
            api_tokens.c.created_at,
            api_tokens.c.revoked_at,
            api_tokens.c.last_used_at,
        ).order_by(api_tokens.c.created_at, api_tokens.c.id)
    )
    return [
        TokenInfo(
            id=row.id,
            name=row.name,
            role=Role(row.role),
            subject=row.subject,
            created_at=_aware(row.created_at) or row.created_at,
            revoked_at=_aware(row.revoked_at),
            last_used_at=_aware(row.last_used_at),
        )
        for row in rows
    ]


def _plausible(token: str) -> bool:
    return token.startswith(TOKEN_PREFIX) and len(token) <= _MAX_TOKEN_LENGTH


async def authenticate(session: AsyncSession, token: str) -> Principal | None:
    """Return the principal for a live token, recording its use; None otherwise."""
    if not _plausible(token):
        return None
    row = (
        await session.execute(
            select(
                api_tokens.c.id,
                api_tokens.c.name,
                api_tokens.c.role,
                api_tokens.c.subject,
                api_tokens.c.restricted_grant,
            ).where(
                api_tokens.c.token_hash == hash_token(token),
                api_tokens.c.revoked_at.is_(None),
                or_(api_tokens.c.expires_at.is_(None), api_tokens.c.expires_at > _utcnow()),
            )
        )
    ).one_or_none()
    if row is None:
        return None
    try:
        role = Role(row.role)
    except ValueError:
        return None  # a role this build no longer knows grants nothing
    await session.execute(
        update(api_tokens).where(api_tokens.c.id == row.id).values(last_used_at=_utcnow())
    )
    return Principal(
        token_id=row.id,
        name=row.name,
        role=role,
        subject=row.subject,
        restricted_grant=bool(row.restricted_grant),
    )


class TokenVerifier:
    """Authenticate tokens against the auth database, caching hits for a short time.

    Only successful lookups are cached, keyed by the token's hash. A revocation
    therefore takes up to `ttl_s` to reach a running service unless that service
    calls `invalidate`.

    A token is looked up once at a time: requests that find it missing or expired while
    a lookup is under way wait for that lookup. Without that, every request of a busy
    client whose entry expired looked the token up and updated its row at once, and
    queued on that row's lock: measured at 200 notices/s, 20-33 of intake's connections
    waited 1-2 s each time, every `ttl_s`.
    """

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        *,
        ttl_s: float = 30.0,
        max_entries: int = 1024,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._ttl_s = ttl_s
        self._max_entries = max_entries
        self._clock = clock
        self._cache: OrderedDict[str, tuple[float, Principal]] = OrderedDict()
        self._lookups: dict[str, asyncio.Future[Principal | None]] = {}
        # Bumped by `invalidate`: a lookup that began before is answered, not cached.
        self._generation = 0

    async def verify(self, token: str) -> Principal | None:
        """Return the principal for `token`, from cache when fresh, else from the DB."""
        if not _plausible(token):
            return None
        key = hash_token(token)
        cached = self._cache.get(key)
        if cached is not None:
            expires_at, principal = cached
            if self._clock() < expires_at:
                return principal
            del self._cache[key]
        lookup = self._lookups.get(key)
        if lookup is None:
            lookup = asyncio.ensure_future(self._look_up(key, token))
            self._lookups[key] = lookup
            lookup.add_done_callback(partial(self._looked_up, key))
        # Shielded: a caller that goes away (its client hung up) leaves the lookup to the
        # others waiting for it.
        return await asyncio.shield(lookup)

    async def _look_up(self, key: str, token: str) -> Principal | None:
        now, generation = self._clock(), self._generation
        async with self._sessionmaker.begin() as session:
            found = await authenticate(session, token)
        if found is not None and generation == self._generation:
            self._cache[key] = (now + self._ttl_s, found)
            while len(self._cache) > self._max_entries:
                self._cache.popitem(last=False)  # oldest insertion goes first
        return found

    def _looked_up(self, key: str, lookup: asyncio.Future[Principal | None]) -> None:
        if self._lookups.get(key) is lookup:
            del self._lookups[key]
        if not lookup.cancelled():
            lookup.exception()  # each waiter raises it; retrieved even if none is left

    def invalidate(self, token_id: str | None = None) -> None:
        """Forget cached lookups for one token id, or all of them (and let no lookup
        under way cache what it finds)."""
        self._generation += 1
        self._lookups.clear()
        if token_id is None:
            self._cache.clear()
            return
        for key in [k for k, (_, p) in self._cache.items() if p.token_id == token_id]:
            del self._cache[key]


# auto_error=False: we answer with our own 401 problem, not FastAPI's 403 text.
# Declaring the scheme also puts the lock (bearer auth) on every route in /docs.
_bearer = HTTPBearer(auto_error=False, scheme_name="bearerAuth")


async def current_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """FastAPI dependency: the caller's principal, or a 401 problem."""
    if credentials is None or not credentials.credentials:
        raise unauthorized("Send `Authorization: Bearer <token>`.")
    verifier: TokenVerifier = request.app.state.token_verifier
    principal = await verifier.verify(credentials.credentials)
    if principal is None:
        raise unauthorized("The token is invalid or revoked.", invalid_token=True)
    request.state.principal = principal
    return principal


PrincipalDep = Annotated[Principal, Depends(current_principal)]


def require_roles(*roles: Role) -> Callable[..., Coroutine[Any, Any, Principal]]:
    """FastAPI dependency factory: the caller's principal if its role is allowed, else 403."""
    if not roles:
        raise ValueError("require_roles needs at least one role")
    allowed = frozenset(roles)

    async def principal_with_role(principal: PrincipalDep) -> Principal:
        if principal.role not in allowed:
            raise forbidden(f"The {principal.role.value} role may not do this.")
        return principal

    # Read by services/common/openapi.py: each operation documents the roles it admits.
    principal_with_role.allowed_roles = tuple(r for r in Role if r in allowed)  # type: ignore[attr-defined]
    return principal_with_role
