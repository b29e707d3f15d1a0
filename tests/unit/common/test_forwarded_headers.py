"""X-Forwarded-* believed only from the proxies `trusted_proxies` names."""

from __future__ import annotations

from typing import Any

import pytest

from services.common.serve import server_config
from services.common.settings import CommonSettings
from tests.unit.common.http_wire import serve_on, settle

# From a local peer, as a proxy on the same host (or any local process) would send it.
_FORWARDED = (
    b"POST /v1/x HTTP/1.1\r\nHost: test\r\nContent-Length: 0\r\n"
    b"X-Forwarded-For: 203.0.113.7\r\nX-Forwarded-Proto: https\r\n\r\n"
)


async def _seen_by_app(settings: CommonSettings) -> tuple[Any, str]:
    """The client and scheme the app is handed for `_FORWARDED`, served as `serve` does."""
    seen: list[tuple[Any, str]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append((scope["client"], scope["scheme"]))
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    config = server_config(app, settings, port=0)  # type: ignore[arg-type]
    config.lifespan = "off"
    protocol, transport = serve_on(config)
    protocol.data_received(_FORWARDED)
    await settle()
    assert transport.writes, "the app did not answer"
    return seen[0]


@pytest.mark.parametrize("trusted", [None, "", " , "], ids=["unset", "empty", "blank"])
async def test_by_default_no_forwarded_header_is_believed(trusted: str | None) -> None:
    client, scheme = await _seen_by_app(CommonSettings(trusted_proxies=trusted))
    assert tuple(client) == ("127.0.0.1", 40000)
    assert scheme == "http"


@pytest.mark.parametrize("trusted", ["127.0.0.1", " 10.0.0.0/8 , 127.0.0.1 ", "127.0.0.0/8"])
async def test_a_named_proxy_gives_the_client_and_the_scheme(trusted: str) -> None:
    client, scheme = await _seen_by_app(CommonSettings(trusted_proxies=trusted))
    assert client[0] == "203.0.113.7"
    assert scheme == "https"


async def test_a_proxy_not_named_is_not_believed() -> None:
    client, scheme = await _seen_by_app(CommonSettings(trusted_proxies="10.0.0.5"))
    assert tuple(client) == ("127.0.0.1", 40000)
    assert scheme == "http"
