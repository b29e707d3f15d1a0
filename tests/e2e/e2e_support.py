"""The whole system as its users meet it: three services as real processes, real sinks.

`running_system` starts intake, N routers and N rumor_control instances (each a real
`python -m services.cli serve` process) against a real Kafka broker and one fresh
PostgreSQL database, with a webhook sink and an SMTP sink standing in for the SPOC's
phone, the liaisons and the mail relay. Everything after that goes through HTTP only.

Topics are shared with every other test on the broker, so each system gets consumer
groups of its own, positioned at the end of the topics before any process starts (they
neither steal another test's messages nor replay earlier runs), and everything a test
reads is filtered by its own notice, alert and bulletin ids.

The story steps (`submit_notice`, `spoc_alert`, `acknowledge_by_link`, ...) are the same
requests `services/demo.py` makes; the tests assert on what they return.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import yaml

from deploy.local.kafka import ensure_topics
from deploy.local.sinks import SmtpSink, WebhookSink
from schemas.topics import ALERTS, ALL_TOPICS, NOTICES
from services.common.auth import Role
from services.common.settings import CommonSettings
from services.demo import _notice as demo_notice
from services.demo import _reports as demo_reports
from services.rumor_control.config import PACKAGE_DIR
from services.rumor_control.subscribers import group_id as rumor_group_id
from tests.integration.intake.intake_support import KEY_K1
from tests.integration.rumor_control.rumor_harness import skip_history
from tests.support.apps import issue_test_token
from tests.support.processes import ServiceProcess

__all__ = [
    "CORRELATION_HEADER",
    "Cast",
    "Hops",
    "System",
    "acknowledge_by_link",
    "approve",
    "assess_rumor",
    "deliveries_by_target",
    "duplicates",
    "records_with",
    "report_rumors",
    "running_system",
    "spoc_alert",
    "standby_bulletin",
    "submit_notice",
    "wait_until",
]

CORRELATION_HEADER = "X-Correlation-ID"
WEBHOOK_SECRET = "e2e-webhook-secret"
LINK_SECRET = "e2e-link-secret"
# Every process of a system starts at once, up to five on two cores: on a busy machine
# their imports alone can take a minute. A deadline for a hang, not a measure of speed.
START_S = 150.0


# -- the people and organisations of the story ------------------------------------------


@dataclass(frozen=True)
class Cast:
    """Fresh ids and addresses per system, so no other run's data can be mistaken for ours."""

    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    spoc_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    backup_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    spanish_liaison_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    english_liaison_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    radio_desk_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    @property
    def spoc_email(self) -> str:
        return f"a.reyes.{self.tag}@police.example"

    @property
    def backup_email(self) -> str:
        return f"l.chen.{self.tag}@police.example"

    @property
    def spanish_liaison_email(self) -> str:
        return f"avisos.{self.tag}@casahispana.example"

    @property
    def english_liaison_email(self) -> str:
        return f"board.{self.tag}@northgate-neighbors.example"

    @property
    def radio_desk_email(self) -> str:
        return f"redaccion.{self.tag}@radiolavoz.example"

    def spoc_hook(self, webhook: WebhookSink) -> str:
        return webhook.url(f"/hooks/{self.spoc_id}")

    def liaison_hook(self, webhook: WebhookSink, liaison_id: str) -> str:
        return webhook.url(f"/liaisons/{liaison_id}")

    def directory(
        self, webhook: WebhookSink, *, spoc_wait_s: float, spoc_hook: str | None = None
    ) -> dict[str, Any]:
        """The router's directory: the SPOC (webhook and e-mail), then a backup by e-mail.

        `spoc_hook`: another address for the SPOC's webhook (e.g. a faulty receiver).
        """
        return {
            "people": [
                {
                    "id": self.spoc_id,
                    "name": "Assistant Chief A. Reyes",
                    "role": "Assistant Chief, Support and Community Outreach (SPOC)",
                    "channels": {
                        "webhook_url": spoc_hook or self.spoc_hook(webhook),
                        "email": self.spoc_email,
                    },
                },
                {
                    "id": self.backup_id,
                    "name": "Captain L. Chen",
                    "role": "Backup contact, Community Outreach Unit",
                    "channels": {"email": self.backup_email},
                },
            ],
            "spoc": {"person_id": self.spoc_id, "delegations": []},
            "policy": {
                "steps": [
                    {"target": "spoc", "wait_s": spoc_wait_s},
                    {"target": "person", "person_id": self.backup_id, "wait_s": spoc_wait_s},
                ],
                "repeat": 0,
            },
        }

    def department(self, webhook: WebhookSink) -> dict[str, Any]:
        """The bundled department.yaml with this cast's liaisons and radio desk."""
        data: dict[str, Any] = yaml.safe_load((PACKAGE_DIR / "department.yaml").read_text("utf-8"))
        data["liaisons"] = [
            {
                "id": self.spanish_liaison_id,
                "name": "Casa Hispana Community Center",
                "language": "es",
                "webhook_url": self.liaison_hook(webhook, self.spanish_liaison_id),
                "email": self.spanish_liaison_email,
            },
            {
                "id": self.english_liaison_id,
                "name": "Northgate Neighbors Association",
                "language": "en",
                "webhook_url": self.liaison_hook(webhook, self.english_liaison_id),
                "email": self.english_liaison_email,
            },
        ]
        data["radio_desk"] = {
            "id": self.radio_desk_id,
            "name": "Radio La Movida newsroom",
            "email": self.radio_desk_email,
        }
        return data

    def bulletin_targets(self) -> set[tuple[str, str]]:
        """Every (recipient, channel) a published bulletin must reach exactly once."""
        return {
            (self.spanish_liaison_id, "webhook"),
            (self.spanish_liaison_id, "email"),
            (self.english_liaison_id, "webhook"),
            (self.english_liaison_id, "email"),
            (self.radio_desk_id, "email"),
        }

    def recipient_of_email(self, address: str) -> str | None:
        return {
            self.spoc_email: self.spoc_id,
            self.backup_email: self.backup_id,
            self.spanish_liaison_email: self.spanish_liaison_id,
            self.english_liaison_email: self.english_liaison_id,
            self.radio_desk_email: self.radio_desk_id,
        }.get(address)


