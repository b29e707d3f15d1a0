"""Tests through a real Kannel whose callbacks reach an in-process app (ASGI, no socket).

Kannel fetches its callback URLs (delivery reports, replies) over HTTP; a `Relay` is the
network in between: a small HTTP server that records each request target as Kannel made
it, and `forwarding` passes each one on to the app's client, once, as smsbox does.
"""

from __future__ import annotations

import asyncio
import http.server
import threading
import time
from collections.abc import AsyncIterator, Callable, Collection, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from deploy.local import kannel

__all__ = ["Relay", "forwarding", "serve_relay", "texts_to"]


@dataclass
class Relay:
    """Raw request targets Kannel sent, in order."""

    url: str
    targets: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def since(self, start: int) -> list[str]:
        with self.lock:
            return self.targets[start:]


@contextmanager
def serve_relay() -> Iterator[Relay]:
    """A relay on a free loopback port, for as long as the block lasts."""
    relay = Relay("")

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            with relay.lock:
                relay.targets.append(self.path)
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass  # the reply URLs hold phone numbers: keep them out of the test output

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    relay.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield relay
    finally:
        server.shutdown()
        server.server_close()


@asynccontextmanager
async def forwarding(
    relay: Relay,
    client: httpx.AsyncClient,
    *,
    paths: Collection[str],
    rewrite: Callable[[str], str] | None = None,
) -> AsyncIterator[list[tuple[str, int]]]:
    """Forward every callback on `paths` Kannel makes from now on; yields (path, status)."""
    answered: list[tuple[str, int]] = []
    start = len(relay.since(0))
    stop = asyncio.Event()

    async def pump() -> None:
        nonlocal start
        while not stop.is_set():
            for target in relay.since(start):
                start += 1
                if urlsplit(target).path not in paths:
                    continue
                target = rewrite(target) if rewrite else target
                status = (await client.get(target)).status_code
                answered.append((urlsplit(target).path, status))
            await asyncio.sleep(0.05)

    task = asyncio.create_task(pump())
    try:
        yield answered
    finally:
        stop.set()
        await task


async def texts_to(
    data_dir: Path, number: str, count: int, within: float = 30.0
) -> list[kannel.FakeSms]:
    """The segments the fake SMSC received for `number`, once there are `count`."""
    deadline = time.monotonic() + within
    found: list[kannel.FakeSms] = []
    while time.monotonic() < deadline:
        found = [s for s in kannel.received(data_dir=data_dir) if s.receiver == number]
        if len(found) >= count:
            return found
        await asyncio.sleep(0.05)
    raise AssertionError(f"{count} SMS segment(s) expected at the fake SMSC, got {len(found)}")
