"""Single sign-on identities linked to console accounts, and signing in with one.

Why link by the provider's subject (`iss` + `sub`) and not by a verified e-mail claim:
`sub` is the provider's stable, never-reassigned key for a person (OpenID Connect Core
5.7), while an e-mail address can be changed, reassigned to a newcomer, or be "verified"
under rules the department does not control; a match on it would hand an account to
whoever holds the address at the provider. An admin links each account explicitly
(`aviso users link LOGIN --oidc-subject SUB`), so only people the department enrolled
can sign in, with the role and subject their account has.

A session opened here is exactly the one a local sign-in opens (`open_session`). The
provider checked the person's credentials, so the local password, TOTP code and their
lock-out are not asked for; a disabled account is refused all the same.
Every function takes the auth session and never commits; the caller commits.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.auth import console_identities, console_users
from services.console.accounts.sessions import SignInResult, open_session
from services.console.accounts.users import AccountError, UserRecord, find_user
from services.console.oidc.claims import OidcIdentity, normalize_issuer

__all__ = [
    "link_identity",
    "linked_identities",
    "linked_identity",
    "sign_in_with_identity",
    "unlink_identity",
]


async def link_identity(
    session: AsyncSession, *, login: str, issuer: str, subject: str, now: datetime
) -> UserRecord:
    """Link the provider's `subject` to the account `login` (replacing its earlier link)."""
    user = await find_user(session, login=login.strip().lower())
    if user is None:
        raise AccountError(f"no console user {login!r}", code="users.error.unknown", login=login)
    subject = subject.strip()
    if not subject or len(subject) > 255:
        raise AccountError("an OpenID subject is 1-255 characters", code="users.error.subject")
    issuer = normalize_issuer(issuer)
    taken = (
        await session.execute(
            select(console_identities.c.user_id).where(
                console_identities.c.issuer == issuer,
                console_identities.c.oidc_subject == subject,
            )
        )
    ).scalar_one_or_none()
    if taken is not None and taken != user.id:
        raise AccountError(
            "that OpenID subject is linked to another console user", code="users.error.linked"
        )
    await session.execute(delete(console_identities).where(console_identities.c.user_id == user.id))
    await session.execute(
        insert(console_identities).values(
            user_id=user.id, issuer=issuer, oidc_subject=subject, linked_at=now
        )
    )
    return user


async def unlink_identity(session: AsyncSession, *, login: str) -> bool:
    """Remove the account's single sign-on link; False when it had none."""
    user = await find_user(session, login=login.strip().lower())
    if user is None:
        raise AccountError(f"no console user {login!r}", code="users.error.unknown", login=login)
    removed = await session.execute(
        delete(console_identities).where(console_identities.c.user_id == user.id)
    )
    return bool(removed.rowcount)  # type: ignore[attr-defined]


async def linked_identity(session: AsyncSession, *, user_id: str) -> OidcIdentity | None:
    """The identity linked to a user, if any."""
    row = (
        await session.execute(
            select(console_identities.c.issuer, console_identities.c.oidc_subject).where(
                console_identities.c.user_id == user_id
            )
        )
    ).one_or_none()
    return None if row is None else OidcIdentity(issuer=row.issuer, subject=row.oidc_subject)


async def linked_identities(session: AsyncSession) -> dict[str, OidcIdentity]:
    """Every linked identity, by user id (for the users page)."""
    rows = await session.execute(
        select(
            console_identities.c.user_id,
            console_identities.c.issuer,
            console_identities.c.oidc_subject,
        )
    )
    return {row.user_id: OidcIdentity(issuer=row.issuer, subject=row.oidc_subject) for row in rows}


async def sign_in_with_identity(
    session: AsyncSession, *, identity: OidcIdentity, now: datetime, ttl: timedelta
) -> SignInResult:
    """Open a session for the account linked to `identity`; refuse unknown or disabled."""
    row = (
        await session.execute(
            select(console_users)
            .join(console_identities, console_identities.c.user_id == console_users.c.id)
            .where(
                console_identities.c.issuer == normalize_issuer(identity.issuer),
                console_identities.c.oidc_subject == identity.subject,
            )
        )
    ).one_or_none()
    if row is None:
        return SignInResult(None, refusal="refused", reason="unknown_identity")
    if row.disabled_at is not None:
        return SignInResult(None, refusal="refused", reason="disabled", user_id=row.id)
    await session.execute(
        update(console_users).where(console_users.c.id == row.id).values(last_sign_in_at=now)
    )
    return await open_session(session, row, now=now, ttl=ttl)
