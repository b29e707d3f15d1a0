"""`aviso rumor ...` and `aviso bulletin ...`: the rumor_control API from a terminal.

Every command speaks HTTP to a running service (`--url`, default http://127.0.0.1:8003)
with a bearer token (`--token` or `AVISO_TOKEN`), so it needs no database access and sees
exactly what the token's role may see.
"""

from __future__ import annotations

import json
import shutil
import textwrap
from datetime import datetime
from itertools import zip_longest
from typing import Annotated, Any

import httpx
import typer

__all__ = ["commands", "side_by_side"]

rumor_app = typer.Typer(help="The rumor ledger: report and list rumors.", no_args_is_help=True)
bulletin_app = typer.Typer(
    help="Bulletins: list, show both languages with guardrails, approve.", no_args_is_help=True
)

# Each entry is mounted on the main CLI as `aviso <name> ...`.
commands: dict[str, typer.Typer] = {"rumor": rumor_app, "bulletin": bulletin_app}

Url = Annotated[
    str,
    typer.Option(
        "--url", envvar="AVISO_RUMOR_CONTROL_URL", help="Base URL of the rumor_control service."
    ),
]
Token = Annotated[
    str, typer.Option("--token", envvar="AVISO_TOKEN", help="Bearer token (aviso tokens issue).")
]
DEFAULT_URL = "http://127.0.0.1:8003"


def _call(method: str, url: str, path: str, token: str, body: Any = None) -> Any:
    """One request; a problem+json answer is printed and exits non-zero."""
    try:
        response = httpx.request(
            method,
            url.rstrip("/") + path,
            headers={"Authorization": f"Bearer {token}"},
            json=body,
            timeout=15,
        )
    except httpx.HTTPError as exc:
        typer.secho(f"cannot reach {url}: {type(exc).__name__}", fg="red", err=True)
        raise typer.Exit(2) from None
    if response.status_code >= 400:
        try:
            problem = response.json()
        except ValueError:
            problem = {"title": response.reason_phrase}
        code = problem.get("reason_code")
        message = f"{response.status_code} {problem.get('title', '')}: {problem.get('detail', '')}"
        typer.secho(message + (f" [{code}]" if code else ""), fg="red", err=True)
        for error in problem.get("errors", []):
            typer.secho(f"  {'.'.join(error.get('loc', []))}: {error.get('msg')}", err=True)
        raise typer.Exit(1)
    if not response.content:
        return None
    if "json" in response.headers.get("content-type", ""):
        return response.json()
    return response.text


def _short_time(value: str | None) -> str:
    if not value:
        return "-"
    return datetime.fromisoformat(value).strftime("%Y-%m-%d %H:%M")


@rumor_app.command("report")
def rumor_report(
    claim: Annotated[str, typer.Option(help="The claim as heard, in any language.")],
    place: Annotated[str, typer.Option(help="Where it was seen or heard.")],
    channel: Annotated[
        str, typer.Option(help="phone_line, radio, community_leader, social_media or walk_in")
    ] = "phone_line",
    organisation: Annotated[str | None, typer.Option(help="Reporting organisation.")] = None,
    observed_at: Annotated[
        str | None, typer.Option(help="When it was seen (ISO 8601 with offset); default now.")
    ] = None,
    drill: Annotated[bool, typer.Option(help="A drill report.")] = False,
    url: Url = DEFAULT_URL,
    token: Token = "",
) -> None:
    """Report a rumor; reports of the same place and time join one rumor."""
    body = {
        "claim": claim,
        "place": place,
        "channel": channel,
        "organisation": organisation,
        "observed_at": observed_at,
        "drill": drill,
    }
    result = _call(
        "POST", url, "/v1/rumors", token, {k: v for k, v in body.items() if v is not None}
    )
    where = result["area"] or "no gazetteer area"
    joined = "opened a new rumor" if result["new_rumor"] else "joined an existing rumor"
    typer.echo(
        f"report {result['report_id']} {joined} {result['rumor_id']} "
        f"({where}; {result['report_count']} report(s))"
    )


@rumor_app.command("list")
def rumor_list(url: Url = DEFAULT_URL, token: Token = "") -> None:
    """The rumor ledger with the status the notices suggest."""
    rumors = _call("GET", url, "/v1/rumors", token)
    for r in rumors:
        drill = " DRILL" if r["drill"] else ""
        status = r["assessment"] or "unassessed"
        if r["expired"]:
            status += " (expired)"
        suggestion = r["suggestion"]
        typer.echo(
            f"{r['rumor_id']}{drill}  {r['area'] or '?':<18} reports={r['report_count']:<3} "
            f"{status:<22} suggest={suggestion['assessment']} ({suggestion['reason_code']})  "
            f"last={_short_time(r['last_reported_at'])}"
        )
    typer.echo(f"{len(rumors)} rumor(s)", err=True)


