"""The bench's webhook and mail receivers, in a process of its own: when a delivery ARRIVED.

A SPOC's receiver is another machine. The deploy.local sink the tests use is a thread of
the process that runs it; in the bench that process is the load generator, so a webhook's
stamp waited for the load generator's GIL and for aiohttp to read, parse and verify the
request (earlier rounds' `accepted -> webhook` leg held ~2.5 ms of that wait).

This one is lean: an asyncio protocol on uvloop that reads each request whole, stamps
`received_at` (wall clock, this machine) the moment its last byte is read, answers 204,
and only then verifies the signature and records the delivery as a JSON line (a bad
signature is recorded as such; the bench counts it as a failure). Its CPU is the
receiver's, not the system's: the bench reports it apart.

The SPOC's mail server is another machine too. The same process takes router's e-mails
over SMTP (aiosmtpd on the same loop) and records each one's arrival, sender,
recipients and size in a second file, without parsing it: deploy.local's SMTP sink on a
thread of the bench parsed every message with the `email` package, a third of the
bench's own CPU at 200/s, on the load generator's GIL.

    python -m benchmarks.hot_path.sink --out FILE [--mail-out FILE]
    (secrets: AVISO_WEBHOOK_SECRETS, JSON; prints the webhook port, then the SMTP port)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import IO, Any, cast

import uvloop
from aiosmtpd.smtp import SMTP, Envelope, Session

from services.common.signing import SignatureError, verify_signature

__all__ = ["MailRecorder", "ProcessSink", "Receiver", "main"]

LOOPBACK = "127.0.0.1"
_NO_CONTENT = b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n"
_BAD_REQUEST = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


class Receiver(asyncio.Protocol):
    """One connection: keep-alive HTTP/1.1 requests with a Content-Length body."""

    def __init__(
        self, secrets: Sequence[bytes], out: IO[str], *, clock: Callable[[], float] = time.time
    ) -> None:
        self._secrets = list(secrets)
        self._clock = clock
        self._out = out
        self._buffer = bytearray()
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        while (request := self._take_request()) is not None:
            # Stamped first: when the request's last byte was read, before any other work.
            received_at = self._clock()
            assert self._transport is not None
            self._transport.write(_NO_CONTENT)
            self._record(received_at, *request)

    def _take_request(self) -> tuple[str, dict[str, str], bytes] | None:
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            return None
        head = self._buffer[:end].decode("latin-1").split("\r\n")
        headers: dict[str, str] = {}
        for line in head[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        try:
            length = int(headers.get("content-length", "0"))
            method, path, _version = head[0].split(" ", 2)
        except ValueError:
            length, method, path = -1, "", ""
        if length < 0 or method != "POST":
            assert self._transport is not None
            self._transport.write(_BAD_REQUEST)
            self._transport.close()
            self._buffer.clear()
            return None
        if len(self._buffer) < end + 4 + length:
            return None  # the body's last byte has not come yet
        body = bytes(self._buffer[end + 4 : end + 4 + length])
        del self._buffer[: end + 4 + length]
        return path, headers, body

    def _record(self, received_at: float, path: str, headers: dict[str, str], body: bytes) -> None:
        signature_valid: bool | None = None
        if self._secrets:
            try:
                header = headers.get("aviso-signature", "")
                verify_signature(header, body, self._secrets, now=int(received_at))
                signature_valid = True
            except SignatureError:
                signature_valid = False
        try:
            payload: Any = json.loads(body)
        except ValueError:
            payload = body.decode("utf-8", "replace")
        item = {
            "received_at": datetime.fromtimestamp(received_at, UTC).isoformat(),
            "path": path,
            "delivery_id": headers.get("aviso-delivery-id"),
            "signature_valid": signature_valid,
            "payload": payload,
        }
        self._out.write(json.dumps(item, ensure_ascii=False) + "\n")


class MailRecorder:
    """aiosmtpd's handler: one JSON line per message accepted, the message left unparsed."""

    def __init__(self, out: IO[str], *, clock: Callable[[], float] = time.time) -> None:
        self._out = out
        self._clock = clock

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        item = {
            "received_at": datetime.fromtimestamp(self._clock(), UTC).isoformat(),
            "from": envelope.mail_from,
            "to": list(envelope.rcpt_tos),
            "bytes": len(content),
        }
        self._out.write(json.dumps(item) + "\n")
        return "250 OK"