# -- timings --------------------------------------------------------------------------


class Hops:
    """Per-hop timings of one story: observations printed at the end, never asserted."""

    def __init__(self, title: str) -> None:
        self.title = title
        self.started = time.monotonic()
        self._last = self.started
        self.rows: list[tuple[str, float, float]] = []

    def mark(self, hop: str) -> float:
        """Record that `hop` just completed; returns its duration in seconds."""
        now = time.monotonic()
        took = now - self._last
        self.rows.append((hop, took, now - self.started))
        self._last = now
        return took

    def report(self) -> str:
        width = max((len(hop) for hop, _, _ in self.rows), default=10)
        lines = [f"\n[{self.title}] per-hop timings (observations, not assertions)"]
        lines += [
            f"  {hop:<{width}}  {took * 1000:9.1f} ms   (+{total:6.2f} s)"
            for hop, took, total in self.rows
        ]
        return "\n".join(lines)


async def wait_until(
    what: str,
    check: Callable[[], Any],
    *,
    timeout: float = 30.0,
    interval: float = 0.05,
    explain: Callable[[], str] | None = None,
) -> Any:
    """Await `check()` (sync or async) until it returns something truthy; return that."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if asyncio.iscoroutine(found):
            found = await found
        if found:
            return found
        if time.monotonic() > deadline:
            detail = f"\n{explain()}" if explain else ""
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}{detail}")
        await asyncio.sleep(interval)


# -- the running system -----------------------------------------------------------------


@dataclass
class System:
    """The processes, the sinks, the tokens by role and one HTTP client."""

    intake: ServiceProcess
    routers: list[ServiceProcess]
    rumor_controls: list[ServiceProcess]
    webhook: WebhookSink
    smtp: SmtpSink
    cast: Cast
    tokens: dict[str, str]
    client: httpx.AsyncClient

    @property
    def processes(self) -> list[ServiceProcess]:
        return [self.intake, *self.routers, *self.rumor_controls]

    def auth(self, who: str, **headers: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}", **headers}

    @staticmethod
    def alive(instances: Iterable[ServiceProcess]) -> list[ServiceProcess]:
        return [i for i in instances if i.process is not None and i.process.poll() is None]

    @property
    def router_url(self) -> str:
        """A live router, as a load balancer in front of the instances would pick."""
        return self.alive(self.routers)[0].url

    @property
    def rumor_url(self) -> str:
        """A live rumor_control instance."""
        return self.alive(self.rumor_controls)[0].url

    def via_live(self, url: str) -> str:
        """`url` unchanged, or re-pointed at a live instance of the same service if its own
        instance is dead: each instance puts its own address in the links it sends, and a
        load balancer would route a click to whichever instance is up."""
        for group in (self.routers, self.rumor_controls):
            for instance in group:
                if url.startswith(instance.url) and instance not in self.alive(group):
                    return self.alive(group)[0].url + url.removeprefix(instance.url)
        return url

    def log_records(self, instances: Iterable[ServiceProcess]) -> list[dict[str, Any]]:
        return [record for instance in instances for record in instance.log_records()]


def records_with(records: Iterable[dict[str, Any]], **fields: Any) -> list[dict[str, Any]]:
    """The log records carrying every one of `fields` with that value."""
    return [r for r in records if all(r.get(k) == v for k, v in fields.items())]


async def _issue_tokens(database_url: str, var_dir: Path, cast: Cast) -> dict[str, str]:
    settings = CommonSettings(database_url=database_url, var_dir=var_dir)
    wanted: dict[str, tuple[Role, str, str | None]] = {
        "field_office": (Role.FIELD_OFFICE, "Riverton ERO field office system", "fo-riverton"),
        "spoc": (Role.CONTACT, "Assistant Chief A. Reyes", cast.spoc_id),
        "author": (Role.VETTER, "Sgt. P. Morales (outreach unit)", str(uuid.uuid4())),
        "approver": (Role.VETTER, "Lt. R. Daniels (public information)", str(uuid.uuid4())),
        "liaison": (Role.LIAISON, "Spanish-language phone line", str(uuid.uuid4())),
        "ops": (Role.OPS, "Operations", None),
        "admin": (Role.ADMIN, "Directory administrator", None),
    }
    return {
        key: await issue_test_token(settings, role, name, subject)
        for key, (role, name, subject) in wanted.items()
    }


def _groups(router_prefix: str, rumor_prefix: str) -> dict[str, tuple[str, ...]]:
    """Every consumer group of the system and the topics it reads."""
    return {
        f"{router_prefix}.notices": (NOTICES,),
        rumor_group_id(rumor_prefix): (NOTICES, ALERTS),
    }


@asynccontextmanager
async def running_system(
    tmp_path: Path,
    *,
    kafka_bootstrap: str,
    database_url: str,
    unique: Callable[[str], str],
    routers: int = 1,
    rumor_controls: int = 1,
    spoc_wait_s: float = 60.0,
    extra_env: dict[str, str] | None = None,
    spoc_hook: str | None = None,
) -> AsyncIterator[System]:
    """Start the sinks and every process; stop them all afterwards, whatever happened.

    `spoc_hook`: where the SPOC's webhook goes instead of the webhook sink.
    """
    cast = Cast()
    async with AsyncExitStack() as stack:
        webhook = stack.enter_context(WebhookSink(secrets=[WEBHOOK_SECRET.encode()]))
        smtp = stack.enter_context(SmtpSink())
        directory_file = tmp_path / "directory.yaml"
        directory_file.write_text(
            yaml.safe_dump(cast.directory(webhook, spoc_wait_s=spoc_wait_s, spoc_hook=spoc_hook)),
            "utf-8",
        )
        department_file = tmp_path / "department.yaml"
        department_file.write_text(
            yaml.safe_dump(cast.department(webhook), allow_unicode=True), "utf-8"
        )
        router_prefix = unique("e2e-router")
        rumor_prefix = unique("e2e-rumor") + "."
        await ensure_topics(kafka_bootstrap, list(ALL_TOPICS))
        await skip_history(kafka_bootstrap, _groups(router_prefix, rumor_prefix))
        var_dir = tmp_path / "var"
        tokens = await _issue_tokens(database_url, var_dir, cast)

        common = {
            "DATABASE_URL": database_url,
            "AVISO_DATABASE_URL": database_url,
            "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
            "AVISO_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
            "AVISO_VAR_DIR": str(var_dir),
            "AVISO_SMTP_HOST": "127.0.0.1",
            "AVISO_SMTP_PORT": str(smtp.port),
            "AVISO_WEBHOOK_SECRETS": json.dumps([WEBHOOK_SECRET]),
            "AVISO_LINK_SECRET": LINK_SECRET,
            "AVISO_CONSUMER_BACKOFF_S": "0.05",
            "AVISO_SHUTDOWN_GRACE_S": "5",
            **(extra_env or {}),
        }
        log_dir = tmp_path / "logs"
        intake = ServiceProcess(
            "intake",
            {
                **common,
                "AVISO_INTAKE_ENCRYPTION_KEYS": f"k1:{KEY_K1}",
                "AVISO_INTAKE_SWEEP_INTERVAL_S": "3600",
                # A group of its own reads the directory topic from the start; the newest
                # announcement (this system's router, loading the file) wins.
                "AVISO_INTAKE_GROUP_PREFIX": unique("e2e-intake"),
            },
            log_dir,
        )
        router_env = {
            **common,
            "AVISO_ROUTER_DIRECTORY_FILE": str(directory_file),
            "AVISO_ROUTER_INTAKE_BASE_URL": intake.url,
            "AVISO_ROUTER_GROUP_PREFIX": router_prefix,
            "AVISO_ROUTER_TIMER_POLL_INTERVAL_S": "0.25",
        }
        rumor_env = {
            **common,
            "AVISO_RUMOR_DEPARTMENT_FILE": str(department_file),
            "AVISO_RUMOR_GROUP_PREFIX": rumor_prefix,
        }
        router_instances = [
            ServiceProcess("router", router_env, log_dir, instance=str(n + 1))
            for n in range(routers)
        ]
        rumor_instances = [
            ServiceProcess("rumor_control", rumor_env, log_dir, instance=str(n + 1))
            for n in range(rumor_controls)
        ]
        everything = [intake, *router_instances, *rumor_instances]
        for instance in [*router_instances, *rumor_instances]:
            # Links in what an instance sends (one-click ack, receipts, feeds) point at it.
            instance.env = {**instance.env, "AVISO_PUBLIC_BASE_URL": instance.url}

        async def stop_all() -> None:
            await asyncio.gather(
                *(asyncio.to_thread(p.terminate, 15.0) for p in everything),
                return_exceptions=True,
            )

        stack.push_async_callback(stop_all)
        started = await asyncio.gather(
            *(asyncio.to_thread(p.start, timeout=START_S) for p in everything),
            return_exceptions=True,
        )
        for outcome in started:
            if isinstance(outcome, BaseException):
                raise outcome
        client = await stack.enter_async_context(httpx.AsyncClient(timeout=30.0))
        system = System(
            intake, router_instances, rumor_instances, webhook, smtp, cast, tokens, client
        )
        await intake_holds_the_directory(system)
        yield system


async def intake_holds_the_directory(system: System, *, timeout: float = 60.0) -> None:
    """Wait until intake has recorded the directory router announced on starting.

    Until then intake shows a SPOC metadata only, as it must for a holder of a contact token
    it cannot place in the directory; a department's directory is announced long before the
    first notice, this system's a moment before the story starts.
    """
    response = await system.client.get(
        f"{system.router_url}/v1/directory", headers=system.auth("admin")
    )
    assert response.status_code == 200, response.text
    announced = datetime.fromisoformat(response.json()["created_at"])

    async def recorded() -> bool:
        ready = await system.client.get(f"{system.intake.url}/internal/ready")
        held = ready.json().get("facts", {}).get("directory", {}).get("published_at")
        return held is not None and datetime.fromisoformat(held) == announced

    await wait_until("intake holds the directory router announced", recorded, timeout=timeout)


# -- the story, step by step (the requests of services/demo.py) ------------------------------


async def submit_notice(system: System, *, correlation_id: str) -> tuple[dict[str, Any], Any]:
    """The field office POSTs tomorrow's notice for District 4; returns (body, response)."""
    body = demo_notice(datetime.now(UTC))
    response = await system.client.post(
        f"{system.intake.url}/v1/notices",
        json=body,
        headers=system.auth("field_office", **{CORRELATION_HEADER: correlation_id}),
    )
    return body, response


