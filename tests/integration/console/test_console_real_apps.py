"""The console on the real intake, router and rumor_control apps (in process, on the real
Kafka and PostgreSQL): the pages read and act through the services' actual APIs with the
signed-in person's own token, issued in the auth store the services verify against."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pyotp
import pytest
from fastapi import FastAPI
from pydantic import SecretStr

from schemas.dlq import DeadLettered, b64encode
from schemas.topics import DLQ
from services.common.auth import Role
from services.console.accounts import LockoutPolicy, create_user, sign_in
from services.console.app import create_app
from services.console.config import ConsoleSettings
from services.console.deps import ConsoleDeps
from services.console.security import SESSION_COOKIE, csrf_token
from services.demo import _reports as demo_reports
from services.intake.config import IntakeSettings
from tests.integration.api_apps import router_running
from tests.integration.intake.intake_support import KEY_K1, run_intake
from tests.integration.rumor_control.rumor_harness import rumor_app_running
from tests.support import infra
from tests.support.apps import running_app
from tests.support.kafka_io import produce_raw, read_topic

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

SECRET = "real-apps-console-secret"


class _Services(httpx.AsyncBaseTransport):
    """Sends each request to the in-process app its host names."""

    def __init__(self, apps: dict[str, FastAPI]) -> None:
        self._transports = {host: httpx.ASGITransport(app=app) for host, app in apps.items()}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self._transports[request.url.host].handle_async_request(request)


@dataclass
class Console:
    app: FastAPI
    client: httpx.AsyncClient
    kafka: str

    @property
    def deps(self) -> ConsoleDeps:
        deps: ConsoleDeps = self.app.state.deps
        return deps

    async def person(self, login: str, role: Role) -> tuple[httpx.AsyncClient, str]:
        """A new account of `role`, signed in: its own client and its forms' CSRF token."""
        now = datetime.now(UTC)
        async with self.deps.auth_sessions.begin() as session:
            made = await create_user(
                session, box=self.deps.box, login=login, name=login, role=role, subject=None,
                now=now,
            )  # fmt: skip
        async with self.deps.auth_sessions.begin() as session:
            result = await sign_in(
                session, box=self.deps.box, login=login, password=made.password,
                code=pyotp.TOTP(made.totp_secret).at(now), now=now, ttl=timedelta(hours=1),
                policy=LockoutPolicy(),
            )  # fmt: skip
        assert result.session is not None
        assert result.cookie is not None
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app),
            base_url="http://console",
            cookies={SESSION_COOKIE: result.cookie},
        )
        return client, csrf_token(SECRET, result.session.session_id)


@pytest.fixture(scope="module")
async def console(
    tmp_path_factory: pytest.TempPathFactory, postgres_url: str, kafka_bootstrap: str
) -> AsyncIterator[Console]:
    tmp = tmp_path_factory.mktemp("console-real")
    kafka = kafka_bootstrap
    database = await infra.fresh_database_async(postgres_url)
    try:
        async with AsyncExitStack() as stack:
            router = await stack.enter_async_context(
                router_running(tmp / "r", database_url=database, kafka_bootstrap=kafka)
            )
            intake = await stack.enter_async_context(run_intake(_intake(tmp, database, kafka)))
            rumors = await stack.enter_async_context(
                rumor_app_running(
                    tmp / "rc", database_url=database, kafka_bootstrap=kafka_bootstrap
                )
            )
            apps = {
                "intake": intake.app,
                "router": router.client._transport.app,  # type: ignore[attr-defined]
                "rumor-control": rumors.client._transport.app,  # type: ignore[attr-defined]
            }
            settings = ConsoleSettings(
                var_dir=tmp / "console",
                database_url=database,
                console_secret=SecretStr(SECRET),
                console_cookie_secure=False,
                console_intake_url="http://intake",
                console_router_url="http://router",
                console_rumor_control_url="http://rumor-control",
            )
            app = create_app(settings, transport=_Services(apps))
            client = await stack.enter_async_context(running_app(app))
            yield Console(app, client, kafka)
    finally:
        await infra.drop_database_async(database)