async def serve(
    sock: socket.socket,
    secrets: Sequence[bytes],
    out: IO[str],
    mail: tuple[socket.socket, IO[str]] | None = None,
) -> None:
    """Receive webhooks on `sock` (and mail on `mail`'s socket) until SIGTERM or SIGINT."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    servers = [await loop.create_server(lambda: Receiver(secrets, out), sock=sock)]
    if mail is not None:
        mail_sock, mail_out = mail
        recorder = MailRecorder(mail_out)
        # A fixed hostname: aiosmtpd would otherwise resolve this machine's name.
        servers.append(
            await loop.create_server(lambda: SMTP(recorder, hostname=LOOPBACK), sock=mail_sock)
        )
    try:
        await stop.wait()
    finally:
        for server in servers:
            server.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.hot_path.sink")
    parser.add_argument("--out", type=Path, required=True, help="JSON lines, one per delivery")
    parser.add_argument("--mail-out", type=Path, help="also take mail: JSON lines, one a message")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    secrets = [s.encode() for s in json.loads(os.environ.get("AVISO_WEBHOOK_SECRETS", "[]"))]
    sock = socket.create_server((LOOPBACK, args.port), backlog=1024)
    mail_sock = socket.create_server((LOOPBACK, 0), backlog=1024) if args.mail_out else None
    ports = [sock.getsockname()[1]] + ([] if mail_sock is None else [mail_sock.getsockname()[1]])
    sys.stdout.write(" ".join(map(str, ports)) + "\n")  # the parent waits for the ports
    sys.stdout.flush()
    with contextlib.ExitStack() as files:
        out = files.enter_context(args.out.open("a", encoding="utf-8", buffering=1))
        mail = None
        if mail_sock is not None:
            mail_out = args.mail_out.open("a", encoding="utf-8", buffering=1)
            mail = (mail_sock, files.enter_context(mail_out))
        uvloop.run(serve(sock, secrets, out, mail))


class ProcessSink:
    """The receivers as a child process; `received` reads back the webhooks it recorded.

    Offers what the bench uses of deploy.local's WebhookSink: `url`, `port`, `received`;
    with `mail_file`, also an SMTP server at `smtp_port`.
    """

    def __init__(
        self, out_file: Path, *, secrets: Sequence[bytes] = (), mail_file: Path | None = None
    ) -> None:
        self._out_file = out_file
        self._mail_file = mail_file
        self._secrets = [s.decode() for s in secrets]
        self._process: subprocess.Popen[str] | None = None
        self._port = 0
        self.smtp_port: int | None = None
        self._read = 0
        self._pending = b""
        self._items: list[dict[str, Any]] = []

    def __enter__(self) -> ProcessSink:
        self._out_file.parent.mkdir(parents=True, exist_ok=True)
        self._out_file.write_text("", "utf-8")
        env = {**os.environ, "AVISO_WEBHOOK_SECRETS": json.dumps(self._secrets)}
        command = [sys.executable, "-m", "benchmarks.hot_path.sink", "--out", str(self._out_file)]
        if self._mail_file is not None:
            self._mail_file.write_text("", "utf-8")
            command += ["--mail-out", str(self._mail_file)]
        self._process = subprocess.Popen(  # noqa: S603 - our own module, our own interpreter
            command, stdout=subprocess.PIPE, env=env, text=True
        )
        assert self._process.stdout is not None
        ports = self._process.stdout.readline().split()
        if not ports or not all(p.isdigit() for p in ports):
            self.__exit__(None, None, None)
            raise RuntimeError("the webhook sink process did not start")
        self._port = int(ports[0])
        self.smtp_port = int(ports[1]) if len(ports) > 1 else None
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    @property
    def port(self) -> int:
        return self._port

    def url(self, path: str = "/hook") -> str:
        """The address to configure as a webhook."""
        return f"http://{LOOPBACK}:{self._port}{path}"

    @property
    def received(self) -> list[dict[str, Any]]:
        """Every delivery recorded so far, in arrival order (reads only the new lines)."""
        with self._out_file.open("rb") as f:
            f.seek(self._read)
            data = f.read()
        self._read += len(data)
        lines = (self._pending + data).split(b"\n")
        self._pending = lines.pop()  # a line still being written
        self._items += [json.loads(line) for line in lines if line]
        return list(self._items)


if __name__ == "__main__":
    main()
