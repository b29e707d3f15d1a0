"""An e-mail's cost in the sending process: CPU microseconds a message through `EmailSender`.

    python -m benchmarks.email_send [--mails 2000] [--repeat 5]

Sends `--mails` plain messages one after another over the sender's kept connection to an
aiosmtpd relay running in a process of its own (so only the sender's CPU is counted, as
router's is in the hot-path bench), on uvloop as the services run. Prints the best of
`--repeat` rounds, in microseconds of process time a message. To compare two checkouts,
run it in each back to back (`PYTHONPATH=<checkout> python -m benchmarks.email_send`).
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time
import uuid

import uvloop

from deploy.local.common import free_port
from services.common.delivery import EmailSender

_RELAY = """
import logging, time
from aiosmtpd.controller import Controller
logging.getLogger("mail.log").setLevel(logging.WARNING)
class Taker:
    async def handle_DATA(self, server, session, envelope):
        return "250 OK"
Controller(Taker(), hostname="127.0.0.1", port={port}).start()
time.sleep(3600)
"""
_TEXT = "Operation near the school, District 4, from 14:00 to 18:00.\n" * 6


async def _round(sender: EmailSender, mails: int) -> float:
    """Process-time microseconds a message over `mails` sends."""
    started = time.process_time()
    for _ in range(mails):
        await sender.send(
            to="SPOC <spoc@example.org>",
            subject="Alert: operation near the school",
            text=_TEXT,
            delivery_id=str(uuid.uuid4()),
        )
    return 1e6 * (time.process_time() - started) / mails


async def _ready(port: int) -> None:
    for _ in range(100):
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.05)
            continue
        writer.close()
        return
    raise RuntimeError("the relay did not start")


async def _main(port: int, mails: int, repeat: int) -> list[float]:
    await _ready(port)
    sender = EmailSender(host="127.0.0.1", port=port, sender="aviso@example.org")
    try:
        await _round(sender, 50)  # warm: the connection opened, the code paths taken
        return [await _round(sender, mails) for _ in range(repeat)]
    finally:
        await sender.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mails", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    port = free_port()
    relay = subprocess.Popen([sys.executable, "-c", _RELAY.format(port=port)])  # noqa: S603 - our own script
    try:
        rounds = uvloop.run(_main(port, args.mails, args.repeat))
    finally:
        relay.kill()
        relay.wait()
    print(f"best {min(rounds):.0f} µs a message (rounds: {', '.join(f'{r:.0f}' for r in rounds)})")


if __name__ == "__main__":
    main()
