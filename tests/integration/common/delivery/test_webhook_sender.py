"""WebhookSender against a real local HTTP server: what it sends and how it classifies answers."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from aiohttp import web

from services.common.delivery import DELIVERY_ID_HEADER, DeliveryError, WebhookSender
from services.common.signing import SIGNATURE_HEADER, verify_signature

SECRETS = [b"current-secret", b"previous-secret"]


@dataclass
class Seen:
    path: str
    headers: dict[str, str]
    body: bytes
    connection: int  # id of the server-side transport: the same id means a kept connection


@dataclass
class Server:
    """A real aiohttp server whose answer is chosen by the request path."""

    seen: list[Seen] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    all_in: asyncio.Event = field(default_factory=asyncio.Event)
    gate: int = 0  # /gate answers once this many /gate requests are in at the same time
    port: int = 0

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        body = await request.read()
        self.seen.append(Seen(request.path, dict(request.headers), body, id(request.transport)))
        if request.path.startswith("/status/"):
            return web.Response(status=int(request.path.rsplit("/", 1)[1]))
        if request.path == "/hang":
            await self.release.wait()  # until the test ends: longer than any timeout
        if request.path == "/redirect":
            return web.Response(status=307, headers={"Location": "/redirected"})
        if request.path == "/gate":
            if sum(1 for s in self.seen if s.path == "/gate") >= self.gate:
                self.all_in.set()
            await self.all_in.wait()
        if request.path == "/with-body":
            return web.Response(status=200, text="accepted, thanks")
        return web.Response(status=204)


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    state = Server()
    runner = web.ServerRunner(web.Server(state.handle, access_log=None), shutdown_timeout=1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    state.port = runner.addresses[0][1]
    yield state
    state.release.set()
    await runner.cleanup()


@pytest.fixture
async def sender() -> AsyncIterator[WebhookSender]:
    # A generous timeout: a busy machine may stall a local answer for a while, and only
    # the timeout's own test needs a short one (`hasty_sender`).
    webhook = WebhookSender(secrets=SECRETS, timeout_s=30, max_connections=8)
    yield webhook
    await webhook.close()


@pytest.fixture
async def hasty_sender() -> AsyncIterator[WebhookSender]:
    webhook = WebhookSender(secrets=SECRETS, timeout_s=1.0, max_connections=8)
    yield webhook
    await webhook.close()


async def test_request_is_signed_json_with_the_delivery_id(
    server: Server, sender: WebhookSender
) -> None:
    payload = {"headline": "Operación cancelada", "n": 1}
    status = await sender.send(server.url("/hooks/spoc"), payload, delivery_id="d-123")

    assert status == 204
    [seen] = server.seen
    assert seen.path == "/hooks/spoc"
    assert json.loads(seen.body) == payload
    assert "Operación".encode() in seen.body  # UTF-8, not \u escapes
    assert seen.headers["Content-Type"] == "application/json"
    assert seen.headers[DELIVERY_ID_HEADER] == "d-123"
    assert seen.headers["User-Agent"] == "Aviso-Webhook/1"
    signature = seen.headers[SIGNATURE_HEADER]
    now = int(time.time())
    # One v1 per active secret: a receiver with either secret accepts it.
    for secret in SECRETS:
        verify_signature(signature, seen.body, [secret], now=now)
    assert signature.count("v1=") == 2


@pytest.mark.parametrize(
    ("status", "reason", "permanent"),
    [
        (500, "http_5xx", False),
        (503, "http_5xx", False),
        (429, "rate_limited", False),
        (408, "rate_limited", False),
        (400, "http_4xx", True),
        (404, "http_4xx", True),
    ],
)
async def test_error_answers_are_classified(
    server: Server, sender: WebhookSender, status: int, reason: str, permanent: bool
) -> None:
    with pytest.raises(DeliveryError) as caught:
        await sender.send(server.url(f"/status/{status}"), {}, delivery_id="d")
    assert caught.value.reason == reason
    assert caught.value.permanent is permanent
    assert str(server.port) not in str(caught.value)  # never the address


async def test_success_answers_return_their_status(server: Server, sender: WebhookSender) -> None:
    assert await sender.send(server.url("/status/200"), {}, delivery_id="d") == 200
    assert await sender.send(server.url("/status/202"), {}, delivery_id="d") == 202


async def test_a_receiver_slower_than_the_timeout_is_a_transient_timeout(
    server: Server, hasty_sender: WebhookSender
) -> None:
    with pytest.raises(DeliveryError) as caught:
        await hasty_sender.send(server.url("/hang"), {}, delivery_id="d")
    assert caught.value.reason == "timeout"
    assert not caught.value.permanent
    # The sender stays usable after a timed-out request.
    assert await hasty_sender.send(server.url("/ok"), {}, delivery_id="d") == 204


async def test_connection_refused_is_unreachable(sender: WebhookSender) -> None:
    with socket.socket() as probe:  # a port nobody listens on any more
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(DeliveryError) as caught:
        await sender.send(f"http://127.0.0.1:{port}/hook", {}, delivery_id="d")
    assert caught.value.reason == "unreachable"
    assert not caught.value.permanent
    assert str(port) not in str(caught.value)


@pytest.mark.parametrize("url", ["ftp://127.0.0.1/hook", "not a url", "http://"])
async def test_an_unusable_address_is_permanent(sender: WebhookSender, url: str) -> None:
    with pytest.raises(DeliveryError) as caught:
        await sender.send(url, {}, delivery_id="d")
    assert caught.value.reason == "invalid_address"
    assert caught.value.permanent


async def test_a_redirect_is_not_followed(server: Server, sender: WebhookSender) -> None:
    # Nothing reached the receiver: a failure for good, never counted as delivered.
    with pytest.raises(DeliveryError) as failed:
        await sender.send(server.url("/redirect"), {"x": 1}, delivery_id="d")
    assert failed.value.reason == "invalid_address"
    assert failed.value.permanent
    assert [s.path for s in server.seen] == ["/redirect"]  # the target never got it


async def test_connections_are_kept_alive_even_when_the_answer_has_a_body(
    server: Server, sender: WebhookSender
) -> None:
    for _ in range(10):
        await sender.send(server.url("/ok"), {}, delivery_id="d")
        await sender.send(server.url("/with-body"), {}, delivery_id="d")
    assert len({s.connection for s in server.seen}) == 1


async def test_the_pool_holds_as_many_requests_in_flight_as_configured(
    server: Server, sender: WebhookSender
) -> None:
    # /gate answers only when all 8 are in at once: with a smaller pool the eighth would
    # wait for a connection that never comes back, and the deadline fails the test.
    server.gate = 8
    results = await asyncio.wait_for(
        asyncio.gather(
            *(sender.send(server.url("/gate"), {}, delivery_id=str(i)) for i in range(8))
        ),
        timeout=20,
    )
    assert results == [204] * 8


async def test_close_is_harmless_before_the_first_send_and_twice(server: Server) -> None:
    webhook = WebhookSender(secrets=SECRETS)
    await webhook.close()  # never opened
    assert await webhook.send(server.url("/ok"), {}, delivery_id="d") == 204
    await webhook.close()
    await webhook.close()
