"""The HTTP protocol's one send per response: head and body leave together, in order."""

from __future__ import annotations

import asyncio
from typing import Any

import uvicorn

from services.common.serve import OneWriteHttpProtocol
from tests.unit.common.http_wire import RecordingTransport, serve_on, settle

_REQUEST = b"GET /x HTTP/1.1\r\nHost: test\r\n\r\n"


def _protocol(app: Any) -> tuple[OneWriteHttpProtocol, RecordingTransport]:
    return serve_on(uvicorn.Config(app, lifespan="off", log_config=None, access_log=False))


async def test_a_response_is_one_write_of_head_and_body() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 201,
                "headers": [(b"content-type", b"application/json"), (b"content-length", b"2")],
            }
        )
        await send({"type": "http.response.body", "body": b"{}"})

    protocol, transport = _protocol(app)
    protocol.data_received(_REQUEST)
    await settle()

    assert len(transport.writes) == 1  # uvicorn alone writes the head, then the body
    assert transport.writes[0].startswith(b"HTTP/1.1 201 Created\r\n")
    assert transport.writes[0].endswith(b"\r\n\r\n{}")


async def test_a_write_nothing_follows_leaves_on_the_next_turn_in_order() -> None:
    release = asyncio.Event()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"first", "more_body": True})
        await release.wait()
        await send({"type": "http.response.body", "body": b"second", "more_body": False})

    protocol, transport = _protocol(app)
    protocol.data_received(_REQUEST)
    await settle()
    # The head and the first chunk went out together; nothing is held back while the
    # app waits.
    assert b"".join(transport.writes).endswith(b"5\r\nfirst\r\n")
    release.set()
    await settle()

    sent = b"".join(transport.writes)
    assert sent.index(b"first") < sent.index(b"second")
    assert sent.endswith(b"0\r\n\r\n")


async def test_close_sends_what_is_held_first() -> None:
    protocol, transport = _protocol(lambda *args: None)
    protocol.transport.write(b"held")
    protocol.transport.close()
    assert transport.writes == [b"held"]
    assert transport.closed


async def test_nothing_is_written_to_a_transport_already_closing() -> None:
    protocol, transport = _protocol(lambda *args: None)
    protocol.transport.write(b"held")
    transport.closed = True  # the peer went away before the next turn
    await settle()
    assert transport.writes == []


async def test_a_real_connection_gets_every_response_whole_and_in_order() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = scope["path"].encode() * 500  # larger than one segment's head
        headers = [(b"content-length", str(len(body)).encode())]
        if scope["path"] == "/last":
            headers.append((b"connection", b"close"))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=0,
        lifespan="off",
        log_config=None,
        access_log=False,
        http=OneWriteHttpProtocol,
    )
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(30):  # a server that never starts fails, not hangs
            while not server.started:  # uvicorn sets a flag: nothing to await
                assert not serving.done()
                await asyncio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for path in ("/a", "/b", "/last"):  # keep-alive, then a response that closes
            writer.write(f"GET {path} HTTP/1.1\r\nHost: test\r\n\r\n".encode())
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=30)
            assert head.startswith(b"HTTP/1.1 200 OK\r\n")
            body = await asyncio.wait_for(reader.readexactly(len(path) * 500), timeout=30)
            assert body == path.encode() * 500
        # The server closed after the last response, having sent all of it first.
        assert await asyncio.wait_for(reader.read(), timeout=30) == b""
        writer.close()
    finally:
        server.should_exit = True
        await asyncio.wait_for(serving, timeout=30)


async def test_the_rest_of_a_transport_s_surface_sends_what_is_held_first() -> None:
    class _Eof(RecordingTransport):
        def can_write_eof(self) -> bool:
            return True

        def write_eof(self) -> None:
            self.writes.append(b"<eof>")

    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError("no request is read here")

    config = uvicorn.Config(app, lifespan="off", log_config=None, access_log=False)
    protocol, inner = serve_on(config, _Eof())
    transport = protocol.transport

    transport.write(b"held")
    transport.writelines([b"a", b"b"])  # joins the held write: one send
    transport.write(b"tail")
    assert transport.can_write_eof()
    transport.write_eof()  # the held tail leaves before the end of the stream

    assert inner.writes == [b"heldab", b"tail", b"<eof>"]