@bulletin_app.command("list")
def bulletin_list(url: Url = DEFAULT_URL, token: Token = "") -> None:
    """Bulletins, most recently changed first, with what blocks them."""
    bulletins = _call("GET", url, "/v1/bulletins", token)
    for b in bulletins:
        drill = " DRILL" if b["drill"] else ""
        blocked = ",".join(b["blocked_reasons"]) or "-"
        typer.echo(
            f"{b['bulletin_id']}{drill}  {b['kind']:<10} v{b['version']} {b['msg_type']:<6} "
            f"{b['state']:<9} ({b['version_state']})  signed={','.join(b['signed_off']) or '-'}  "
            f"blocked={blocked}"
        )
    typer.echo(f"{len(bulletins)} bulletin(s)", err=True)


def side_by_side(left: str, right: str, width: int) -> list[str]:
    """Two texts in columns of `width` characters, paragraph breaks kept."""

    def wrap(text: str) -> list[str]:
        lines: list[str] = []
        for paragraph in text.split("\n"):
            lines.extend(textwrap.wrap(paragraph, width) or [""])
        return lines

    return [
        f"{a:<{width}} | {b}".rstrip()
        for a, b in zip_longest(wrap(left), wrap(right), fillvalue="")
    ]


@bulletin_app.command("show")
def bulletin_show(
    bulletin_id: Annotated[str, typer.Argument(help="The bulletin's id.")],
    url: Url = DEFAULT_URL,
    token: Token = "",
    as_json: Annotated[bool, typer.Option("--json", help="Print the raw JSON.")] = False,
) -> None:
    """Both languages side by side, then the guardrail results and sign-offs."""
    b = _call("GET", url, f"/v1/bulletins/{bulletin_id}", token)
    if as_json:
        typer.echo(json.dumps(b, indent=2, ensure_ascii=False))
        return
    drill = "  ** DRILL: never public **" if b["drill"] else ""
    typer.echo(
        f"bulletin {b['bulletin_id']}  {b['kind']}  v{b['version']} {b['msg_type']}  "
        f"{b['state']} ({b['version_state']}){drill}"
    )
    width = max(30, (shutil.get_terminal_size((140, 40)).columns - 3) // 2)
    texts = b.get("texts") or {}
    if texts:
        english, spanish = texts.get("en", {}), texts.get("es", {})
        for section in ("headline", "body", "sms", "radio"):
            typer.echo("")
            typer.secho(f"-- {section.upper()} ".ljust(2 * width + 3, "-"), bold=True)
            for line in side_by_side(english.get(section, ""), spanish.get(section, ""), width):
                typer.echo(line)
    typer.echo("")
    findings = b.get("guardrails") or []
    if not findings:
        typer.secho("guardrails: all clear", fg="green")
    for finding in findings:
        where = "/".join(filter(None, [finding.get("language"), finding.get("section")]))
        typer.secho(f"BLOCKED {finding['code']:<26} {where:<12} {finding['detail']}", fg="red")
    signed = {s["language"]: s for s in b.get("signoffs", [])}
    for language in ("en", "es"):
        s = signed.get(language)
        state = f"signed off by {s['name']} at {_short_time(s['at'])}" if s else "not signed off"
        typer.echo(f"{language}: {state}")


@bulletin_app.command("approve")
def bulletin_approve(
    bulletin_id: Annotated[str, typer.Argument(help="The bulletin's id.")],
    sign_off: Annotated[
        list[str] | None,
        typer.Option("--sign-off", help="Sign off this language first (repeat: en, es)."),
    ] = None,
    url: Url = DEFAULT_URL,
    token: Token = "",
) -> None:
    """Approve and publish (you may not be the author; each language needs a sign-off)."""
    b = _call(
        "POST", url, f"/v1/bulletins/{bulletin_id}/approve", token, {"sign_off": sign_off or []}
    )
    typer.echo(f"published {b['bulletin_id']} v{b['version']} ({b['msg_type']})")


@bulletin_app.command("sign-off")
def bulletin_sign_off(
    bulletin_id: Annotated[str, typer.Argument(help="The bulletin's id.")],
    language: Annotated[list[str], typer.Option("--language", help="en and/or es.")],
    url: Url = DEFAULT_URL,
    token: Token = "",
) -> None:
    """Sign off language versions of a draft."""
    b = _call("POST", url, f"/v1/bulletins/{bulletin_id}/signoff", token, {"languages": language})
    typer.echo(f"signed off: {', '.join(s['language'] for s in b['signoffs'])}")
