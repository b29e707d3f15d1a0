"""`aviso` subcommands of the router service: alerts and the directory, over HTTP.

They talk to a running router (`--url`, default `AVISO_ROUTER_URL` or
http://127.0.0.1:8002) with a bearer token (`--token` or `AVISO_TOKEN`), so they work
the same against a laptop stack and a deployed service, and never touch its database.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, NoReturn

import httpx
import typer

__all__ = ["alert_app", "commands", "directory_app"]

alert_app = typer.Typer(help="Alerts: list, show, acknowledge, timeline.", no_args_is_help=True)
directory_app = typer.Typer(
    help="The router directory: people, SPOC and escalation policy.", no_args_is_help=True
)

# Each entry is mounted on the main CLI as `aviso <name> ...`.
commands: dict[str, typer.Typer] = {"alert": alert_app, "directory": directory_app}

UrlOption = Annotated[str, typer.Option("--url", envvar="AVISO_ROUTER_URL", help="Router base URL")]
TokenOption = Annotated[
    str,
    typer.Option("--token", envvar="AVISO_TOKEN", help="Bearer token (aviso tokens issue)"),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print the raw JSON response")]

_DEFAULT_URL = "http://127.0.0.1:8002"


def _client(url: str, token: str) -> httpx.Client:
    return httpx.Client(
        base_url=url.rstrip("/"),
        headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
        timeout=10.0,
    )


def _fail(response: httpx.Response) -> NoReturn:
    try:
        problem = response.json()
        message = f"{problem.get('title', 'Error')}: {problem.get('detail', '')}".rstrip(": ")
        for error in problem.get("errors", []):
            where = error.get("path") or error.get("loc")
            message += f"\n  {where}: {error.get('message') or error.get('msg')}"
    except ValueError:
        message = response.text[:500]
    typer.secho(f"{response.status_code} {message}", fg="red", err=True)
    raise typer.Exit(1)


def _call(url: str, token: str, method: str, path: str, **kwargs: Any) -> Any:
    try:
        with _client(url, token) as client:
            response = client.request(method, path, **kwargs)
    except httpx.HTTPError as exc:
        typer.secho(f"router unreachable at {url}: {type(exc).__name__}", fg="red", err=True)
        raise typer.Exit(2) from None
    if response.status_code >= 400:
        _fail(response)
    return response.json()


def _line(alert: dict[str, Any]) -> str:
    drill = "DRILL " if alert["drill"] else ""
    ack = (
        f" acked v{alert['acknowledged_version']} by {alert['acknowledged_by']}"
        if alert.get("acknowledged_version")
        else ""
    )
    return (
        f"{alert['id']}  {alert['state']:<24} {drill}{alert['urgency']:<6} "
        f"v{alert['notice_version']} step {alert['step']}/{alert['repeat']} "
        f"esc {alert['escalation_count']}  {alert['area']}  {alert['window']}{ack}"
    )


@alert_app.command("list")
def alert_list(
    token: TokenOption,
    url: UrlOption = _DEFAULT_URL,
    state: Annotated[
        list[str] | None,
        typer.Option(
            "--state",
            help="Repeatable: triggered, delivered, escalated, "
            "acknowledged, unacknowledged_exhausted, resolved, or open",
        ),
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=500)] = 50,
    as_json: JsonOption = False,
) -> None:
    """List alerts, newest first."""
    params: list[tuple[str, str | int]] = [("limit", limit)]
    params.extend(("state", s) for s in state or ())
    body = _call(url, token, "GET", "/v1/alerts", params=params)
    if as_json:
        typer.echo(json.dumps(body, indent=2))
        return
    for alert in body["items"]:
        typer.echo(_line(alert))
    typer.echo(f"{len(body['items'])} alert(s)", err=True)


@alert_app.command("show")
def alert_show(
    alert_id: Annotated[str, typer.Argument(help="Alert id")],
    token: TokenOption,
    url: UrlOption = _DEFAULT_URL,
) -> None:
    """Show one alert as JSON."""
    typer.echo(json.dumps(_call(url, token, "GET", f"/v1/alerts/{alert_id}"), indent=2))


@alert_app.command("ack")
def alert_ack(
    alert_id: Annotated[str, typer.Argument(help="Alert id")],
    token: TokenOption,
    url: UrlOption = _DEFAULT_URL,
    version: Annotated[
        int | None,
        typer.Option(
            "--version",
            help="Notice version you read (default: the current one, after showing it and asking)",
        ),
    ] = None,
    comment: Annotated[str | None, typer.Option(help="Optional comment")] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask")] = False,
) -> None:
    """Acknowledge an alert (contact token). A stale version is refused: re-read first."""
    if version is None:
        alert = _call(url, token, "GET", f"/v1/alerts/{alert_id}")
        version = int(alert["notice_version"])
        typer.echo(_line(alert))
        typer.echo(f"summary: {alert['summary']}")
        typer.echo(f"restricted detail: {alert['links']['notice']}")
        if not yes:
            typer.confirm(f"Acknowledge version {version}?", abort=True)
    body: dict[str, Any] = {"notice_version": version}
    if comment:
        body["comment"] = comment
    result = _call(url, token, "POST", f"/v1/alerts/{alert_id}/ack", json=body)
    note = " (already acknowledged)" if result["already_acknowledged"] else ""
    typer.echo(f"acknowledged {result['alert_id']} version {result['acknowledged_version']}{note}")


@alert_app.command("timeline")
def alert_timeline(
    alert_id: Annotated[str, typer.Argument(help="Alert id")],
    token: TokenOption,
    url: UrlOption = _DEFAULT_URL,
) -> None:
    """Everything that happened to an alert, in order."""
    body = _call(url, token, "GET", f"/v1/alerts/{alert_id}/timeline")
    for entry in body["entries"]:
        where = f"step {entry['step']}/{entry['repeat']}" if entry["step"] is not None else ""
        who = entry["recipient_id"] or ""
        how = entry["channel"] or entry["method"] or ""
        kind = entry["kind"]
        typer.echo(
            f"{entry['at']}  v{entry['notice_version']} {kind:<17} {where:<10} {how:<8} {who}"
        )


@directory_app.command("show")
def directory_show(token: TokenOption, url: UrlOption = _DEFAULT_URL) -> None:
    """Print the directory in force (admin token)."""
    typer.echo(json.dumps(_call(url, token, "GET", "/v1/directory"), indent=2))


@directory_app.command("load")
def directory_load(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="YAML or JSON")],
    token: TokenOption,
    url: UrlOption = _DEFAULT_URL,
) -> None:
    """Validate FILE locally, then make it the directory in force (admin token)."""
    from services.router.directory import InvalidDirectory, read_directory_file

    try:
        document = read_directory_file(file)
    except InvalidDirectory as exc:
        for error in exc.errors:
            typer.secho(f"{error.path}: {error.message}", fg="red", err=True)
        raise typer.Exit(1) from None
    stored = _call(url, token, "PUT", "/v1/directory", json=document.model_dump(mode="json"))
    typer.echo(f"directory version {stored['version']} in force ({len(document.people)} people)")


@directory_app.command("check")
def directory_check(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="YAML or JSON")],
) -> None:
    """Validate FILE offline, listing every problem."""
    from services.router.directory import InvalidDirectory, read_directory_file

    try:
        document = read_directory_file(file)
    except InvalidDirectory as exc:
        for error in exc.errors:
            typer.secho(f"{error.path}: {error.message}", fg="red", err=True)
        raise typer.Exit(1) from None
    typer.echo(
        f"valid: {len(document.people)} people, {len(document.policy.steps)} steps, "
        f"repeat {document.policy.repeat}, {len(document.spoc.delegations)} delegation(s)"
    )
