"""A small HTTP/1.1 webhook receiver on asyncio that a test controls.

Real sockets and real HTTP (keep-alive, Content-Length bodies), but its answers are
scripted: `answer(path, delivery_id, nth)` returns the status (and may sleep first), so a
test can fail for a while, hang, or recover. Every request is recorded when it arrives,
including ones the sender gave up waiting for.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

__all__ = ["Answer", "Receiver", "Request"]

Answer = Callable[[str, str, int], Awaitable[int]]


async def _ok(path: str, delivery_id: str, nth: int) -> int:
    return 204


@dataclass
class Request:
    path: str
    delivery_id: str
    status: int | None = None  # None while unanswered (or never answered)


@dataclass
class Receiver:
    answer: Answer = _ok
    requests: list[Request] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._server: asyncio.Server | None = None
        self._changed = asyncio.Event()
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> Receiver:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, backlog=1024)
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for writer in list(self._writers):
                writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), timeout=5)

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def delivered(self) -> list[Request]:
        """Requests answered with a 2xx status."""
        return [r for r in self.requests if r.status is not None and 200 <= r.status < 300]

    async def wait_until(self, predicate: Callable[[Receiver], bool], timeout: float = 60) -> None:
        async def loop() -> None:
            while not predicate(self):
                self._changed.clear()
                await self._changed.wait()

        await asyncio.wait_for(loop(), timeout)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                path = lines[0].split(" ")[1]
                headers = {
                    k.strip().lower(): v.strip()
                    for k, _, v in (line.partition(":") for line in lines[1:] if line)
                }
                await reader.readexactly(int(headers.get("content-length", "0")))
                request = Request(path, headers.get("aviso-delivery-id", ""))
                self.requests.append(request)
                nth = sum(1 for r in self.requests if r.path == path)
                self._changed.set()
                status = await self.answer(path, request.delivery_id, nth)
                writer.write(f"HTTP/1.1 {status} X\r\nContent-Length: 0\r\n\r\n".encode())
                await writer.drain()
                request.status = status
                self._changed.set()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()