def _spoc_hooks(system: System, notice_id: str) -> list[dict[str, Any]]:
    return [
        item
        for item in system.webhook.received
        if isinstance(item["payload"], dict)
        and item["payload"].get("type") == "aviso.alert.notification"
        and item["payload"].get("notice_id") == notice_id
    ]


async def spoc_alert(
    system: System, notice_id: str, *, timeout: float = 30.0
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The SPOC's alert at the webhook sink and at the SMTP sink: (webhook record, mail)."""

    def both() -> tuple[dict[str, Any], dict[str, Any]] | None:
        hooks = [h for h in _spoc_hooks(system, notice_id) if h["payload"].get("ack_url")]
        mails = [
            m
            for m in system.smtp.received
            if m["to"] == [system.cast.spoc_email] and notice_id in m["text"]
        ]
        return (hooks[0], mails[0]) if hooks and mails else None

    found: tuple[dict[str, Any], dict[str, Any]] = await wait_until(
        "the SPOC's alert at the webhook and SMTP sinks",
        both,
        timeout=timeout,
        explain=lambda: _tails(system.routers),
    )
    return found


async def acknowledge_by_link(
    system: System, ack_url: str
) -> tuple[httpx.Response, httpx.Response]:
    """Open the one-click link (a confirmation page), then submit its form: (page, done)."""
    page = await system.client.get(system.via_live(ack_url), headers={"Accept": "text/html"})
    token = re.search(r'name="token" value="([^"]+)"', page.text)
    form_token = token.group(1) if token else ack_url.split("token=", 1)[1]
    done = await system.client.post(
        system.via_live(ack_url.split("?", 1)[0]),
        data={"token": form_token},
        headers={"Accept": "application/json"},
    )
    return page, done


async def standby_bulletin(system: System, notice_id: str, *, timeout: float = 30.0) -> Any:
    """The standby bulletin drafted for the notice (as the author vetter reads it)."""

    async def find() -> dict[str, Any] | None:
        listed = await system.client.get(
            f"{system.rumor_url}/v1/bulletins", headers=system.auth("author")
        )
        listed.raise_for_status()
        for summary in listed.json():
            if summary["kind"] == "standby" and notice_id in summary["notice_ids"]:
                detail = await system.client.get(
                    f"{system.rumor_url}/v1/bulletins/{summary['bulletin_id']}",
                    headers=system.auth("author"),
                )
                detail.raise_for_status()
                return dict(detail.json())
        return None

    return await wait_until(
        "the standby bulletin",
        find,
        timeout=timeout,
        interval=0.1,
        explain=lambda: _tails(system.rumor_controls),
    )


async def report_rumors(system: System) -> list[dict[str, Any]]:
    """Three reports of the same rumor (two in Spanish), as the liaison files them."""
    answers = []
    for report in demo_reports(datetime.now(UTC)):
        response = await system.client.post(
            f"{system.rumor_url}/v1/rumors", json=report, headers=system.auth("liaison")
        )
        assert response.status_code == 201, response.text
        answers.append(dict(response.json()))
    return answers


async def assess_rumor(
    system: System, rumor_id: str, *, assessment: str, notice_id: str
) -> httpx.Response:
    """The author vetter sets the rumor's status, linking the notice: drafts a Rumor/Fact."""
    return await system.client.post(
        f"{system.rumor_url}/v1/rumors/{rumor_id}/assess",
        json={"assessment": assessment, "linked_notice_ids": [notice_id]},
        headers=system.auth("author"),
    )


async def approve(
    system: System, bulletin_id: str, *, who: str, sign_off: tuple[str, ...] = ("en", "es")
) -> httpx.Response:
    """`who` signs off `sign_off` (both languages by default) and approves, in one request."""
    return await system.client.post(
        f"{system.rumor_url}/v1/bulletins/{bulletin_id}/approve",
        json={"sign_off": list(sign_off)},
        headers=system.auth(who),
    )


# -- what arrived at the sinks ------------------------------------------------------------


def deliveries_by_target(
    system: System,
    *,
    hooks: Iterable[dict[str, Any]],
    mails: Iterable[dict[str, Any]],
) -> dict[tuple[str, str], list[str | None]]:
    """Raw receipts at the sinks by (recipient id, channel): one delivery id per receipt."""
    found: dict[tuple[str, str], list[str | None]] = defaultdict(list)
    for hook in hooks:
        # Every webhook URL of the cast ends in its owner's id.
        owner = str(hook["path"]).rsplit("/", 1)[-1]
        found[(owner, "webhook")].append(hook["delivery_id"])
    for mail in mails:
        for address in mail["to"]:
            recipient = system.cast.recipient_of_email(address) or address
            found[(recipient, "email")].append(mail["delivery_id"])
    return dict(found)


def duplicates(receipts: dict[tuple[str, str], list[str | None]]) -> dict[str, int]:
    """Delivery ids received more than once (a resend after a crash), with their counts."""
    counts = Counter(d for ids in receipts.values() for d in ids)
    return {str(d): n for d, n in counts.items() if n > 1}


def _tails(instances: Iterable[ServiceProcess]) -> str:
    return "\n".join(f"--- {i.service}-{i.instance}:\n{i.tail(15)}" for i in instances)
