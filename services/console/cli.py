"""`aviso users ...`: console accounts (argon2 password and TOTP second factor).

They write the `auth` database directly, as `aviso tokens` does. A password and the
authenticator secret are printed once, when created or reset; only an argon2 hash and
the sealed secret are stored. `--oidc-subject` (create) and `link`/`unlink` tie an
account to a person at the configured OpenID Provider, for single sign-on.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Annotated

import typer
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.auth import Role

__all__ = ["commands", "users_app"]

users_app = typer.Typer(
    help="Console users: local accounts with a password and a TOTP second factor.",
    no_args_is_help=True,
)

# Each entry is mounted on the main CLI as `aviso <name> ...`.
commands: dict[str, typer.Typer] = {"users": users_app}

PasswordOption = Annotated[
    str | None,
    typer.Option(
        "--password",
        envvar="AVISO_NEW_PASSWORD",
        help="The password (at least 12 characters); default: a random one, printed once",
    ),
]


@asynccontextmanager
async def _auth_transaction() -> AsyncIterator[AsyncSession]:
    from services.common.db import make_engine, make_session_factory
    from services.common.migrations import upgrade
    from services.common.settings import get_settings
    from services.console.config import ConsoleSettings

    settings = get_settings(ConsoleSettings)
    await upgrade(settings, "auth")
    engine = make_engine(settings, "auth")
    try:
        async with make_session_factory(engine)() as session, session.begin():
            yield session
    finally:
        await engine.dispose()


def _box() -> object:
    from services.common.settings import get_settings
    from services.console.accounts import SecretBox
    from services.console.config import ConsoleSettings

    return SecretBox(get_settings(ConsoleSettings).console_secret.get_secret_value())


OidcSubjectOption = Annotated[
    str | None,
    typer.Option(
        "--oidc-subject",
        help="Their `sub` at the configured OpenID Provider: single sign-on for this account",
    ),
]


def _oidc_issuer() -> str:
    from services.common.settings import get_settings
    from services.console.config import ConsoleSettings

    issuer = get_settings(ConsoleSettings).console_oidc_issuer
    if not issuer:
        raise typer.BadParameter("set AVISO_CONSOLE_OIDC_ISSUER first: the provider to link to")
    return issuer


def _show_enrolment(enrolment: object, *, action: str) -> None:
    from services.console.accounts import Enrolment

    assert isinstance(enrolment, Enrolment)
    user = enrolment.user
    typer.echo(f"{action} console user {user.login} ({user.role.value}, subject {user.subject})")
    typer.echo(f"password:    {enrolment.password}")
    typer.echo(f"TOTP secret: {enrolment.totp_secret}")
    typer.echo(f"TOTP URI:    {enrolment.totp_uri}")
    typer.echo("shown only this once: give them to the person over a safe channel", err=True)


@users_app.command("create")
def users_create(
    login: Annotated[str, typer.Option(help="Sign-in name (a-z, 0-9, '.', '_', '-')")],
    name: Annotated[str, typer.Option(help="The person's name, as services record it")],
    role: Annotated[str, typer.Option(help="contact, vetter, liaison, ops, admin, field_office")],
    subject: Annotated[
        str | None,
        typer.Option(help="Whom they act for: the directory person id of a contact"),
    ] = None,
    language: Annotated[str, typer.Option(help="en or es")] = "en",
    password: PasswordOption = None,
    oidc_subject: OidcSubjectOption = None,
) -> None:
    """Create an account; prints its password and TOTP provisioning URI once."""
    from services.console.accounts import AccountError, SecretBox, create_user, link_identity

    try:
        role_value = Role(role)
    except ValueError:
        raise typer.BadParameter(
            f"unknown role {role!r}; choose from {', '.join(r.value for r in Role)}"
        ) from None

    issuer = _oidc_issuer() if oidc_subject is not None else None

    async def run() -> object:
        box = _box()
        assert isinstance(box, SecretBox)
        async with _auth_transaction() as session:
            enrolment = await create_user(
                session,
                box=box,
                login=login,
                name=name,
                role=role_value,
                subject=subject,
                language=language,
                password=password,
                now=datetime.now(UTC),
            )
            if issuer is not None and oidc_subject is not None:
                await link_identity(
                    session, login=login, issuer=issuer, subject=oidc_subject, now=datetime.now(UTC)
                )
            return enrolment

    try:
        enrolment = asyncio.run(run())
    except AccountError as exc:
        raise typer.BadParameter(str(exc)) from None
    _show_enrolment(enrolment, action="created")
    if issuer is not None:
        typer.echo(f"single sign-on: subject {oidc_subject} at {issuer}")


@users_app.command("disable")
def users_disable(login: Annotated[str, typer.Argument(help="The user's login")]) -> None:
    """Disable an account and end its sessions at once."""
    from services.console.accounts import AccountError, disable_user

    async def run() -> None:
        async with _auth_transaction() as session:
            await disable_user(session, login=login, now=datetime.now(UTC))

    try:
        asyncio.run(run())
    except AccountError as exc:
        raise typer.BadParameter(str(exc)) from None
    typer.echo(f"disabled {login}; its sessions have ended")


@users_app.command("reset")
def users_reset(
    login: Annotated[str, typer.Argument(help="The user's login")],
    password: PasswordOption = None,
) -> None:
    """New password and TOTP secret, lock-out cleared, re-enabled, sessions ended."""
    from services.console.accounts import AccountError, SecretBox, reset_user

    async def run() -> object:
        box = _box()
        assert isinstance(box, SecretBox)
        async with _auth_transaction() as session:
            return await reset_user(
                session, box=box, login=login, password=password, now=datetime.now(UTC)
            )

    try:
        enrolment = asyncio.run(run())
    except AccountError as exc:
        raise typer.BadParameter(str(exc)) from None
    _show_enrolment(enrolment, action="reset")


@users_app.command("link")
def users_link(
    login: Annotated[str, typer.Argument(help="The user's login")],
    oidc_subject: Annotated[
        str, typer.Option("--oidc-subject", help="Their `sub` at the configured OpenID Provider")
    ],
) -> None:
    """Let a person sign in to this account through the OpenID Provider (one link each)."""
    from services.console.accounts import AccountError, link_identity

    issuer = _oidc_issuer()

    async def run() -> None:
        async with _auth_transaction() as session:
            await link_identity(
                session, login=login, issuer=issuer, subject=oidc_subject, now=datetime.now(UTC)
            )

    try:
        asyncio.run(run())
    except AccountError as exc:
        raise typer.BadParameter(str(exc)) from None
    typer.echo(f"linked {login} to subject {oidc_subject} at {issuer}")


@users_app.command("unlink")
def users_unlink(login: Annotated[str, typer.Argument(help="The user's login")]) -> None:
    """End single sign-on for this account (its password and code still work)."""
    from services.console.accounts import AccountError, unlink_identity

    async def run() -> bool:
        async with _auth_transaction() as session:
            return await unlink_identity(session, login=login)

    try:
        removed = asyncio.run(run())
    except AccountError as exc:
        raise typer.BadParameter(str(exc)) from None
    typer.echo(f"unlinked {login}" if removed else f"{login} had no single sign-on link")
