"""The `aviso` command line: run the stack, serve a service, issue tokens, migrate."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Annotated

import typer

from services.common.settings import CommonSettings, get_settings
from services.local_stack import SERVICES, service_port, up

if TYPE_CHECKING:
    from fastapi import FastAPI
    from sqlalchemy.ext.asyncio import AsyncSession


__all__ = ["app", "main"]

app = typer.Typer(
    help="Aviso: advance notice of immigration operations, delivered and vetted.",
    no_args_is_help=True,
    add_completion=False,
    # Tracebacks must never print local variables: they hold tokens and notice detail.
    pretty_exceptions_show_locals=False,
)
tokens_app = typer.Typer(
    help="API tokens (stored hashed; the plaintext is shown once).", no_args_is_help=True
)
db_app = typer.Typer(help="Database migrations.", no_args_is_help=True)
dlq_app = typer.Typer(help="The dead-letter topic: inspect and replay.", no_args_is_help=True)
app.add_typer(tokens_app, name="tokens")
app.add_typer(db_app, name="db")
app.add_typer(dlq_app, name="dlq")


def _mount_service_commands() -> None:
    from services.console.cli import commands as console_commands
    from services.intake.cli import commands as intake_commands
    from services.router.cli import commands as router_commands
    from services.rumor_control.cli import commands as rumor_commands

    for commands in (intake_commands, router_commands, rumor_commands, console_commands):
        for name, sub in commands.items():
            app.add_typer(sub, name=name)


def _service_app_factory(service: str) -> Callable[[], FastAPI]:
    if service == "console":
        from services.console.app import create_app as console_app

        return console_app
    if service == "intake":
        from services.intake.app import create_app as intake_app

        return intake_app
    if service == "router":
        from services.router.app import create_app as router_app

        return router_app
    from services.rumor_control.app import create_app as rumor_app

    return rumor_app


@app.command()
def serve(
    service: Annotated[str, typer.Argument(help="intake, router, rumor_control or console")],
    port: Annotated[int | None, typer.Option(help="HTTP port (default per service)")] = None,
) -> None:
    """Run one service in the foreground (HTTP, consumers, outbox relay)."""
    if service not in (*SERVICES, "console"):
        raise typer.BadParameter(
            f"unknown service {service!r}; choose from {', '.join(SERVICES)} or console"
        )
    from services.common.serve import serve as run

    factory = _service_app_factory(service)
    workers = 1
    if service == "intake":
        from services.intake.config import IntakeSettings

        workers = get_settings(IntakeSettings).intake_workers
    run(
        service,
        factory,
        get_settings(CommonSettings),
        port=port or service_port(service),
        workers=workers,
    )


# `aviso up`: the whole stack on this machine (services/local_stack.py).
app.command()(up)


# -- tokens -----------------------------------------------------------------------


@asynccontextmanager
async def _auth_transaction() -> AsyncIterator[AsyncSession]:
    """A session on the token store, in one transaction, migrated first."""
    from services.common.db import make_engine, make_session_factory
    from services.common.migrations import upgrade

    settings = get_settings(CommonSettings)
    await upgrade(settings, "auth")
    engine = make_engine(settings, "auth")
    try:
        async with make_session_factory(engine)() as session, session.begin():
            yield session
    finally:
        await engine.dispose()


@tokens_app.command("issue")
def tokens_issue(
    role: Annotated[str, typer.Option(help="field_office, contact, vetter, liaison, ops or admin")],
    name: Annotated[str, typer.Option(help="Who holds the token (a person or a system)")],
    subject: Annotated[
        str | None, typer.Option(help="What the token acts for, e.g. the field office id")
    ] = None,
    grant_restricted: Annotated[
        bool,
        typer.Option(
            "--grant-restricted",
            help="contact only: may read restricted detail even when its subject is not a "
            "person in the directory in force",
        ),
    ] = False,
) -> None:
    """Issue a token and print it once; only its hash is stored."""
    from services.common.auth import Role, issue_token

    try:
        role_value = Role(role)
    except ValueError:
        raise typer.BadParameter(
            f"unknown role {role!r}; choose from {', '.join(r.value for r in Role)}"
        ) from None
    if grant_restricted and role_value is not Role.CONTACT:
        # Only contact reads restricted detail at all; a grant elsewhere would mean nothing.
        raise typer.BadParameter("--grant-restricted applies to the contact role only")

    async def run() -> None:
        async with _auth_transaction() as session:
            issued = await issue_token(
                session,
                role=role_value,
                name=name,
                subject=subject,
                restricted_grant=grant_restricted,
            )
        typer.echo(issued.token)
        grant = "; granted restricted detail" if issued.restricted_grant else ""
        typer.echo(
            f"issued token {issued.id} for {issued.name} (role {issued.role}){grant}; "
            "it is shown only this once",
            err=True,
        )

    asyncio.run(run())


@tokens_app.command("list")
def tokens_list() -> None:
    """List tokens (never their values)."""
    from services.common.auth import list_tokens

    async def run() -> None:
        async with _auth_transaction() as session:
            tokens = await list_tokens(session)
        for token in tokens:
            revoked = f" revoked {token.revoked_at:%Y-%m-%d}" if token.revoked_at else ""
            typer.echo(f"{token.id}  {token.role:<12} {token.name} ({token.subject}){revoked}")

    asyncio.run(run())


@tokens_app.command("revoke")
def tokens_revoke(token_id: Annotated[str, typer.Argument(help="The token's id")]) -> None:
    """Revoke a token; services stop accepting it within the auth cache lifetime."""
    from services.common.auth import revoke_token

    async def run() -> bool:
        async with _auth_transaction() as session:
            return await revoke_token(session, token_id=token_id)

    if not asyncio.run(run()):
        typer.echo(f"no active token with id {token_id}", err=True)
        raise typer.Exit(1)
    typer.echo(f"revoked {token_id}")


@db_app.command("upgrade")
def db_upgrade(
    component: Annotated[str | None, typer.Option(help="One component; default all")] = None,
) -> None:
    """Apply migrations (services also do this on start)."""
    from services.common.db import COMPONENTS
    from services.common.migrations import upgrade

    async def run() -> None:
        settings = get_settings(CommonSettings)
        for name in [component] if component else COMPONENTS:
            await upgrade(settings, name)
            typer.echo(f"{name}: at head")

    asyncio.run(run())


# -- dead letters ------------------------------------------------------------------


@dlq_app.command("list")
def dlq_list(
    group: Annotated[str | None, typer.Option(help="Only this consumer group's")] = None,
    topic: Annotated[str | None, typer.Option(help="Only those from this topic")] = None,
) -> None:
    """List dead letters: id, origin, consumer group, error and attempts (never payloads)."""
    from services.common.dlq import read_dead_letters

    letters = asyncio.run(read_dead_letters(get_settings(CommonSettings).kafka_bootstrap_servers))
    shown = 0
    for entry in letters:
        letter = entry.letter
        if (group and letter.consumer_group != group) or (topic and letter.original_topic != topic):
            continue
        shown += 1
        typer.echo(
            f"{letter.dead_letter_id}  {letter.failed_at:%Y-%m-%d %H:%M:%S}  "
            f"{letter.original_topic}[{letter.original_partition}]@{letter.original_offset}  "
            f"group={letter.consumer_group}  attempts={letter.attempts}  "
            f"{letter.error_type}: {letter.error_message[:120]}"
        )
    typer.echo(f"{shown} dead letter(s)", err=True)


@dlq_app.command("replay")
def dlq_replay(
    ids: Annotated[list[str] | None, typer.Argument(help="Dead letter ids to replay")] = None,
    group: Annotated[
        str | None, typer.Option(help="Replay every dead letter of this consumer group")
    ] = None,
) -> None:
    """Republish dead letters' original records to their original topics."""
    from services.common.dlq import read_dead_letters, replay

    if not ids and not group:
        raise typer.BadParameter("name dead letter ids, or --group to replay a group's letters")
    bootstrap = get_settings(CommonSettings).kafka_bootstrap_servers
    letters = [e.letter for e in asyncio.run(read_dead_letters(bootstrap))]
    wanted = [
        letter
        for letter in letters
        if (ids and str(letter.dead_letter_id) in ids) or (group and letter.consumer_group == group)
    ]
    missing = set(ids or ()) - {str(letter.dead_letter_id) for letter in wanted}
    if missing:
        raise typer.BadParameter(f"not on the DLQ: {', '.join(sorted(missing))}")
    count = asyncio.run(replay(bootstrap, wanted))
    typer.echo(f"replayed {count} dead letter(s) to their original topics")


def main() -> None:
    """Entry point of the `aviso` script."""
    _mount_service_commands()
    app()


if __name__ == "__main__":
    main()
