"""Hostile input against the real apps (issue 12): every answer is a 4xx problem, never a 500.

Intake and rumor_control run in-process with their lifespans entered, on a fresh PostgreSQL
database and the real Kafka broker. Each case is one the issue found crashing or accepting
what it should not (in intake and rumor_control's rumor ledger); router's links and offsets
and bulletin edits are covered where those are reworked.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from prometheus_client import generate_latest
from pydantic import SecretStr

from services.common.signing import request_signature_header
from services.intake.config import IntakeSettings
from tests.integration.intake.intake_support import KEY_K1, Intake, notice_body, run_intake
from tests.integration.rumor_control.rumor_harness import RumorApp, rumor_app_running
from tests.support import infra

SECRET = b"hostile-test-signing-secret"


@pytest.fixture(scope="module")
async def intake(
    tmp_path_factory: pytest.TempPathFactory, postgres_url: str, kafka_bootstrap: str
) -> AsyncIterator[Intake]:
    database = await infra.fresh_database_async(postgres_url)
    settings = IntakeSettings(
        var_dir=tmp_path_factory.mktemp("intake") / "var",
        database_url=database,
        kafka_bootstrap_servers=kafka_bootstrap,
        intake_encryption_keys=SecretStr(f"k1:{KEY_K1}"),
        intake_signing_secrets=[SecretStr(SECRET.decode())],
        intake_sweep_interval_s=3600.0,
        log_format="json",
    )
    try:
        async with run_intake(settings) as running:
            yield running
    finally:
        await infra.drop_database_async(database)


@pytest.fixture(scope="module")
async def rc(
    tmp_path_factory: pytest.TempPathFactory, postgres_url: str, kafka_bootstrap: str
) -> AsyncIterator[RumorApp]:
    database = await infra.fresh_database_async(postgres_url)
    try:
        async with rumor_app_running(
            tmp_path_factory.mktemp("rumor"), database_url=database, kafka_bootstrap=kafka_bootstrap
        ) as running:
            yield running
    finally:
        await infra.drop_database_async(database)


def _problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem: dict[str, Any] = response.json()
    return problem


# --- intake ---------------------------------------------------------------------------

HOSTILE_CURSORS = [
    "WyI5OTk5LTEyLTMxVDIzOjU5OjU5LTE0OjAwIiwgIngiXQ",  # ["9999-12-31T23:59:59-14:00", "x"]
    "WyIwMDAxLTAxLTAxVDAwOjAwOjAwKzE0OjAwIiwgIngiXQ",  # ["0001-01-01T00:00:00+14:00", "x"]
    "eyJhIjogMSwgImIiOiAyfQ",  # {"a": 1, "b": 2}
    "WzEsIDJd",  # [1, 2]
    "W1tbW1tbW1tbW1tbW1tbW1tbW1tbW1tbXV1dXV1dXV1dXV1dXV1dXV1dXV1dXV1dXV0",  # deep lists
    "%%%",
]


@pytest.mark.parametrize("cursor", HOSTILE_CURSORS)
async def test_intake_a_hostile_cursor_is_a_400(intake: Intake, cursor: str) -> None:
    response = await intake.client.get(
        "/v1/notices", params={"cursor": cursor}, headers=intake.auth("ops")
    )
    _problem(response, 400)


HOSTILE_NOTICE_FIELDS: list[tuple[str, dict[str, Any]]] = [
    ("line separator in a single-line field", {"area": "Mission\u2028District"}),
    ("paragraph separator in a single-line field", {"area": "Mission\u2029District"}),
    ("NUL in the summary", {"summary": "Agents\x00 in the area"}),
    ("ESC in the summary", {"summary": "Agents \x1b[31m in the area"}),
    ("U+FFFE in the summary", {"summary": "Agents \ufffe in the area"}),
    ("C1 control in the area", {"area": "Mission\x85District"}),
    ("window at year 9999 west of UTC", {"window_start": "9999-12-31T23:59:59-14:00"}),
    ("window at year 1 east of UTC", {"window_start": "0001-01-01T00:30:00+14:00"}),
    ("window as a number", {"window_start": 0}),
    ("window without a zone", {"window_start": "2030-01-01T10:00:00"}),
    ("nexus as a number", {"public_safety_nexus": 1}),
]


@pytest.mark.parametrize(
    "overrides",
    [case for _, case in HOSTILE_NOTICE_FIELDS],
    ids=[n for n, _ in HOSTILE_NOTICE_FIELDS],
)
async def test_intake_refuses_hostile_fields_with_a_422(
    intake: Intake, overrides: dict[str, Any]
) -> None:
    problem = _problem(await intake.submit(notice_body(**overrides)), 422)
    field = next(iter(overrides))
    assert any(field in error["loc"] for error in problem["errors"]), problem


async def test_intake_a_control_character_in_a_restricted_field_is_refused(intake: Intake) -> None:
    body = notice_body()
    body["source"]["agent"]["email"] = "d.whitlock\x07@ice.dhs.gov"
    _problem(await intake.submit(body), 422)
    body = notice_body()
    body["restricted"]["names"] = ["Esteban\u2028Quiroga"]
    _problem(await intake.submit(body), 422)


async def test_intake_a_restricted_term_in_the_summary_is_refused_without_echo(
    intake: Intake,
) -> None:
    response = await intake.submit(notice_body(summary="Agents will arrest esteban QUIROGA."))
    problem = _problem(response, 422)
    assert "quiroga" not in response.text.lower()
    assert problem["errors"][0]["loc"] == ["body", "summary"]


async def test_intake_a_captured_signature_is_no_good_on_another_endpoint(intake: Intake) -> None:
    created = await intake.created()
    body = json.dumps({"reason": "operation_cancelled"}).encode()
    signature = request_signature_header(
        [SECRET], method="POST", target="/v1/notices", body=body, timestamp=int(time.time())
    )
    response = await intake.client.post(
        f"/v1/notices/{created['id']}/cancel",
        content=body,
        headers={
            **intake.auth("field_office"),
            "Content-Type": "application/json",
            "Aviso-Signature": signature,
        },
    )
    assert _problem(response, 401)["reason"] == "mismatch"


async def test_intake_redirects_ignore_the_host_header(intake: Intake) -> None:
    response = await intake.client.get(
        "/v1/notices/", headers={**intake.auth("ops"), "Host": "evil.example"}
    )
    assert response.status_code == 307
    assert response.headers["location"] == "/v1/notices"


async def test_intake_metrics_never_carry_a_raw_path(intake: Intake) -> None:
    probe = uuid.uuid4().hex
    for _ in range(3):
        await intake.client.get(f"/v1/notices/{uuid.uuid4()}", headers=intake.auth("ops"))
        await intake.client.get(f"/{probe}/{uuid.uuid4()}")
    exposition = generate_latest().decode()
    assert probe not in exposition
    assert 'route="/v1/notices/{notice_id}"' in exposition


# --- rumor_control --------------------------------------------------------------------


def _report(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "claim": "People say agents are at the market.",
        "place": f"Hostile Market {uuid.uuid4().hex[:6]}",
        "channel": "phone_line",
    }
    body.update(overrides)
    return body


HOSTILE_REPORTS: list[tuple[str, dict[str, Any]]] = [
    ("observed far future", {"observed_at": "9999-12-31T23:00:00Z"}),
    ("observed far past", {"observed_at": "0001-01-01T00:30:00Z"}),
    ("observed as a number", {"observed_at": 0}),
    ("drill as a number", {"drill": 0}),
    ("drill as a string", {"drill": "yes"}),
    ("NUL in the claim", {"claim": "agents\x00 at the market"}),
    ("ESC in the claim", {"claim": "agents \x1b at the market"}),
    ("U+FFFE in the claim", {"claim": "agents \ufffe at the market"}),
    ("line separator in the place", {"place": "Market\u2028Street"}),
    ("vertical tab in the organisation", {"organisation": "Centro\x0bHispano"}),
]


@pytest.mark.parametrize(
    "overrides", [case for _, case in HOSTILE_REPORTS], ids=[n for n, _ in HOSTILE_REPORTS]
)
async def test_rumor_report_refuses_hostile_fields_with_a_422(
    rc: RumorApp, overrides: dict[str, Any]
) -> None:
    response = await rc.client.post(
        "/v1/rumors", json=_report(**overrides), headers=rc.auth("liaison")
    )
    problem = _problem(response, 422)
    field = next(iter(overrides))
    assert any(field in error["loc"] for error in problem["errors"]), problem


@pytest.mark.parametrize(
    "overrides",
    [
        {"as_of": 0},
        {"as_of": "9999-12-31T23:59:59-14:00"},
        {"expires_at": "9999-12-31T23:59:59Z"},
        {"expires_at": "0001-01-01T00:00:00Z"},
    ],
)
async def test_rumor_assessment_refuses_extreme_or_numeric_times(
    rc: RumorApp, overrides: dict[str, Any]
) -> None:
    rumor = await rc.report(**_report())
    body = {"assessment": "False", **overrides}
    response = await rc.client.post(
        f"/v1/rumors/{rumor['rumor_id']}/assess", json=body, headers=rc.auth("vetter_a")
    )
    _problem(response, 422)


async def test_rumor_an_unknown_timeline_is_a_404(rc: RumorApp) -> None:
    response = await rc.client.get(
        f"/v1/rumors/{uuid.uuid4()}/timeline", headers=rc.auth("vetter_a")
    )
    _problem(response, 404)
    rumor = await rc.report(**_report())
    response = await rc.client.get(
        f"/v1/rumors/{rumor['rumor_id']}/timeline", headers=rc.auth("vetter_a")
    )
    assert response.status_code == 200
    assert response.json()


async def test_rumor_a_report_in_bounds_is_normalised_and_accepted(rc: RumorApp) -> None:
    observed = (datetime.now(UTC) - timedelta(hours=1)).replace(microsecond=0)
    body = _report(claim="Dicen que hay agentes\r\nen el mercado", observed_at=observed.isoformat())
    response = await rc.client.post("/v1/rumors", json=body, headers=rc.auth("liaison"))
    assert response.status_code == 201, response.text
