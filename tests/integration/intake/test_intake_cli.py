"""`aviso notice submit` and `aviso notice record` against intake served over real HTTP."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import typer
import uvicorn
from pydantic import SecretStr
from typer.testing import CliRunner, Result

from deploy.local.common import free_port
from services.intake import cli as intake_cli
from services.intake.app import create_app
from services.intake.cli import commands
from services.intake.config import IntakeSettings
from tests.integration.intake.intake_support import _issue_tokens, notice_body

pytestmark = [pytest.mark.kafka]

SECRET = "cli-signing-secret"


class Served:
    def __init__(self, url: str, tokens: dict[str, str]) -> None:
        self.url = url
        self.tokens = tokens


@pytest.fixture
async def served(
    kafka_bootstrap: str, make_settings: Callable[..., IntakeSettings]
) -> AsyncIterator[Served]:
    """Intake on a real port (SQLite: the CLI only speaks HTTP), signatures required."""
    settings = make_settings(
        IntakeSettings,
        kafka_bootstrap_servers=kafka_bootstrap,
        intake_require_signature=True,
        intake_signing_secrets=[SecretStr(SECRET)],
    )
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings), host="127.0.0.1", port=port, log_config=None, lifespan="on"
        )
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.05)
        assert not task.done(), "server did not start"
    try:
        yield Served(f"http://127.0.0.1:{port}", await _issue_tokens(settings))
    finally:
        server.should_exit = True
        await task


def _printed_notice(result: Result) -> dict[str, Any]:
    """The notice JSON the command printed (the in-process server's log lines share stdout)."""
    lines = result.stdout.splitlines()
    start, end = lines.index("{"), len(lines) - lines[::-1].index("}")
    notice: dict[str, Any] = json.loads("\n".join(lines[start:end]))
    return notice


def _cli() -> typer.Typer:
    app = typer.Typer()
    app.add_typer(commands["notice"], name="notice")
    return app


async def _run(
    args: list[str], *, input: str | None = None, env: dict[str, str] | None = None
) -> Result:
    # The command makes blocking HTTP calls: run it beside the server's event loop.
    return await asyncio.to_thread(CliRunner().invoke, _cli(), args, input=input, env=env)


async def _contact_view(served: Served, notice_id: str) -> dict[str, object]:
    async with httpx.AsyncClient(base_url=served.url) as client:
        response = await client.get(
            f"/v1/notices/{notice_id}",
            headers={"Authorization": f"Bearer {served.tokens['contact']}"},
        )
        result: dict[str, object] = response.json()
        return result


async def test_submit_a_notice_file(
    served: Served, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    file = tmp_path / "notice.json"
    file.write_text(json.dumps(notice_body(reference="FO-CLI-1")))
    env = {"AVISO_TOKEN": served.tokens["field_office"], "AVISO_SIGNING_SECRET": SECRET}
    args = ["notice", "submit", str(file), "--url", served.url]

    first = await _run(args, env=env)
    assert first.exit_code == 0, first.output
    notice = _printed_notice(first)
    assert notice["reference"] == "FO-CLI-1"
    assert "source" not in notice  # the field office gets the metadata view

    # A retry is signed anew; within the same second it would be the same signed request,
    # so the retry signs one second later by its clock rather than by waiting a second.
    signed_first = time.time()
    monkeypatch.setattr(intake_cli, "unix_time", lambda: signed_first + 1)
    again = await _run(args, env=env)
    assert again.exit_code == 0, again.output
    assert _printed_notice(again)["id"] == notice["id"]
    assert "already recorded" in again.stderr

    unsigned = await _run(args, env={"AVISO_TOKEN": served.tokens["field_office"]})
    assert unsigned.exit_code == 1
    assert "401" in unsigned.stderr

    file.write_text(json.dumps({**notice_body(), "window_end": "2020-01-01T00:00:00Z"}))
    invalid = await _run(args, env=env)
    assert invalid.exit_code == 2
    assert "window_end must be after window_start" in invalid.stderr


async def test_record_a_phone_call_interactively(served: Served) -> None:
    start = (datetime.now(UTC) + timedelta(days=1)).replace(second=0, microsecond=0)
    answers = [
        "PHONE-2026-11-25-01",  # reference
        "",  # received via: phone (default)
        "Actual",
        "worksite",
        "n",  # public-safety nexus
        "tomorrow morning",  # not a time: asked again
        start.isoformat(),
        (start - timedelta(hours=1)).isoformat(),  # before the start: asked again
        (start + timedelta(hours=3)).isoformat(),
        "Mission District",
        "",  # area code skipped
        "Federal agents plan a worksite operation.",
        "Agent on the phone",
        "not a phone",  # asked again
        "+1 415 555 0100",
        "",  # no e-mail
        "SF ERO",
        "Camila Ortega",
        "",  # end of names
        "",  # no addresses
        "",  # no vehicles
        "Loading dock, 500 Bryant",
        "",
        "Call back after noon",
        "y",  # submit
    ]
    result = await _run(
        [
            "notice",
            "record",
            "--url",
            served.url,
            "--token",
            served.tokens["field_office"],
            "--signing-secret",
            SECRET,
        ],
        input="\n".join(answers) + "\n",
    )
    assert result.exit_code == 0, result.output
    assert "use YYYY-MM-DD HH:MM" in result.output
    assert "the window must end after it starts" in result.output
    assert "String should match pattern" in result.output  # the bad phone number
    notice = _printed_notice(result)
    assert notice["received_via"] == "phone"
    assert notice["operation_type"] == "worksite"
    assert {a["code"] for a in notice["policy_annotations"]} >= {
        "no_worksite_raids",
        "no_department_assistance",
    }

    detail = await _contact_view(served, notice["id"])
    assert detail["restricted"] == {
        "names": ["Camila Ortega"],
        "addresses": [],
        "vehicles": [],
        "exact_locations": ["Loading dock, 500 Bryant"],
        "free_text": "Call back after noon",
    }
    assert detail["source"]["agent"]["phone"] == "+1 415 555 0100"  # type: ignore[index]
