"""The demo story `aviso up` plays once the stack is ready.

A field office submits a notice for tomorrow in District 4; the SPOC's alert arrives at
the local webhook sink (and, with a local Kannel, as an SMS at its fake SMSC) and is
acknowledged by an SMS reply "1 <code>" (without Kannel, through its one-click link); a standby
bulletin is drafted; three rumor reports arrive (two in Spanish); a vetter assesses
the rumor and a second vetter approves the Rumor/Fact bulletin; the radio script, the
liaison's message and the CAP entry are printed. Every step goes through the services'
public HTTP APIs, exactly as their users would; one readable line per step.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import typer
import yaml

from deploy.local.sinks import SmtpSink, WebhookSink
from services.common.auth import Role, issue_token
from services.common.db import make_engine, make_session_factory
from services.common.migrations import upgrade
from services.common.settings import CommonSettings
from services.console.accounts import Enrolment, SecretBox, create_user, find_user, reset_user
from services.console.config import ConsoleSettings

__all__ = ["DemoFailed", "play"]

DIRECTORY = Path(__file__).parent / "router" / "directory.example.yaml"
DEPARTMENT = Path(__file__).parent / "rumor_control" / "department.yaml"
STEPS = 9


class DemoFailed(RuntimeError):
    """A step of the story did not happen as it should."""


class _Story:
    def __init__(self, urls: dict[str, str], correlation_id: str) -> None:
        self.urls = urls
        self.http = httpx.Client(timeout=15, headers={"X-Correlation-ID": correlation_id})
        self.started = time.monotonic()
        self.step = 0

    def say(self, message: str) -> None:
        self.step += 1
        elapsed = time.monotonic() - self.started
        # One write per line: the services' log lines are printed beside it from threads.
        prefix = typer.style(f"[demo] {self.step}/{STEPS} ", fg="bright_blue")
        typer.echo(f"{prefix}{message}  (+{elapsed:.1f} s)")

    def detail(self, text: str) -> None:
        for line in text.strip().splitlines():
            typer.echo(f"         {line}")

    def call(self, method: str, service: str, path: str, token: str, **kwargs: Any) -> Any:
        response = self.http.request(
            method,
            self.urls[service] + path,
            headers={"Authorization": f"Bearer {token}"},
            **kwargs,
        )
        if response.status_code >= 400:
            raise DemoFailed(
                f"{method} {service}{path} answered {response.status_code}: {response.text[:300]}"
            )
        return (
            response.json() if "json" in response.headers.get("content-type", "") else response.text
        )


def _wait(what: str, check: Callable[[], Any], timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.2)
    raise DemoFailed(f"timed out after {timeout:.0f} s waiting for {what}")


async def _issue_tokens(settings: CommonSettings, spoc_id: str) -> dict[str, str]:
    await upgrade(settings, "auth")
    engine = make_engine(settings, "auth")
    wanted = {
        "field_office": (Role.FIELD_OFFICE, "Demo field office", "fo-riverton-demo"),
        "spoc": (Role.CONTACT, "Assistant Chief A. Reyes", spoc_id),
        "author": (Role.VETTER, "Sgt. P. Morales (outreach unit)", str(uuid.uuid4())),
        "approver": (Role.VETTER, "Lt. R. Daniels (public information)", str(uuid.uuid4())),
        "liaison": (Role.LIAISON, "Casa Hispana Community Center", str(uuid.uuid4())),
    }
    tokens: dict[str, str] = {}
    try:
        sessions = make_session_factory(engine)
        async with sessions() as session, session.begin():
            for key, (role, name, subject) in wanted.items():
                issued = await issue_token(session, role=role, name=name, subject=subject)
                tokens[key] = issued.token
    finally:
        await engine.dispose()
    return tokens


# The console's local demo accounts: (login, name, role, language). The SPOC's subject is
# the directory's SPOC, so the console acknowledges as that person.
_DEMO_ACCOUNTS = (
    ("spoc", "Assistant Chief A. Reyes", Role.CONTACT, "en"),
    ("vetter", "Sgt. P. Morales (outreach unit)", Role.VETTER, "es"),
    ("vetter2", "Lt. R. Daniels (public information)", Role.VETTER, "en"),
    ("officer", "Ofc. L. Ortiz (línea en español)", Role.LIAISON, "es"),
    ("ops", "Operations desk", Role.OPS, "en"),
)


async def _console_accounts(settings: CommonSettings, spoc_id: str) -> list[Enrolment]:
    """Create (or on a re-run, reset) the console's demo accounts; their secrets, once."""
    console = ConsoleSettings(database_url=settings.database_url, var_dir=settings.var_dir)
    box = SecretBox(console.console_secret.get_secret_value())
    await upgrade(settings, "auth")
    engine = make_engine(settings, "auth")
    made: list[Enrolment] = []
    try:
        async with make_session_factory(engine)() as session, session.begin():
            for login, name, role, language in _DEMO_ACCOUNTS:
                now = datetime.now(UTC)
                if await find_user(session, login=login) is not None:
                    made.append(
                        await reset_user(session, box=box, login=login, password=None, now=now)
                    )
                    continue
                subject = spoc_id if role is Role.CONTACT else None
                made.append(
                    await create_user(
                        session,
                        box=box,
                        login=login,
                        name=name,
                        role=role,
                        subject=subject,
                        language=language,
                        now=now,
                    )
                )
    finally:
        await engine.dispose()
    return made


