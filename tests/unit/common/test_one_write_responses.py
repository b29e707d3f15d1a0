"""A response's head and body leave in one write (services/common/serve.py).

uvicorn writes the head and the body apart; `OneWriteTransport` holds a write until the
next one or the loop's next turn. The fake transport below records each write the
socket would get; the last test serves real requests over a socket through uvicorn.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import uvicorn
from fastapi import FastAPI
from fastapi.responses import Response

from services.common import serve as serve_module
from services.common.serve import OneWriteHttpProtocol, OneWriteTransport


class _Transport:
    """What a socket transport is asked to do, in order."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, bytes]] = []
        self.closing = False

    def write(self, data: bytes) -> None:
        self.calls.append(("write", bytes(data)))

    def close(self) -> None:
        self.calls.append(("close", b""))
        self.closing = True

    def abort(self) -> None:
        self.calls.append(("abort", b""))
        self.closing = True

    def write_eof(self) -> None:
        self.calls.append(("eof", b""))

    def is_closing(self) -> bool:
        return self.closing

    def get_write_buffer_size(self) -> int:
        return 0

    def get_extra_info(self, name: str) -> str:
        return f"info:{name}"


def _wrapped() -> tuple[OneWriteTransport, _Transport]:
    transport = _Transport()
    return OneWriteTransport(transport, asyncio.get_running_loop()), transport  # type: ignore[arg-type]


async def test_a_head_and_its_body_go_out_as_one_write() -> None:
    wrapper, transport = _wrapped()
    wrapper.write(b"HTTP/1.1 201 Created\r\n\r\n")
    assert transport.calls == []
    assert wrapper.get_write_buffer_size() == len(b"HTTP/1.1 201 Created\r\n\r\n")
    wrapper.write(memoryview(b'{"id":"n-1"}'))
    assert transport.calls == [("write", b'HTTP/1.1 201 Created\r\n\r\n{"id":"n-1"}')]
    await asyncio.sleep(0)  # the cancelled flush sends nothing again
    assert len(transport.calls) == 1


async def test_a_lone_write_goes_out_on_the_loops_next_turn_and_order_holds() -> None:
    wrapper, transport = _wrapped()
    wrapper.write(b"HTTP/1.1 204 No Content\r\n\r\n")
    await asyncio.sleep(0)
    assert transport.calls == [("write", b"HTTP/1.1 204 No Content\r\n\r\n")]
    # A streamed body: each chunk is held in turn, never overtaken.
    wrapper.write(b"a")
    wrapper.write(b"b")
    wrapper.write(b"c")
    await asyncio.sleep(0)
    assert [data for _, data in transport.calls] == [
        b"HTTP/1.1 204 No Content\r\n\r\n",
        b"ab",
        b"c",
    ]


async def test_close_and_end_of_stream_send_what_is_held_first_abort_drops_it() -> None:
    wrapper, transport = _wrapped()
    wrapper.write(b"head")
    wrapper.write_eof()
    wrapper.write(b"last")
    wrapper.close()
    assert transport.calls == [("write", b"head"), ("eof", b""), ("write", b"last"), ("close", b"")]
    await asyncio.sleep(0)
    assert len(transport.calls) == 4

    wrapper, transport = _wrapped()
    wrapper.write(b"never")
    wrapper.abort()
    await asyncio.sleep(0)
    assert transport.calls == [("abort", b"")]
    assert wrapper.get_extra_info("peername") == "info:peername"


async def test_uvicorn_answers_each_request_with_one_write(monkeypatch: Any) -> None:
    writes: list[bytes] = []

    class _SocketWrites:
        """The real transport, with every write it is given recorded."""

        def __init__(self, transport: asyncio.Transport) -> None:
            self._transport = transport

        def write(self, data: Any) -> None:
            writes.append(bytes(data))
            self._transport.write(data)

        def __getattr__(self, name: str) -> Any:
            return getattr(self._transport, name)

    class _Counting(OneWriteTransport):
        def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
            super().__init__(_SocketWrites(transport), loop)  # type: ignore[arg-type]

    monkeypatch.setattr(serve_module, "OneWriteTransport", _Counting)
    app = FastAPI()

    @app.post("/things", status_code=201)
    async def create() -> dict[str, str]:
        return {"id": "t-1"}

    @app.delete("/things")
    async def delete() -> Response:
        return Response(status_code=204)

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()  # a connection waits in the backlog until uvicorn accepts it
    port = listener.getsockname()[1]
    config = uvicorn.Config(app, http=OneWriteHttpProtocol, lifespan="off", log_config=None)
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve(sockets=[listener]))
    try:
        async with asyncio.timeout(30):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            answers = []
            for method in ("POST", "POST", "DELETE"):
                writer.write(
                    f"{method} /things HTTP/1.1\r\nhost: t\r\ncontent-length: 0\r\n\r\n".encode()
                )
                head = await reader.readuntil(b"\r\n\r\n")
                _, found, rest = head.lower().partition(b"content-length: ")
                length = int(rest.split(b"\r\n")[0]) if found else 0
                answers.append(head + await reader.readexactly(length))
            writer.close()
    finally:
        server.should_exit = True
        await serving
    assert answers[0].startswith(b"HTTP/1.1 201")
    assert answers[0].endswith(b'{"id":"t-1"}')
    assert answers[2].startswith(b"HTTP/1.1 204")
    # Two 201s and a 204 on one kept-alive connection: one write each.
    assert writes == answers
