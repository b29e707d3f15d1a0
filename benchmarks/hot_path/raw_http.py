"""A minimal HTTP/1.1 keep-alive client for the intake throughput phase.

Why not httpx there: on this 2-core machine the load generator shares the cores with
the service it measures, and httpx spent about as much CPU per request (~5 ms) as intake
itself, so the phase measured the client as much as intake. This client only writes a
prepared request and reads the status line, headers and a Content-Length body: a few
tens of microseconds per request. Loopback only; no TLS, no chunked bodies (uvicorn
answers intake's JSON with a Content-Length).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass

__all__ = ["RawConnection", "RawResponse"]


@dataclass(frozen=True)
class RawResponse:
    """Status code and body of one response."""

    status_code: int
    body: bytes


class RawConnection:
    """One keep-alive connection to `host:port`, one request at a time."""

    def __init__(self, host: str, port: int) -> None:
        self._host = host
        self._port = port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        # Wall-clock time (time.time()) of the last request's write, taken just before it.
        self.written_at: float | None = None

    async def post_json(self, path: str, body: bytes, *, headers: dict[str, str]) -> RawResponse:
        """POST `body` as application/json; reconnects once if the server closed the socket."""
        if self._writer is None or self._writer.is_closing():
            await self._connect()
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {self._host}:{self._port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            + "".join(f"{name}: {value}\r\n" for name, value in headers.items())
            + "\r\n"
        ).encode("latin-1")
        assert self._reader is not None
        assert self._writer is not None
        request = head + body
        self.written_at = time.time()
        self._writer.write(request)
        return await self._response(self._reader)

    async def _connect(self) -> None:
        self._reader, self._writer = await asyncio.open_connection(self._host, self._port)

    async def _response(self, reader: asyncio.StreamReader) -> RawResponse:
        raw_head = await reader.readuntil(b"\r\n\r\n")
        lines = raw_head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        length = 0
        close = False
        for line in lines[1:]:
            name, _, value = line.partition(":")
            name = name.strip().lower()
            if name == "content-length":
                length = int(value.strip())
            elif name == "connection" and value.strip().lower() == "close":
                close = True
        body = await reader.readexactly(length) if length else b""
        if close:
            await self.close()
        return RawResponse(status, body)

    async def close(self) -> None:
        """Close the connection (a later request opens a new one)."""
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(OSError):
                await self._writer.wait_closed()
            self._writer = None
            self._reader = None