def _show_accounts(console_url: str | None, accounts: list[Enrolment]) -> None:
    typer.secho(
        f"[console] sign in at {console_url or 'the console'} with a demo account "
        "(local only; password, then the 6-digit code of the TOTP secret):",
        fg="bright_white",
    )
    for enrolment in accounts:
        user = enrolment.user
        typer.echo(
            f"         {user.login:<8} {user.role.value:<8} password {enrolment.password}  "
            f"TOTP secret {enrolment.totp_secret}"
        )
    typer.echo(
        "         current code: python -c \"import pyotp; print(pyotp.TOTP('SECRET').now())\""
    )


def _notice(now: datetime) -> dict[str, Any]:
    tomorrow = (now + timedelta(days=1)).replace(hour=12, minute=0, second=0, microsecond=0)
    return {
        "reference": f"DEMO-{uuid.uuid4().hex[:8].upper()}",
        "received_via": "api",
        "status": "Actual",
        "operation_type": "targeted_arrest",
        "public_safety_nexus": True,
        "window_start": tomorrow.isoformat(),
        "window_end": (tomorrow + timedelta(hours=4)).isoformat(),
        "area": "District 4",
        "area_code": "district-4",
        "summary": "Federal agents plan a targeted operation in District 4 tomorrow.",
        "source": {
            "field_office_name": "Riverton ERO field office",
            "agent": {"name": "Dana Whitlock", "phone": "+1 505 555 0199"},
        },
        "restricted": {
            "names": ["Esteban Quiroga"],
            "addresses": ["2231 Alameda Ave Apt 4"],
            "vehicles": ["Silver Tacoma 7XYZ123"],
            "exact_locations": ["Corner of 19th and Alameda"],
        },
    }


def _reports(now: datetime) -> list[dict[str, Any]]:
    # The claims name no time of their own ("mañana"), so none gives `observed_at`: each is
    # related to tomorrow's notice by its report time (`now`), which anticipates the window
    # (docs/operations.md, the suggestion rule). `now` stays for the e2e tests' callers.
    return [
        {
            "claim": "Dicen que la migra va a hacer redadas en el Distrito 4 mañana.",
            "place": "Distrito 4",
            "channel": "phone_line",
            "language": "es",
        },
        {
            "claim": "Escuché en la radio que habrá operativos en el Cuarto Distrito.",
            "place": "Cuarto Distrito",
            "channel": "radio",
            "organisation": "La Movida",
            "language": "es",
        },
        {
            "claim": "Parents at the school say ICE is raiding District 4 tomorrow.",
            "place": "District 4",
            "channel": "community_leader",
            "organisation": "Casa Hispana Community Center",
            "language": "en",
        },
    ]


