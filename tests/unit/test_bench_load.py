"""The bench's notice poster: stamped at the write, built before it, connections kept.

A real socket on 127.0.0.1 answers like intake (201 with the notice's id). No timing
assertion: the order of encoding, stamping and the server's read is recorded, and which
connection each request came on is counted.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from benchmarks.hot_path import load, raw_http
from benchmarks.hot_path.load import RatePoster

_ENCODER = json.JSONEncoder()


class _Intake:
    """Reads HTTP/1.1 POSTs and answers 201 with an id; records connections and steps."""

    def __init__(self, steps: list[str]) -> None:
        self.steps = steps
        self.connections = 0
        self.requests: list[tuple[int, dict[str, Any]]] = []

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        connection = self.connections
        try:
            while head := await reader.readuntil(b"\r\n\r\n"):
                self.steps.append("received")
                length = next(
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                notice = json.loads(await reader.readexactly(length))
                self.requests.append((connection, notice))
                # Not json.dumps: the test counts the poster's calls of it.
                body = _ENCODER.encode({"id": notice["reference"]}).encode()
                writer.write(
                    b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\n"
                    + f"Content-Length: {len(body)}\r\n\r\n".encode()
                    + body
                )
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@pytest.fixture
async def intake() -> AsyncIterator[tuple[_Intake, str]]:
    server_side = _Intake([])
    server = await asyncio.start_server(server_side.serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        yield server_side, f"http://127.0.0.1:{port}/v1/notices"


async def test_a_notice_is_stamped_after_it_is_built_and_before_intake_reads_it(
    intake: tuple[_Intake, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    server, url = intake
    real_dumps, real_time = json.dumps, raw_http.time.time

    def dumps(value: Any, **kwargs: Any) -> str:
        server.steps.append("encoded")
        return real_dumps(value, **kwargs)

    def stamp() -> float:
        server.steps.append("stamped")
        return real_time()

    monkeypatch.setattr(load.json, "dumps", dumps)
    monkeypatch.setattr(raw_http.time, "time", stamp)
    poster = RatePoster(url, {"Authorization": "Bearer t"})
    try:
        posted = await asyncio.wait_for(poster({"reference": "N-1"}), 30)
    finally:
        await poster.close()

    assert (posted.status_code, posted.body) == (201, {"id": "N-1"})
    assert server.steps == ["encoded", "stamped", "received"]
    assert posted.sent_at > 0


async def test_a_recently_used_connection_is_kept_and_an_idle_one_replaced(
    intake: tuple[_Intake, str],
) -> None:
    server, url = intake
    kept = RatePoster(url, {}, idle_s=3600)
    try:
        for n in range(3):
            await asyncio.wait_for(kept({"reference": f"K-{n}"}), 30)
    finally:
        await kept.close()
    assert [connection for connection, _notice in server.requests] == [1, 1, 1]

    # Idle past its limit (here: always), a connection is closed, never written to:
    # the server may be closing it, and a notice sent on it could be lost or sent twice.
    never_kept = RatePoster(url, {}, idle_s=-1)
    try:
        for n in range(2):
            await asyncio.wait_for(never_kept({"reference": f"R-{n}"}), 30)
    finally:
        await never_kept.close()
    assert [connection for connection, _notice in server.requests[3:]] == [2, 3]
