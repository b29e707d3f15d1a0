"""`aviso rumor` and `aviso bulletin`: HTTP calls with the token, readable output."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from services.rumor_control import cli
from services.rumor_control.cli import bulletin_app, rumor_app, side_by_side

BULLETIN = {
    "bulletin_id": "b1", "kind": "standby", "version": 1, "msg_type": "Alert", "state": "drafted",
    "version_state": "drafted", "drill": False,
    "texts": {
        "en": {"headline": "Facts", "body": "We do not ask.", "sms": "Call.", "radio": "Hello."},
        "es": {"headline": "Datos", "body": "No preguntamos.", "sms": "Llame.", "radio": "Hola."},
    },
    "guardrails": [
        {"code": "parity.time", "language": None, "section": "body", "detail": "en 15:15, es 16:15"}
    ],
    "signoffs": [
        {"language": "en", "by": "x", "name": "Vetter Beto", "at": "2026-03-03T21:15:00+00:00"}
    ],
}  # fmt: skip


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []

    def fake(method: str, url: str, **kwargs: Any) -> httpx.Response:
        seen.append({"method": method, "url": url, **kwargs})
        request = httpx.Request(method, url)
        if url.endswith("/approve"):
            problem = {"title": "Conflict", "detail": "each language needs a sign-off: es",
                       "reason_code": "vetting.signoff_missing"}  # fmt: skip
            return httpx.Response(409, json=problem, request=request)
        if url.endswith("/v1/rumors"):
            body = {"report_id": "r1", "rumor_id": "u1", "new_rumor": False, "report_count": 2,
                    "area": "Riverside"}  # fmt: skip
            return httpx.Response(201, json=body, request=request)
        return httpx.Response(200, json=BULLETIN, request=request)

    monkeypatch.setattr(cli.httpx, "request", fake)
    return seen


def test_show_prints_both_languages_side_by_side_with_guardrails(
    calls: list[dict[str, Any]],
) -> None:
    result = CliRunner().invoke(
        bulletin_app, ["show", "b1", "--token", "avs_t"], env={"COLUMNS": "100"}
    )
    assert result.exit_code == 0, result.output
    assert any(
        "We do not ask." in line and "No preguntamos." in line
        for line in result.output.splitlines()
    )
    assert "BLOCKED parity.time" in result.output
    assert "en: signed off by Vetter Beto" in result.output
    assert "es: not signed off" in result.output
    assert calls[0]["headers"] == {"Authorization": "Bearer avs_t"}


def test_approve_shows_the_reason_code_and_fails(calls: list[dict[str, Any]]) -> None:
    result = CliRunner().invoke(
        bulletin_app, ["approve", "b1", "--sign-off", "en"], env={"AVISO_TOKEN": "avs_env"}
    )
    assert result.exit_code == 1
    assert "vetting.signoff_missing" in result.output
    assert calls[0]["json"] == {"sign_off": ["en"]}
    assert calls[0]["headers"] == {"Authorization": "Bearer avs_env"}


def test_report_posts_the_rumor(calls: list[dict[str, Any]]) -> None:
    result = CliRunner().invoke(
        rumor_app,
        [
            "report",
            "--claim",
            "la migra",
            "--place",
            "La Ribera",
            "--token",
            "t",
            "--url",
            "http://h:1",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "joined an existing rumor u1" in result.output
    assert calls[0]["url"] == "http://h:1/v1/rumors"
    assert calls[0]["json"]["channel"] == "phone_line"


def test_side_by_side_keeps_columns() -> None:
    lines = side_by_side("one two three", "uno dos tres cuatro", 8)
    assert lines[0].startswith("one two  | uno dos")