def play(
    urls: dict[str, str],
    settings: CommonSettings,
    *,
    webhook_sink: WebhookSink,
    smtp_sink: SmtpSink,
) -> None:
    """Run the story against the running services; raises DemoFailed when a hop fails."""
    directory = yaml.safe_load(DIRECTORY.read_text(encoding="utf-8"))
    spoc_id = str(directory["spoc"]["person_id"])
    phone = _spoc_phone(directory, spoc_id, settings.var_dir / "kannel")
    liaison = yaml.safe_load(DEPARTMENT.read_text(encoding="utf-8"))["liaisons"][0]
    tokens = asyncio.run(_issue_tokens(settings, spoc_id))
    _show_accounts(urls.get("console"), asyncio.run(_console_accounts(settings, spoc_id)))
    correlation_id = f"demo-{uuid.uuid4().hex[:12]}"
    story = _Story(urls, correlation_id)
    now = datetime.now(UTC)
    try:
        _play(story, tokens, webhook_sink, smtp_sink, liaison, now, phone)
    finally:
        story.http.close()
    typer.secho(
        f"[demo] done; correlation id {correlation_id} is on every log line it caused",
        fg="bright_blue",
    )


def _play(
    story: _Story,
    tokens: dict[str, str],
    webhook_sink: WebhookSink,
    smtp_sink: SmtpSink,
    liaison: dict[str, Any],
    now: datetime,
    phone: _Phone | None = None,
) -> None:
    notice_id = _notice_reaches_the_spoc(story, tokens, webhook_sink, smtp_sink, now, phone)
    rumor_id, suggestion = _rumors_gather(story, tokens, notice_id)
    _bulletin_is_published(story, tokens, webhook_sink, liaison, notice_id, rumor_id, suggestion)


def _notice_reaches_the_spoc(
    story: _Story,
    tokens: dict[str, str],
    webhook_sink: WebhookSink,
    smtp_sink: SmtpSink,
    now: datetime,
    phone: _Phone | None = None,
) -> str:
    """A field office submits; the SPOC's alert arrives and is acknowledged (SMS or link)."""
    notice = story.call("POST", "intake", "/v1/notices", tokens["field_office"], json=_notice(now))
    notice_id = notice["id"]
    story.say(
        f"field office submitted a notice for tomorrow in District 4: 201, notice {notice_id}"
    )

    def spoc_alert() -> dict[str, Any] | None:
        for item in webhook_sink.received:
            payload = item["payload"]
            if (
                isinstance(payload, dict)
                and payload.get("notice_id") == notice_id
                and payload.get("ack_url")
            ):
                return payload
        return None

    alert = _wait("the SPOC's alert at the webhook sink", spoc_alert)
    mail = [m for m in smtp_sink.received if notice_id in m.get("text", "")]
    story.say(
        f'SPOC alert delivered by webhook{" and e-mail" if mail else ""}: "{alert["headline"]}"'
    )
    if phone is not None:
        _spoc_replies_by_sms(story, tokens, phone, str(alert["alert_id"]))
        return str(notice_id)

    ack_url = alert["ack_url"]
    page = story.http.get(ack_url)
    if page.status_code != 200:
        raise DemoFailed(f"the one-click link answered {page.status_code}")
    token = re.search(r'name="token" value="([^"]+)"', page.text)
    form_token = token.group(1) if token else ack_url.split("token=", 1)[1]
    done = story.http.post(
        ack_url.split("?", 1)[0], data={"token": form_token}, headers={"Accept": "application/json"}
    )
    if done.status_code != 200:
        raise DemoFailed(
            f"acknowledging through the link answered {done.status_code}: {done.text[:200]}"
        )
    story.say(
        f"SPOC opened the one-click link on a phone and acknowledged alert {alert['alert_id']}"
    )
    return str(notice_id)


@dataclass(frozen=True)
class _Phone:
    """The SPOC's phone on the local Kannel's fake SMSC (the number is never printed)."""

    data_dir: Path
    number: str


def _spoc_phone(directory: dict[str, Any], spoc_id: str, data_dir: Path) -> _Phone | None:
    """The SPOC's phone when a local Kannel runs and the directory has an SMS number."""
    from deploy.local import kannel

    spoc: dict[str, Any] = next((p for p in directory["people"] if str(p["id"]) == spoc_id), {})
    number = spoc.get("channels", {}).get("sms")
    if not number or kannel.status(data_dir=data_dir) is None:
        return None
    return _Phone(data_dir, str(number))


