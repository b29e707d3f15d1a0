"""The bench's webhook sink: stamps a request when its last byte is read, verifies after.

Real sockets on 127.0.0.1 (the receiver in this process, then the sink as its own
process); no timing assertion: the order of the stamp, the answer and the verification
is recorded, and the stamp is compared with a time read before the last byte was sent.
"""

from __future__ import annotations

import asyncio
import io
import json
import smtplib
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from benchmarks.hot_path import sink
from benchmarks.hot_path.load import _SpocWatcher
from benchmarks.hot_path.sink import ProcessSink, Receiver
from services.common.signing import signature_header

SECRET = b"sink-test-secret"


def _request(body: bytes, *, secret: bytes = SECRET, path: str = "/hooks/spoc") -> bytes:
    signature = signature_header([secret], body, timestamp=int(time.time()))
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Aviso-Signature: {signature}\r\nAviso-Delivery-Id: d-1\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def _status(reader: asyncio.StreamReader) -> bytes:
    """The answer's status line (a generous deadline: a broken receiver fails, not hangs)."""

    async def read() -> bytes:
        line = await reader.readline()
        while (await reader.readline()) not in (b"\r\n", b""):
            pass  # the rest of the head; a 204 has no body
        return line

    return await asyncio.wait_for(read(), 30)


async def test_a_request_is_stamped_when_its_last_byte_is_read_and_verified_after(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    steps: list[str] = []
    real_time, real_verify = time.time, sink.verify_signature

    def stamp() -> float:
        steps.append("stamp")
        return real_time()

    def verify(*args: Any, **kwargs: Any) -> int:
        steps.append("verify")
        return real_verify(*args, **kwargs)

    monkeypatch.setattr(sink, "verify_signature", verify)
    out = io.StringIO()
    loop = asyncio.get_running_loop()
    receivers: list[Receiver] = []

    def receiver() -> Receiver:
        receivers.append(Receiver([SECRET], out, clock=stamp))
        return receivers[-1]

    server = await loop.create_server(receiver, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        request = _request(json.dumps({"notice_id": "n-1"}).encode())
        writer.write(request[:-3])  # all but the body's last bytes
        await writer.drain()
        async with asyncio.timeout(30):  # until the receiver has read the part
            while not (receivers and receivers[0]._buffer):  # noqa: ASYNC110 - nothing to await
                await asyncio.sleep(0.01)
        assert steps == []
        before_last_byte = real_time()
        writer.write(request[-3:])
        assert await _status(reader) == b"HTTP/1.1 204 No Content\r\n"
        # A second request on the same connection (keep-alive), this one badly signed.
        writer.write(_request(b'{"notice_id": "n-2"}', secret=b"not-the-secret"))
        assert await _status(reader) == b"HTTP/1.1 204 No Content\r\n"
    finally:
        writer.close()
        server.close()
        await server.wait_closed()
    assert steps == ["stamp", "verify", "stamp", "verify"]
    first, second = (json.loads(line) for line in out.getvalue().splitlines())
    assert first["signature_valid"] is True
    assert second["signature_valid"] is False
    assert first["payload"] == {"notice_id": "n-1"}
    assert first["path"] == "/hooks/spoc"
    assert datetime.fromisoformat(first["received_at"]).timestamp() >= before_last_byte


async def test_the_sink_process_records_each_delivery_and_the_bench_counts_a_bad_one(
    tmp_path: Path,
) -> None:
    with ProcessSink(tmp_path / "hooks.jsonl", secrets=[SECRET]) as receiver:
        assert receiver.pid is not None
        reader, writer = await asyncio.open_connection("127.0.0.1", receiver.port)
        try:
            for notice, secret in (("n-1", SECRET), ("n-2", b"wrong"), ("n-3", SECRET)):
                writer.write(_request(json.dumps({"notice_id": notice}).encode(), secret=secret))
                assert await _status(reader) == b"HTTP/1.1 204 No Content\r\n"
        finally:
            writer.close()
        deadline = time.monotonic() + 30
        # Another process's file: nothing to await but its lines.
        while len(receiver.received) < 3 and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        items = receiver.received
    assert [i["signature_valid"] for i in items] == [True, False, True]

    class _System:
        webhook = receiver

        def spoc_path(self) -> str:
            return "/hooks/spoc"

    watcher = _SpocWatcher(_System())  # type: ignore[arg-type]
    watcher.poll()
    assert set(watcher.arrived) == {"n-1", "n-3"}  # a bad signature is no delivery
    assert watcher.bad_signatures == 1


def _send_mail(port: int, to: str, body: str) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.sendmail("aviso@example.org", [to], f"Subject: alert\r\n\r\n{body}\r\n")


async def test_the_sink_process_takes_mail_and_records_it_unparsed(tmp_path: Path) -> None:
    mail_file = tmp_path / "mail.jsonl"
    with ProcessSink(tmp_path / "hooks.jsonl", secrets=[SECRET], mail_file=mail_file) as sinks:
        assert sinks.smtp_port is not None
        assert sinks.smtp_port != sinks.port
        await asyncio.to_thread(_send_mail, sinks.smtp_port, "spoc@example.org", "x" * 500)
        await asyncio.to_thread(_send_mail, sinks.smtp_port, "backup@example.org", "y")
    # The process has stopped: its file is whole.
    first, second = (json.loads(line) for line in mail_file.read_text("utf-8").splitlines())
    assert (first["from"], first["to"]) == ("aviso@example.org", ["spoc@example.org"])
    assert second["to"] == ["backup@example.org"]
    assert first["bytes"] > 500 > second["bytes"]
    datetime.fromisoformat(first["received_at"])


def test_without_a_mail_file_the_sink_takes_no_mail(tmp_path: Path) -> None:
    with ProcessSink(tmp_path / "hooks.jsonl") as sinks:
        assert sinks.smtp_port is None
