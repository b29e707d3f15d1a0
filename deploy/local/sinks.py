"""Local receivers for what Aviso delivers: a webhook sink and an SMTP sink.

They stand in for the SPOC's phone gateway, a liaison's webhook and a mail server on a
single machine (`aviso up`, the demo and the tests). Both are real servers on
127.0.0.1; they record every delivery (and append it to a JSON-lines file when asked),
check webhook signatures, and keep duplicates visible rather than hiding them, so a
test can count what really arrived.

    python -m deploy.local.sinks --webhook-port 8090 --smtp-port 8025 --out var/sinks
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import email
import email.policy
import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from aiohttp import web

from services.common.signing import SignatureError, verify_signature

__all__ = ["SmtpSink", "WebhookSink", "main"]

LOOPBACK = "127.0.0.1"


class _Recorder:
    """Every item in arrival order, appended to a JSON-lines file too; waitable from any thread."""

    def __init__(self, out_file: Path | None) -> None:
        self.items: list[dict[str, Any]] = []
        self._lock = threading.Condition()
        self._out: TextIO | None = None
        if out_file is not None:
            out_file.parent.mkdir(parents=True, exist_ok=True)
            # Kept open and line-buffered: one open() per delivery cost more than the
            # HTTP handling itself, and `tail -f` still sees each line at once.
            self._out = out_file.open("a", encoding="utf-8", buffering=1)

    def add(self, item: dict[str, Any]) -> None:
        line = json.dumps(item, ensure_ascii=False) + "\n" if self._out is not None else ""
        with self._lock:
            self.items.append(item)
            if self._out is not None:
                self._out.write(line)
            self._lock.notify_all()

    def snapshot(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.items)

    def wait_for(
        self, predicate: Callable[[list[dict[str, Any]]], bool], timeout: float
    ) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        seen = -1
        while True:
            with self._lock:
                while len(self.items) == seen:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise TimeoutError(
                            f"sink condition not met within {timeout} s; have {len(self.items)}"
                        )
                    self._lock.wait(remaining)
                items = list(self.items)
            seen = len(items)
            # Outside the lock: a slow predicate over thousands of items must not hold up
            # the server, and everything that arrived meanwhile is looked at in one go.
            if predicate(items):
                return items

    def close(self) -> None:
        with self._lock:
            if self._out is not None:
                self._out.close()
                self._out = None


class WebhookSink:
    """An HTTP server recording signed webhook deliveries (any path, POST).

    aiohttp's server on a thread of its own with its own event loop: it keeps
    connections alive and takes thousands of requests a second, so the sink is never
    what limits a delivery benchmark or a test's fan-out. The socket is bound when the
    sink is made, so `url()` is valid before `start()`.
    """

    def __init__(
        self,
        *,
        port: int = 0,
        secrets: Sequence[bytes] = (),
        out_file: Path | None = None,
        fail_first: int = 0,
    ) -> None:
        self._recorder = _Recorder(out_file)
        self._secrets = list(secrets)
        # Answer 503 to the first N requests: lets tests prove retries happen. Only the
        # server's loop touches it, so it needs no lock.
        self._fail_remaining = fail_first
        self._socket = socket.create_server((LOOPBACK, port), backlog=1024)
        self._port = int(self._socket.getsockname()[1])
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        if request.method != "POST":
            return web.Response(status=405)
        body = await request.read()
        if self._fail_remaining > 0:
            self._fail_remaining -= 1
            return web.Response(status=503)
        self._recorder.add(self._record(request.raw_path, request.headers, body))
        return web.Response(status=204)

    def _record(self, path: str, headers: Mapping[str, str], body: bytes) -> dict[str, Any]:
        signature_valid: bool | None = None
        if self._secrets:
            try:
                verify_signature(
                    headers.get("Aviso-Signature", ""), body, self._secrets, now=int(time.time())
                )
                signature_valid = True
            except SignatureError:
                signature_valid = False
        try:
            payload: Any = json.loads(body)
        except ValueError:
            payload = body.decode("utf-8", "replace")
        return {
            "received_at": datetime.now(UTC).isoformat(),
            "path": path,
            "delivery_id": headers.get("Aviso-Delivery-Id"),
            "signature_valid": signature_valid,
            "headers": dict(headers.items()),
            "payload": payload,
        }

    @property
    def port(self) -> int:
        return self._port

    def url(self, path: str = "/hook") -> str:
        """The address to configure as a webhook."""
        return f"http://{LOOPBACK}:{self.port}{path}"

    @property
    def received(self) -> list[dict[str, Any]]:
        return self._recorder.snapshot()

    def wait_for(
        self, predicate: Callable[[list[dict[str, Any]]], bool], timeout: float = 30.0
    ) -> list[dict[str, Any]]:
        """Block until `predicate(received)` holds (call via asyncio.to_thread from async code)."""
        return self._recorder.wait_for(predicate, timeout)

    def start(self) -> WebhookSink:
        """Serve on a background thread; returns once the server accepts requests."""
        ready = threading.Event()
        failure: list[BaseException] = []
        self._thread = threading.Thread(
            target=self._run, args=(ready, failure), name="webhook-sink", daemon=True
        )
        self._thread.start()
        if not ready.wait(timeout=30):
            raise RuntimeError("the webhook sink did not start within 30 s")
        if failure:
            raise RuntimeError("the webhook sink failed to start") from failure[0]
        return self

    def _run(self, ready: threading.Event, failure: list[BaseException]) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._serve(ready))
        except BaseException as exc:
            failure.append(exc)
            ready.set()
        finally:
            loop.close()

    async def _serve(self, ready: threading.Event) -> None:
        self._stopping = asyncio.Event()
        # No access log: the recorder is the log, and a line per request would halve the rate.
        server = web.Server(self._handle, access_log=None)
        runner = web.ServerRunner(server, shutdown_timeout=2.0)
        await runner.setup()
        try:
            await web.SockSite(runner, self._socket).start()
            ready.set()
            await self._stopping.wait()
        finally:
            await runner.cleanup()

    def stop(self) -> None:
        """Stop serving and close the record file; safe to call twice."""
        loop, stopping, thread = self._loop, self._stopping, self._thread
        if loop is not None and stopping is not None and thread is not None:
            with contextlib.suppress(RuntimeError):  # the loop already ended
                loop.call_soon_threadsafe(stopping.set)
            thread.join(timeout=30)
        self._thread = None
        self._socket.close()
        self._recorder.close()

    def __enter__(self) -> WebhookSink:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class SmtpSink:
    """An SMTP server (aiosmtpd) recording every message it accepts."""

    def __init__(self, *, port: int = 0, out_file: Path | None = None) -> None:
        from aiosmtpd.controller import Controller

        # aiosmtpd narrates every connection at INFO; the recorder is our record.
        logging.getLogger("mail.log").setLevel(logging.WARNING)
        self._recorder = _Recorder(out_file)
        recorder = self._recorder

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                message = email.message_from_bytes(envelope.content, policy=email.policy.default)
                body = message.get_body(preferencelist=("plain",))
                recorder.add(
                    {
                        "received_at": datetime.now(UTC).isoformat(),
                        "from": envelope.mail_from,
                        "to": list(envelope.rcpt_tos),
                        "subject": " ".join(str(message["Subject"]).split()),  # unfolded
                        "message_id": str(message["Message-ID"]),
                        "delivery_id": str(message.get("Aviso-Delivery-Id", "")) or None,
                        "language": str(message.get("Content-Language", "")) or None,
                        "text": body.get_content() if body is not None else "",
                    }
                )
                return "250 OK"

        if port == 0:
            from deploy.local.common import free_port

            port = free_port()
        self._controller = Controller(Handler(), hostname=LOOPBACK, port=port)
        self.port = port

    @property
    def received(self) -> list[dict[str, Any]]:
        return self._recorder.snapshot()

    def wait_for(
        self, predicate: Callable[[list[dict[str, Any]]], bool], timeout: float = 30.0
    ) -> list[dict[str, Any]]:
        """Block until `predicate(received)` holds (call via asyncio.to_thread from async code)."""
        return self._recorder.wait_for(predicate, timeout)

    def start(self) -> SmtpSink:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()
        self._recorder.close()

    def __enter__(self) -> SmtpSink:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: Sequence[str] | None = None) -> int:
    """Run both sinks in the foreground until interrupted."""
    parser = argparse.ArgumentParser(prog="python -m deploy.local.sinks", description=__doc__)
    parser.add_argument("--webhook-port", type=int, default=8090)
    parser.add_argument("--smtp-port", type=int, default=8025)
    parser.add_argument("--out", type=Path, default=Path("var/sinks"))
    parser.add_argument(
        "--secret", action="append", default=[], help="webhook secret to verify with"
    )
    args = parser.parse_args(argv)
    webhook = WebhookSink(
        port=args.webhook_port,
        secrets=[s.encode() for s in args.secret],
        out_file=args.out / "webhooks.jsonl",
    ).start()
    smtp = SmtpSink(port=args.smtp_port, out_file=args.out / "mail.jsonl").start()
    print(
        f"[sinks] webhook sink on {webhook.url('/')}, SMTP sink on {LOOPBACK}:{smtp.port}; "
        f"recording to {args.out}",
        flush=True,
    )
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        webhook.stop()
        smtp.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
