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
import email
import email.policy
import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

__all__ = ["SmtpSink", "WebhookSink", "main"]

LOOPBACK = "127.0.0.1"


class _Recorder:
    def __init__(self, out_file: Path | None) -> None:
        self.items: list[dict[str, Any]] = []
        self._lock = threading.Condition()
        self._out_file = out_file
        if out_file is not None:
            out_file.parent.mkdir(parents=True, exist_ok=True)

    def add(self, item: dict[str, Any]) -> None:
        with self._lock:
            self.items.append(item)
            if self._out_file is not None:
                with self._out_file.open("a", encoding="utf-8") as fh:
                    fh.write(json.dumps(item, ensure_ascii=False) + "\n")
            self._lock.notify_all()

    def snapshot(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.items)

    def wait_for(
        self, predicate: Callable[[list[dict[str, Any]]], bool], timeout: float
    ) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        with self._lock:
            while not predicate(self.items):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(
                        f"sink condition not met within {timeout} s; have {len(self.items)}"
                    )
                self._lock.wait(remaining)
            return list(self.items)


class WebhookSink:
    """An HTTP server recording signed webhook deliveries (any path, POST)."""

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
        # Answer 503 to the first N requests: lets tests prove retries happen.
        self._fail_remaining = fail_first
        self._lock = threading.Lock()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                with sink._lock:
                    if sink._fail_remaining > 0:
                        sink._fail_remaining -= 1
                        self.send_response(503)
                        self.end_headers()
                        return
                sink._recorder.add(sink._record(self.path, dict(self.headers.items()), body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return  # quiet: the recorder is the log

        self._server = ThreadingHTTPServer((LOOPBACK, port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def _record(self, path: str, headers: dict[str, str], body: bytes) -> dict[str, Any]:
        signature_valid: bool | None = None
        if self._secrets:
            from services.common.signing import SignatureError, verify_signature

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
            "headers": headers,
            "payload": payload,
        }

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

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
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

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
