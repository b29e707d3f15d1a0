"""The HTTP protocol served over an in-memory connection: the serving tests' wire.

A test builds uvicorn's config as it needs it, and `serve_on` connects the service's
protocol to a transport that keeps each write (each would be one send) and says the
peer is 127.0.0.1, as a proxy on the same host, or any local process, would be.
"""

from __future__ import annotations

import asyncio
from typing import Any

import uvicorn
from uvicorn.server import ServerState

from services.common.serve import OneWriteHttpProtocol

__all__ = ["RecordingTransport", "serve_on", "settle"]


class RecordingTransport(asyncio.Transport):
    """A socket's transport from a local peer that records each write."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: Any) -> None:
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 40000), "sockname": ("127.0.0.1", 8000)}.get(
            name, default
        )

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


def serve_on(
    config: uvicorn.Config, transport: RecordingTransport | None = None
) -> tuple[OneWriteHttpProtocol, RecordingTransport]:
    """The service's protocol for `config` (loaded here), connected to `transport`."""
    config.load()
    protocol = OneWriteHttpProtocol(config, ServerState(), app_state={})
    connected = transport if transport is not None else RecordingTransport()
    protocol.connection_made(connected)
    return protocol, connected


async def settle() -> None:
    """Let the loop run the turns a request's handling takes."""
    for _ in range(20):
        await asyncio.sleep(0)
