"""`aviso` subcommands of the intake service.

`aviso notice submit FILE.json` and `aviso notice record` talk HTTP to a running intake
service with a bearer token (`--token` or `AVISO_TOKEN`), exactly as a field office's
system would; `aviso audit verify` reads the intake database directly, because an
audit must not depend on the service it audits being up.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar, get_args

import httpx
import typer
from pydantic import TypeAdapter, ValidationError

from schemas.base import Status
from schemas.notices import OperationType, ReceivedVia
from services.common.settings import get_settings
from services.common.signing import SIGNATURE_HEADER, request_signature_header
from services.intake.notices.commands import (
    IDEMPOTENCY_KEY_PATTERN,
    MAX_TERMS,
    AgentIn,
    NoticeSubmission,
    RestrictedIn,
    SourceIn,
    Term,
)

__all__ = ["audit_app", "commands", "notice_app"]

notice_app = typer.Typer(
    help="Field-office notices: submit one from a file, or record a phone call.",
    no_args_is_help=True,
)
audit_app = typer.Typer(help="The intake audit log.", no_args_is_help=True)

# Each entry is mounted on the main CLI as `aviso <name> ...`.
commands: dict[str, typer.Typer] = {"notice": notice_app, "audit": audit_app}

DEFAULT_URL = "http://127.0.0.1:8001"

# The clock requests are signed by; a test replaces it instead of sleeping past a second.
unix_time: Callable[[], float] = time.time

UrlOption = Annotated[
    str, typer.Option("--url", envvar="AVISO_INTAKE_URL", help="Base URL of the intake service")
]
TokenOption = Annotated[
    str,
    typer.Option(
        "--token", envvar="AVISO_TOKEN", help="Bearer token of a field_office", show_default=False
    ),
]
KeyOption = Annotated[
    str | None,
    typer.Option("--idempotency-key", help="Idempotency-Key header: makes a retry safe"),
]
SecretOption = Annotated[
    str | None,
    typer.Option(
        "--signing-secret",
        envvar="AVISO_SIGNING_SECRET",
        help="Sign the request (Aviso-Signature) with this shared secret",
        show_default=False,
    ),
]


def _errors(exc: ValidationError) -> list[str]:
    # Locations and messages only: the input may be restricted detail.
    return [
        f"{'.'.join(str(p) for p in err['loc']) or 'body'}: {err['msg']}" for err in exc.errors()
    ]


def _post(
    url: str,
    path: str,
    *,
    body: bytes,
    token: str,
    idempotency_key: str | None,
    signing_secret: str | None,
) -> None:
    """POST a JSON body; print the notice on success, the problem on failure (exit 1)."""
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    if idempotency_key:
        if not IDEMPOTENCY_KEY_PATTERN.fullmatch(idempotency_key):
            raise typer.BadParameter("use 1-200 visible ASCII characters", param_hint="key")
        headers["Idempotency-Key"] = idempotency_key
    if signing_secret:
        headers[SIGNATURE_HEADER] = request_signature_header(
            [signing_secret.encode("utf-8")],
            method="POST",
            target=httpx.URL(url.rstrip("/") + path).raw_path.decode("ascii"),
            body=body,
            timestamp=int(unix_time()),
        )
    try:
        response = httpx.post(url.rstrip("/") + path, content=body, headers=headers, timeout=30)
    except httpx.HTTPError as exc:
        typer.secho(f"cannot reach intake at {url}: {type(exc).__name__}", fg="red", err=True)
        raise typer.Exit(1) from None
    try:
        payload: Any = response.json()
    except ValueError:
        payload = {"detail": response.text[:500]}
    if response.status_code >= 400:
        title = payload.get("title", "error") if isinstance(payload, dict) else "error"
        detail = payload.get("detail", "") if isinstance(payload, dict) else ""
        typer.secho(f"{response.status_code} {title}: {detail}", fg="red", err=True)
        if isinstance(payload, dict):
            for error in payload.get("errors", []):
                typer.secho(f"  {'.'.join(error['loc'])}: {error['msg']}", fg="red", err=True)
        raise typer.Exit(1)
    verb = "already recorded" if response.headers.get("Idempotent-Replayed") else "recorded"
    typer.secho(
        f"{verb}: notice {payload['id']} version {payload['version']} ({payload['state']})",
        fg="green",
        err=True,
    )
    typer.echo(json.dumps(payload, indent=2, ensure_ascii=False))


@notice_app.command("submit")
def submit(
    file: Annotated[Path, typer.Argument(help="JSON body of the notice ('-' for stdin)")],
    token: TokenOption,
    url: UrlOption = DEFAULT_URL,
    idempotency_key: KeyOption = None,
    signing_secret: SecretOption = None,
) -> None:
    """Submit a notice from a JSON file (the body of POST /v1/notices)."""
    body = sys.stdin.buffer.read() if str(file) == "-" else file.read_bytes()
    try:
        NoticeSubmission.model_validate_json(body)
    except ValidationError as exc:
        # Checked here first so a typo is explained before anything leaves the machine.
        typer.secho(f"{file} is not a valid notice:", fg="red", err=True)
        for line in _errors(exc):
            typer.secho(f"  {line}", fg="red", err=True)
        raise typer.Exit(2) from None
    _post(
        url,
        "/v1/notices",
        body=body,
        token=token,
        idempotency_key=idempotency_key,
        signing_secret=signing_secret,
    )


# --- interactive recording ---------------------------------------------------------

T = TypeVar("T")


def _field_adapter(model: type[Any], name: str) -> TypeAdapter[Any]:
    """A validator for one field of a request model, with all of its constraints."""
    info = model.model_fields[name]
    annotation: Any = info.annotation
    for item in info.metadata:
        annotation = Annotated[annotation, item]
    return TypeAdapter(annotation)


def _ask(
    label: str,
    check: Callable[[str], T],
    *,
    default: str | None = None,
    optional: bool = False,
) -> T | None:
    """Prompt until the answer validates; a blank answer skips an optional field."""
    while True:
        raw: str = typer.prompt(
            label + (" (blank to skip)" if optional else ""),
            default="" if optional and default is None else default,
            show_default=default is not None,
        )
        if optional and not raw.strip():
            return None
        try:
            return check(raw)
        except ValidationError as exc:
            for line in _errors(exc):
                typer.secho(f"  {line.split(': ', 1)[-1]}", fg="red", err=True)
        except ValueError as exc:
            typer.secho(f"  {exc}", fg="red", err=True)


def _validator(model: type[Any], name: str) -> Callable[[str], Any]:
    adapter = _field_adapter(model, name)
    return lambda raw: adapter.validate_python(raw)


def _parse_time(raw: str) -> datetime:
    """ISO 8601 with an offset, or `YYYY-MM-DD HH:MM` on this machine's clock."""
    try:
        value = datetime.fromisoformat(raw.strip())
    except ValueError:
        raise ValueError("use YYYY-MM-DD HH:MM, or ISO 8601 with an offset") from None
    if value.tzinfo is None:
        value = value.astimezone()  # the local zone of whoever takes the call
    checked: datetime = _field_adapter(NoticeSubmission, "window_start").validate_python(value)
    return checked


