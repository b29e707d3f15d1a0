"""Hostile input against the real apps (issue 12): every answer is a 4xx problem, never a 500.

The three services run in-process with their lifespans entered, on fresh PostgreSQL
databases and the real Kafka broker. Each case is one the issue found crashing or accepting
what it should not: intake's cursors and fields, the rumor ledger, router's paging and
one-click links, receipt links, and bulletin edits with the feeds built from them.
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
from tests.integration.api_apps import RouterApp, router_running
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


@pytest.fixture(scope="module")
async def router(
    tmp_path_factory: pytest.TempPathFactory, postgres_url: str, kafka_bootstrap: str
) -> AsyncIterator[RouterApp]:
    database = await infra.fresh_database_async(postgres_url)
    try:
        async with router_running(
            tmp_path_factory.mktemp("router"),
            database_url=database,
            kafka_bootstrap=kafka_bootstrap,
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


# --- paging: the same bounds in every service ----------------------------------------------


@pytest.mark.parametrize(
    "params",
    [
        {"offset": "9223372036854775808"},  # 2**63: overflowed PostgreSQL's bigint
        {"offset": "10001"},
        {"offset": "-1"},
        {"limit": "501"},
        {"limit": "0"},
        {"limit": "99999999999999999999999"},
    ],
)
async def test_paging_out_of_bounds_is_a_422_in_router_and_intake(
    router: RouterApp, intake: Intake, params: dict[str, str]
) -> None:
    _problem(await router.client.get("/v1/alerts", params=params, headers=router.auth("ops")), 422)
    _problem(await intake.client.get("/v1/notices", params=params, headers=intake.auth("ops")), 422)


async def test_paging_at_the_bounds_is_accepted(router: RouterApp, intake: Intake) -> None:
    params = {"offset": "10000", "limit": "500"}
    response = await router.client.get("/v1/alerts", params=params, headers=router.auth("ops"))
    assert response.status_code == 200, response.text
    assert response.json()["items"] == []
    response = await intake.client.get("/v1/notices", params=params, headers=intake.auth("ops"))
    assert response.status_code == 200, response.text


# --- router's one-click acknowledgement link -----------------------------------------------


def _ack_token(router: RouterApp, *, expires_at: int | None = None, **claims: Any) -> str:
    from services.common.signing import make_link_token

    values: dict[str, str | int] = {
        "a": str(uuid.uuid4()),
        "v": 1,
        "p": str(router.people.spoc),
        **claims,
    }
    secret = router.settings.link_secret.get_secret_value().encode()
    return make_link_token(secret, values, expires_at=expires_at or int(time.time()) + 600)


async def test_ack_with_too_many_form_fields_is_a_400(router: RouterApp) -> None:
    form = "&".join(f"f{i}=x" for i in range(11))
    response = await router.client.post(
        "/ack", content=form, headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    _problem(response, 400)
    many = json.dumps({f"f{i}": "x" for i in range(50)})
    response = await router.client.post(
        "/ack", content=many, headers={"Content-Type": "application/json"}
    )
    _problem(response, 400)


async def test_ack_with_deeply_nested_json_is_a_400(router: RouterApp) -> None:
    deep = "[" * 1000 + "]" * 1000
    response = await router.client.post(
        "/ack", content=deep, headers={"Content-Type": "application/json"}
    )
    _problem(response, 400)
    deep_object = '{"token": ' + '{"a": ' * 1000 + "1" + "}" * 1000 + "}"
    response = await router.client.post(
        "/ack", content=deep_object, headers={"Content-Type": "application/json"}
    )
    _problem(response, 400)


@pytest.mark.parametrize(
    "claims",
    [
        {"expires_at": 10**30},
        {"expires_at": 2**63},
        {"v": 2**63},
        {"v": 0},
        {"v": -5},
        {"v": "1"},
    ],
    ids=["exp 10**30", "exp 2**63", "v 2**63", "v 0", "v -5", "v as a string"],
)
async def test_ack_links_with_impossible_claims_are_refused(
    router: RouterApp, claims: dict[str, Any]
) -> None:
    token = _ack_token(router, **claims)
    _problem(await router.client.post("/ack", json={"token": token}), 403)
    _problem(await router.client.get("/ack", params={"token": token}), 403)


async def test_ack_answers_problem_json_unless_html_is_asked_for(router: RouterApp) -> None:
    for accept in ("*/*", "application/json", None):
        headers = {"Accept": accept} if accept else {}
        response = await router.client.get("/ack", params={"token": "x.y"}, headers=headers)
        _problem(response, 403)
    page = await router.client.get(
        "/ack", params={"token": "x.y"}, headers={"Accept": "text/html,*/*;q=0.8"}
    )
    assert page.status_code == 403
    assert page.headers["content-type"].startswith("text/html")


# --- receipt links ---------------------------------------------------------------------------


async def _published(rc: RumorApp) -> tuple[str, dict[str, Any]]:
    """A rumor reported, assessed and its bulletin approved: (bulletin id, its draft)."""
    rumor = await rc.report(**_report())
    assessed = await rc.client.post(
        f"/v1/rumors/{rumor['rumor_id']}/assess",
        json={"assessment": "False"},
        headers=rc.auth("vetter_a"),
    )
    assert assessed.status_code == 200, assessed.text
    bulletin_id: str = assessed.json()["bulletin_id"]
    return bulletin_id, await rc.bulletin(bulletin_id)


async def _approve(rc: RumorApp, bulletin_id: str) -> None:
    approved = await rc.client.post(
        f"/v1/bulletins/{bulletin_id}/approve",
        json={"sign_off": ["en", "es"]},
        headers=rc.auth("vetter_b"),
    )
    assert approved.status_code == 200, approved.text


async def _receipts(rc: RumorApp, bulletin_id: str) -> list[dict[str, Any]]:
    response = await rc.client.get(
        f"/v1/bulletins/{bulletin_id}/deliveries", headers=rc.auth("ops")
    )
    assert response.status_code == 200, response.text
    receipts: list[dict[str, Any]] = response.json()["receipts"]
    return receipts


async def test_receipts_only_for_a_version_sent_to_that_recipient(rc: RumorApp) -> None:
    from services.common.signing import make_link_token

    bulletin_id, _ = await _published(rc)
    await _approve(rc, bulletin_id)
    (hook,) = [
        h for h in await rc.webhooks_for(bulletin_id, 2) if h["path"] == "/liaisons/casa-hispana"
    ]
    genuine = hook["payload"]["receipt_url"].removeprefix("http://testserver")
    secret = rc.settings.link_secret.get_secret_value().encode()

    def link(version: int, recipient: str) -> str:
        claims: dict[str, str | int] = {
            "k": "receipt", "b": bulletin_id, "v": version, "r": recipient,
        }  # fmt: skip
        token = make_link_token(secret, claims, expires_at=int(time.time()) + 600)
        return f"/v1/receipts?token={token}"

    for version, recipient in [
        (-5, rc.spanish_liaison),
        (999, rc.spanish_liaison),
        (2**63, rc.spanish_liaison),
        (2, rc.spanish_liaison),  # never published
        (1, str(uuid.uuid4())),  # nobody the department knows
    ]:
        _problem(await rc.client.get(link(version, recipient)), 403)
    assert await _receipts(rc, bulletin_id) == []

    opened = await rc.client.get(genuine)
    assert opened.status_code == 200, opened.text
    assert [(r["version"], r["recipient_id"]) for r in await _receipts(rc, bulletin_id)] == [
        (1, rc.spanish_liaison)
    ]


# --- bulletin edits and the feeds built from them ---------------------------------------------

# One example of every class of code point that could break a feed or a reader, as
# (class, text, what happens): refused with a 422, or kept (and the feeds still parse).
REFUSED_IN_ANY_SECTION = [
    ("NUL", "\x00"),
    ("C0 control", "\x01"),
    ("backspace", "\x08"),
    ("vertical tab", "\x0b"),
    ("form feed", "\x0c"),
    ("ESC", "\x1b"),
    ("unit separator", "\x1f"),
    ("DEL", "\x7f"),
    ("C1 control", "\x85"),
    ("C1 control 9F", "\x9f"),
    ("lone surrogate", "\ud800"),
    ("U+FFFE", "\ufffe"),
    ("U+FFFF", "\uffff"),
    ("noncharacter FDD0", "\ufdd0"),
    ("plane-1 noncharacter", "\U0001fffe"),
]
REFUSED_IN_THE_HEADLINE = [
    ("line feed", "\n"),
    ("carriage return", "\r"),
    ("line separator", "\u2028"),
    ("paragraph separator", "\u2029"),
    ("tab", "\t"),
]
KEPT = [
    ("XML markup", "<b>&amp; \"quoted\" 'single' ]]> &nbsp;</b>"),
    ("decomposed accent (NFC)", "Cafe\u0301"),
    ("astral emoji", "\U0001f4e2"),
    ("CJK", "\u901a\u77e5"),
    ("private use", "\ue000"),
    ("right-to-left text", "\u05e9\u05dc\u05d5\u05dd"),
    ("zero-width joiner", "a\u200db"),
    ("byte order mark", "\ufeff"),
    ("non-breaking space", "a\u00a0b"),
]


def _edit_body(section: str, text: str) -> bytes:
    # ensure_ascii: a lone surrogate travels as the JSON escape \\ud800, as a client would send it
    return json.dumps({section: text}, ensure_ascii=True).encode()


async def _edit(rc: RumorApp, bulletin_id: str, section: str, text: str) -> httpx.Response:
    return await rc.client.put(
        f"/v1/bulletins/{bulletin_id}/texts/en",
        content=_edit_body(section, text),
        headers={**rc.auth("vetter_a"), "Content-Type": "application/json"},
    )


@pytest.fixture(scope="module")
async def draft_id(rc: RumorApp) -> str:
    bulletin_id, _ = await _published(rc)
    return bulletin_id


@pytest.mark.parametrize(
    ("section", "text"),
    [("body", text) for _, text in REFUSED_IN_ANY_SECTION]
    + [("headline", text) for _, text in REFUSED_IN_ANY_SECTION + REFUSED_IN_THE_HEADLINE],
    ids=[f"body: {name}" for name, _ in REFUSED_IN_ANY_SECTION]
    + [f"headline: {name}" for name, _ in REFUSED_IN_ANY_SECTION + REFUSED_IN_THE_HEADLINE],
)
async def test_a_bulletin_edit_refuses_characters_no_reader_should_get(
    rc: RumorApp, draft_id: str, section: str, text: str
) -> None:
    before = (await rc.bulletin(draft_id))["texts"]["en"][section]
    response = await _edit(rc, draft_id, section, f"Aviso {text} comunitario")
    problem = _problem(response, 422)
    assert text not in response.text
    assert problem.get("reason_code") in ("invalid_text", None)
    assert (await rc.bulletin(draft_id))["texts"]["en"][section] == before


async def test_every_kept_code_point_class_reaches_well_formed_feeds(rc: RumorApp) -> None:
    import unicodedata
    import xml.etree.ElementTree as ET

    bulletin_id, draft = await _published(rc)
    original = draft["texts"]["en"]  # kept, so every guardrail on the sections still passes
    kept = " ".join(text for _, text in KEPT)
    # Line breaks of every kind are kept in prose, as LF.
    added = f"Second line\u2028third\u2029fourth\tend. {kept}"
    response = await _edit(rc, bulletin_id, "body", f"{original['body']}\r\n{added}")
    assert response.status_code == 200, response.text
    response = await _edit(rc, bulletin_id, "headline", f"{original['headline']} {kept}")
    assert response.status_code == 200, response.text
    stored = (await rc.bulletin(bulletin_id))["texts"]["en"]
    expected_body = unicodedata.normalize(
        "NFC", f"{original['body']}\nSecond line\nthird\nfourth\tend. {kept}"
    )
    assert stored["body"] == expected_body
    await _approve(rc, bulletin_id)

    atom = await rc.client.get("/feeds/bulletins.atom")
    cap = await rc.client.get("/feeds/cap.xml")
    single = await rc.client.get(f"/feeds/cap/{bulletin_id}/1.xml")
    for response in (atom, cap, single):
        assert response.status_code == 200, response.text
        root = ET.fromstring(response.content)  # raises on ill-formed XML
        text = "".join(root.itertext())
        assert expected_body in text
        assert "Caf\u00e9" in text
