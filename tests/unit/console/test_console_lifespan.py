"""The console says when it starts and stops, as the three services do, so an operator
reading its log can tell a clean stop from a crash."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import structlog

from services.console.app import create_app
from services.console.config import ConsoleSettings
from tests.unit.console.pages_support import SECRET


async def test_the_console_logs_started_stopping_and_stopped_in_order(
    make_settings: Callable[..., Any],
) -> None:
    settings = make_settings(ConsoleSettings, console_secret=SECRET)
    app = create_app(settings, transport=httpx.MockTransport(lambda _: httpx.Response(404)))
    with structlog.testing.capture_logs() as logs:
        async with app.router.lifespan_context(app):
            assert [line["event"] for line in logs] == ["service.started"]
    lifecycle = [
        (line["event"], line["service"]) for line in logs if line["event"].startswith("service.")
    ]
    assert lifecycle == [
        ("service.started", "console"),
        ("service.stopping", "console"),
        ("service.stopped", "console"),
    ]