def _ask_list(label: str, check: Callable[[str], Any]) -> list[str]:
    values: list[str] = []
    typer.echo(f"{label}: one per line, blank line to finish")
    while len(values) < MAX_TERMS:
        value = _ask(f"  {label} #{len(values) + 1}", check, optional=True)
        if value is None:
            break
        values.append(value)
    return values


def _choice(label: str, options: tuple[str, ...], default: str) -> str:
    by_lower = {option.lower(): option for option in options}

    def pick(raw: str) -> str:
        choice = by_lower.get(raw.strip().lower())
        if choice is None:
            raise ValueError(f"choose one of: {', '.join(options)}")
        return choice

    answer = _ask(f"{label} ({'/'.join(options)})", pick, default=default)
    assert answer is not None
    return answer


def _ask_window() -> tuple[datetime, datetime]:
    start = _ask("Window start", _parse_time)
    assert start is not None

    def after_start(raw: str) -> datetime:
        end = _parse_time(raw)
        if end <= start:
            raise ValueError("the window must end after it starts")
        return end

    end = _ask("Window end", after_start)
    assert end is not None
    return start, end


def _ask_releasable() -> dict[str, Any]:
    """The releasable part of a notice, in the order a call taker hears it."""
    model = NoticeSubmission
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M")
    body: dict[str, Any] = {
        "reference": _ask(
            "Field office reference", _validator(model, "reference"), default=f"PHONE-{stamp}"
        ),
        "received_via": _choice("Received via", get_args(ReceivedVia), "phone"),
        "status": _choice("Status", get_args(Status), "Actual"),
        "operation_type": _choice("Operation type", get_args(OperationType), "targeted_arrest"),
        "public_safety_nexus": typer.confirm(
            "Serious crime with a public-safety nexus?", default=False
        ),
    }
    start, end = _ask_window()
    body["window_start"], body["window_end"] = start.isoformat(), end.isoformat()
    body["area"] = _ask("Area (releasable: neighbourhood or district)", _validator(model, "area"))
    area_code = _ask("Area code", _validator(model, "area_code"), optional=True)
    if area_code:
        body["area_code"] = area_code
    body["summary"] = _ask("Releasable summary", _validator(model, "summary"))
    return body


