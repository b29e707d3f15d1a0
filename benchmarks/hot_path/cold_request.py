"""The machine's price for waking a process: the same request's CPU, back to back and paced.

    python -m benchmarks.hot_path.cold_request [--pause-ms 100 --pause-ms 20 ...]

Intake's whole request but the database (`benchmarks.submission_path`: the edge, the
token, the body's validation, the use case, the statement's values, the outbox hand-over,
the view, the log line), called in a process of its own, first back to back, then once
after each pause: the CPU of identical work, measured with `time.process_time_ns`
around each request. On the machine these rounds ran on (a KVM guest with two vCPUs,
shared), a request that cost ~0.55 ms back to back cost 1.5-2.2 ms after a sleep of
10-100 ms, and 0.6-1.0 ms after 1 ms: a process that slept a few milliseconds or more
finds its caches cold, and pays for it in CPU, not only in latency. A
tight loop with little memory paid almost nothing; huge pages for the heap, spinners
keeping both vCPUs out of halt and pinning to one CPU changed little (docs/performance.md,
the twenty-sixth round).

At 10 notices/s every process a notice passes through has slept ~100 ms before it, so
the bench's CPU per notice at low rates carries this price at each process's wake; at
200/s the processes rarely sleep that long. The bench runs this at the start, with the
other floors, at each rate's pause (1 / rate), so a run's low-rate CPU can be read
beside what this machine charged that day for waking the same code. Prints JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

__all__ = ["measure_cold_request", "pauses_ms", "render_cold_request", "samples_for"]

_ROOT = Path(__file__).resolve().parents[2]
# Requests before any is measured: the app's routes, caches and statements warmed.
_WARM_UP = 300
# Back-to-back requests measured, before and after the paced ones (their drift shows).
_WARM = 200
# A paced round spans about this long, with at least and at most so many requests.
_PACED_S = 3.0
_PACED_MIN, _PACED_MAX = 20, 200


def pauses_ms(rates: Sequence[float]) -> list[float]:
    """Each rate's gap between notices, in ms: how long a process slept before one."""
    return [round(1000.0 / rate, 3) for rate in rates if rate > 0]


def samples_for(pause_ms: float) -> int:
    """Requests measured after a pause: about `_PACED_S` of them, within the bounds."""
    wanted = math.ceil(_PACED_S * 1000.0 / max(pause_ms, 1.0))
    return max(_PACED_MIN, min(_PACED_MAX, wanted))


async def _measure(pauses: Sequence[float], *, warm_up: int, warm: int) -> dict[str, Any]:
    # Imported here: the bench's own process never loads intake's app.
    from benchmarks.hot_path.load import notice_body
    from benchmarks.submission_path import intake_app, submit

    def body() -> bytes:
        return json.dumps(notice_body(datetime.now(UTC))).encode()

    async def timed(pause_s: float) -> int:
        request = body()
        if pause_s:
            await asyncio.sleep(pause_s)
        started = time.process_time_ns()
        status = await submit(app, request)
        spent = time.process_time_ns() - started
        if status != 201:
            raise RuntimeError(f"intake's app answered {status}, not 201")
        return spent

    with tempfile.TemporaryDirectory() as var_dir:
        app = intake_app(Path(var_dir))
        for _ in range(warm_up):
            await timed(0)
        before = [await timed(0) for _ in range(warm)]
        paced = []
        for pause in pauses:
            spent = [await timed(pause / 1000.0) for _ in range(samples_for(pause))]
            paced.append((pause, spent))
        after = [await timed(0) for _ in range(warm)]
    warm_us = statistics.median(before + after) / 1000.0
    return {
        "request": "intake's submission in process, no I/O (benchmarks/submission_path.py)",
        "warm_us": round(warm_us, 1),
        "warm_before_us": round(statistics.median(before) / 1000.0, 1),
        "warm_after_us": round(statistics.median(after) / 1000.0, 1),
        "paced": [
            {
                "pause_ms": pause,
                "samples": len(spent),
                "us": round(statistics.median(spent) / 1000.0, 1),
                "ratio": round(statistics.median(spent) / 1000.0 / warm_us, 2),
            }
            for pause, spent in paced
        ],
    }


async def measure_cold_request(
    rates: Sequence[float], *, timeout_s: float = 180.0, command: Sequence[str] | None = None
) -> dict[str, Any]:
    """Run this module in a process of its own at each rate's pause; its JSON, or
    {"error": ...} if it failed (the bench goes on without it)."""
    argv = list(command or [sys.executable, "-m", "benchmarks.hot_path.cold_request"])
    for pause in pauses_ms(rates):
        argv += ["--pause-ms", f"{pause:g}"]
    try:
        done = await asyncio.to_thread(
            subprocess.run, argv, cwd=_ROOT, capture_output=True, text=True, timeout=timeout_s
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}
    if done.returncode != 0:
        tail = done.stderr.strip().splitlines()[-1:] or [f"exit status {done.returncode}"]
        return {"error": tail[0]}
    try:
        measured: dict[str, Any] = json.loads(done.stdout)
    except ValueError:
        return {"error": "no JSON on its output"}
    return measured


def render_cold_request(floors: dict[str, Any]) -> list[str]:
    """The floor's lines: the request back to back, then after each pause."""
    cold = floors.get("cold_request")
    if cold is None:  # results written before the twenty-sixth round
        return []
    if "error" in cold:
        return [f"  intake's request woken from sleep: not measured ({cold['error']})"]
    lines = [
        "  intake's request in process, CPU    "
        f"back to back {cold['warm_us']:.0f} us (cold_request.py)"
    ]
    for paced in cold["paced"]:
        label = (
            f"  ... after {paced['pause_ms']:g} ms asleep ({1000.0 / paced['pause_ms']:g}/s's gap)"
        )
        lines.append(f"{label:<37}{paced['us']:>13.0f} us   x{paced['ratio']:.2f}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--pause-ms", type=float, action="append", default=[], help="a pause (repeatable)"
    )
    parser.add_argument("--warm-up", type=int, default=_WARM_UP, help=argparse.SUPPRESS)
    parser.add_argument("--warm", type=int, default=_WARM, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if any(p <= 0 for p in args.pause_ms):
        parser.error("--pause-ms must be positive")
    import uvloop

    from benchmarks.submission_path import logging_to_a_file

    with logging_to_a_file():  # the services' own loop: uvloop
        measured = uvloop.run(_measure(args.pause_ms, warm_up=args.warm_up, warm=args.warm))
    print(json.dumps(measured))
    return 0


if __name__ == "__main__":
    sys.exit(main())
