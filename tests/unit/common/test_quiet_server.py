"""The HTTP server's own timer: how often an idle service wakes to look for a stop."""

from __future__ import annotations

import asyncio
import signal

import pytest
import uvicorn
from uvicorn.server import ServerState

from services.common import serve as serve_module
from services.common.serve import QuietServer


async def _app(scope: object, receive: object, send: object) -> None:
    return None


def _server() -> QuietServer:
    config = uvicorn.Config(_app, lifespan="off", log_config=None)
    config.load()
    server = QuietServer(config)
    server.server_state = ServerState()
    return server


async def test_the_server_ticks_once_a_second_and_refreshes_the_date_each_tick() -> None:
    server = _server()
    waits: list[float] = []
    dates: list[object] = []

    async def record_wait(timeout: float) -> None:
        waits.append(timeout)
        dates.append(server.server_state.default_headers)
        server.server_state.default_headers = []  # on_tick must put the Date back
        if len(waits) == 3:
            server.should_exit = True

    server._wait_for_stop = record_wait  # type: ignore[method-assign]
    await asyncio.wait_for(server.main_loop(), timeout=30)

    # uvicorn's own loop waits 0.1 s between ticks: ten wake-ups a second when idle.
    assert waits == [1.0, 1.0, 1.0]
    assert all(any(name == b"date" for name, _ in headers) for headers in dates)  # type: ignore[attr-defined]


async def test_a_stop_signal_wakes_the_server_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    # A tick of an hour: only the signal can end the loop within the deadline.
    monkeypatch.setattr(serve_module, "_TICK_S", 3600.0)
    server = _server()
    running = asyncio.create_task(server.main_loop())
    await asyncio.sleep(0)  # the loop runs up to its first wait
    assert server._stop_loop is not None

    server.handle_exit(signal.SIGTERM, None)

    await asyncio.wait_for(running, timeout=30)
    assert server.should_exit