def _ask_source() -> dict[str, Any]:
    typer.secho("Source (restricted)", bold=True)
    agent: dict[str, Any] = {"name": _ask("Agent name", _validator(AgentIn, "name"))}
    for name in ("phone", "email"):
        value = _ask(f"Agent {name}", _validator(AgentIn, name), optional=True)
        if value:
            agent[name] = value
    return {
        "field_office_name": _ask("Field office name", _validator(SourceIn, "field_office_name")),
        "agent": agent,
    }


def _ask_restricted() -> dict[str, Any]:
    typer.secho("Restricted detail", bold=True)
    term_adapter = TypeAdapter(Term)

    def term(raw: str) -> str:
        checked: str = term_adapter.validate_python(raw)
        return checked

    restricted: dict[str, Any] = {
        "names": _ask_list("Names", term),
        "addresses": _ask_list("Addresses", term),
        "vehicles": _ask_list("Vehicles", term),
        "exact_locations": _ask_list("Exact locations", term),
    }
    free_text = _ask(
        "Anything else the agent said", _validator(RestrictedIn, "free_text"), optional=True
    )
    if free_text:
        restricted["free_text"] = free_text
    return restricted


@notice_app.command("record")
def record(
    token: TokenOption,
    url: UrlOption = DEFAULT_URL,
    idempotency_key: KeyOption = None,
    signing_secret: SecretOption = None,
) -> None:
    """Record a notice taken by phone (or e-mail, in person), checking each answer."""
    typer.secho("Recording a notice. Restricted answers are encrypted on receipt.", bold=True)
    body = _ask_releasable()
    body["source"] = _ask_source()
    body["restricted"] = restricted = _ask_restricted()
    try:
        NoticeSubmission.model_validate(body)
    except ValidationError as exc:
        for line in _errors(exc):
            typer.secho(f"  {line}", fg="red", err=True)
        raise typer.Exit(2) from None
    typer.echo(
        f"\n{body['status']} {body['operation_type']} in {body['area']}, "
        f"{body['window_start']} to {body['window_end']}; "
        f"{sum(len(v) for v in restricted.values() if isinstance(v, list))} restricted item(s)."
    )
    if not typer.confirm("Submit this notice?", default=True):
        typer.echo("not submitted")
        raise typer.Exit(1)
    _post(
        url,
        "/v1/notices",
        body=json.dumps(body, ensure_ascii=False).encode("utf-8"),
        token=token,
        idempotency_key=idempotency_key,
        signing_secret=signing_secret,
    )


# --- audit --------------------------------------------------------------------------


@audit_app.command("verify")
def verify() -> None:
    """Check the intake audit log's keyed hash chain (AVISO_INTAKE_AUDIT_KEY); report the
    first broken link (exit 1)."""
    from sqlalchemy.exc import SQLAlchemyError

    from services.common.db import make_engine, make_session_factory
    from services.intake.audit import verify_chain
    from services.intake.config import IntakeSettings

    settings = get_settings(IntakeSettings)
    # The chain is keyed: without the service's audit key nothing can be checked.
    key = settings.intake_audit_key.get_secret_value().encode("utf-8")

    async def run() -> Any:
        engine = make_engine(settings, "intake")
        try:
            async with make_session_factory(engine)() as session:
                return await verify_chain(session, key=key)
        finally:
            await engine.dispose()

    try:
        report = asyncio.run(run())
    except SQLAlchemyError as exc:
        typer.secho(f"cannot read the audit log: {type(exc).__name__}", fg="red", err=True)
        raise typer.Exit(2) from None
    if report.intact:
        typer.echo(f"audit chain intact: {report.entries} entries, head {report.head_hash}")
        if report.unkeyed:
            typer.echo(f"  the first {report.unkeyed} predate the keyed chain (plain SHA-256)")
        if report.pending:
            typer.echo(f"  {report.pending} newer entries wait for the sealer (not verified yet)")
        return
    typer.secho(
        f"audit chain broken at entry {report.broken_at}: {report.problem} "
        f"({report.entries} entries verified before it)",
        fg="red",
    )
    raise typer.Exit(1)