def _intake(tmp: Path, database: str, kafka_bootstrap: str) -> IntakeSettings:
    return IntakeSettings(
        var_dir=tmp / "intake",
        database_url=database,
        kafka_bootstrap_servers=kafka_bootstrap,
        intake_encryption_keys=SecretStr(f"k1:{KEY_K1}"),
        intake_sweep_interval_s=3600.0,
        log_format="json",
    )


async def test_ops_replay_a_real_dead_letter_and_read_the_real_audit_check(
    console: Console,
) -> None:
    topic = f"aviso.test.console-real-{uuid.uuid4().hex[:10]}"
    letter = DeadLettered(
        dead_letter_id=uuid.uuid4(), original_topic=topic, original_partition=0,
        original_offset=1, original_key=None, original_headers=(("ce_id", "m-1"),),
        original_value=b64encode(b'{"n": 1}'), error_type="RuntimeError",
        error_message="downstream not ready", attempts=3, consumer_group="console-real",
        failed_at=datetime.now(UTC),
    )  # fmt: skip
    key = str(letter.dead_letter_id).encode()
    await produce_raw(console.kafka, DLQ, [(key, letter.model_dump_json().encode(), [])])
    ops, csrf = await console.person("ops-desk", Role.OPS)
    async with ops:
        board = await ops.get("/ops")
        listed = await ops.get("/ops/dead-letters")
        done = await ops.post(
            "/ops/dead-letters/replay", data={"id": str(letter.dead_letter_id), "csrf": csrf}
        )
        audit = await ops.get("/ops/audit")
    assert board.status_code == 200
    assert board.text.count(">ready<") == 3  # each service's /internal/ready
    assert listed.status_code == 200
    assert f'value="{letter.dead_letter_id}"' in listed.text
    assert done.status_code == 303, done.text
    assert done.headers["location"] == "/ops/dead-letters?replayed=1"
    records = await read_topic(console.kafka, topic, until=lambda rs: len(rs) >= 1)
    assert [r.value for r in records] == [b'{"n": 1}']
    assert audit.status_code == 200
    assert "Intact" in audit.text.split('id="audit-result"', 1)[1].split("</p>")[0]


async def test_an_admin_is_refused_the_ops_only_apis_by_the_services(console: Console) -> None:
    admin, _csrf = await console.person("admin-desk", Role.ADMIN)
    async with admin:
        board = await admin.get("/ops")
        letters = await admin.get("/ops/dead-letters")
        audit = await admin.get("/ops/audit")
    assert board.status_code == 200
    assert 'href="/ops/dead-letters"' not in board.text
    # Router and intake decide, with the admin's own token: 403 shown as the console's page.
    assert (letters.status_code, audit.status_code) == (403, 403)


async def test_three_reports_become_one_cluster_on_the_ledger(console: Console) -> None:
    officer, officer_csrf = await console.person("officer", Role.LIAISON)
    vetter, _ = await console.person("vetter", Role.VETTER)
    async with officer, vetter:
        for report, source in zip(
            demo_reports(datetime.now(UTC)), ("phone_line", "la_movida", "liaison"), strict=True
        ):
            filed = await officer.post(
                "/rumors",
                data={
                    "claim": report["claim"], "place": report["place"], "source": source,
                    "language": report["language"], "observed": "", "csrf": officer_csrf,
                },
            )  # fmt: skip
            assert filed.status_code == 200, filed.text
            assert 'id="filed"' in filed.text
        ledger = await vetter.get("/rumors")
    assert ledger.status_code == 200
    clusters = ledger.text.split('<section class="cluster"')[1:]
    assert len(clusters) == 1, ledger.text
    assert "1 rumor(s), 3 report(s)" in clusters[0]
    assert "1 awaiting assessment" in clusters[0]
    assert "Suggested: Not confirmed: no notice covers this place and time" in clusters[0]