def _spoc_replies_by_sms(
    story: _Story, tokens: dict[str, str], phone: _Phone, alert_id: str
) -> None:
    """The SPOC's SMS at the fake SMSC; a reply "1 <code>" acknowledges the alert."""
    from deploy.local import kannel
    from services.router.domain.sms import sms_code

    code = sms_code(uuid.UUID(alert_id))

    def texted() -> str | None:
        for sms in kannel.received(data_dir=phone.data_dir):
            text = sms.data.decode("utf-8", "replace")
            if sms.receiver == phone.number and text.startswith(f"Aviso {code}:"):
                return text
        return None

    text = _wait("the SMS on the SPOC's phone", texted)
    story.detail(f'SMS on the SPOC\'s phone: "{text}"')
    kannel.inject(phone.number, kannel.SHORT_CODE, f"1 {code}", data_dir=phone.data_dir)

    def acknowledged() -> dict[str, Any] | None:
        alert = story.call("GET", "router", f"/v1/alerts/{alert_id}", tokens["spoc"])
        return dict(alert) if alert["state"] == "acknowledged" else None

    alert = _wait("the acknowledgement by SMS", acknowledged)
    story.say(
        f'SPOC replied "1 {code}" by SMS and acknowledged alert {alert_id} '
        f"(method {alert['ack_method']})"
    )


def _rumors_gather(story: _Story, tokens: dict[str, str], notice_id: str) -> tuple[str, str]:
    """The standby draft appears; three reports become one rumor with a suggestion."""

    def standby() -> dict[str, Any] | None:
        for bulletin in story.call("GET", "rumor_control", "/v1/bulletins", tokens["author"]):
            if bulletin["kind"] == "standby" and notice_id in bulletin["notice_ids"]:
                return dict(bulletin)
        return None

    draft = _wait("the standby bulletin", standby)
    story.say(
        "standby bulletin drafted in English and Spanish, ready if rumors start "
        f"({draft['bulletin_id']})"
    )

    rumor_ids = {
        story.call("POST", "rumor_control", "/v1/rumors", tokens["liaison"], json=report)[
            "rumor_id"
        ]
        for report in _reports(datetime.now(UTC))
    }
    if len(rumor_ids) != 1:
        raise DemoFailed(f"the three reports made {len(rumor_ids)} rumors instead of one")
    rumor_id = rumor_ids.pop()
    rumor = story.call("GET", "rumor_control", f"/v1/rumors/{rumor_id}", tokens["author"])
    story.say(
        f"three rumor reports (two in Spanish) clustered into one rumor about "
        f"{rumor['area']}; suggested status: {rumor['suggestion']['assessment']}"
    )
    return str(rumor_id), str(rumor["suggestion"]["assessment"])


def _bulletin_is_published(
    story: _Story,
    tokens: dict[str, str],
    webhook_sink: WebhookSink,
    liaison: dict[str, Any],
    notice_id: str,
    rumor_id: str,
    suggestion: str,
) -> None:
    """A vetter assesses, a second approves; radio script, liaison message and CAP entry."""
    assessed = story.call(
        "POST",
        "rumor_control",
        f"/v1/rumors/{rumor_id}/assess",
        tokens["author"],
        json={"assessment": suggestion, "linked_notice_ids": [notice_id]},
    )
    bulletin_id = assessed["bulletin_id"]
    story.say(f"vetter assessed the rumor ({suggestion}); Rumor/Fact bulletin drafted")

    approved = story.call(
        "POST",
        "rumor_control",
        f"/v1/bulletins/{bulletin_id}/approve",
        tokens["approver"],
        json={"sign_off": ["en", "es"]},
    )
    story.say(f"a second vetter signed off both languages and approved it: {approved['state']}")

    script = story.call(
        "GET", "rumor_control", f"/v1/bulletins/{bulletin_id}/radio", tokens["approver"]
    )
    story.say("radio desk's read-aloud script (Spanish first):")
    story.detail(script)

    def liaison_message() -> dict[str, Any] | None:
        for item in webhook_sink.received:
            payload = item["payload"]
            if isinstance(payload, dict) and payload.get("bulletin_id") == bulletin_id:
                return dict(payload)
        return None

    message = _wait(f"the bulletin at {liaison['name']}'s webhook", liaison_message)
    cap = story.http.get(
        f"{story.urls['rumor_control']}/feeds/cap/{bulletin_id}/{approved['version']}.xml"
    )
    story.say(
        f"{liaison['name']} received it in '{message.get('language', liaison['language'])}'; "
        "CAP 1.2 entry:"
    )
    story.detail(f"{message.get('headline', '')}\n{message.get('body', '')}"[:1500])
    story.detail(
        cap.text[:1500] if cap.status_code == 200 else f"(CAP entry answered {cap.status_code})"
    )
