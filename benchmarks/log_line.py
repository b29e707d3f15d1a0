"""A log line's cost: microseconds per line through the whole chain, in-process.

    python -m benchmarks.log_line [--lines 20000] [--repeat 5] [--held 0,10,320]
                                  [--churn] [--profile]

Writes three hot lines through `configure_logging`'s JSON handler into a null stream:
intake's request line (`notice.received` with the HTTP edge's outcome fields) and
router's `alert.triggered` and `alert.delivered` (with a consumer's bound context), with
0, 10 and 320 restricted values held in the scrubber's registry (as intake holds them
for the requests in flight at c64). `--churn` registers one value and forgets another
before each line, as concurrent submissions change the registry between two lines.
Prints the best of `--repeat` rounds, in microseconds of CPU (process time) a line. To
compare two checkouts, run it in each back to back
(`PYTHONPATH=<checkout> python -m benchmarks.log_line`).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import random
import time
import uuid
from collections.abc import Callable

import services.common.logging as aviso_logging
from services.common.logging import (
    bound,
    configure_logging,
    forget_sensitive_value,
    get_logger,
    register_sensitive_value,
)


class _NullStream(io.TextIOBase):
    """Takes every write and keeps nothing (the handler's write and flush stay in)."""

    def write(self, text: str) -> int:
        return len(text)

    def isatty(self) -> bool:
        return False


def held_values(count: int, *, seed: int = 11) -> list[str]:
    """`count` restricted values shaped like a submission's (names, phones, places)."""
    rng = random.Random(seed)
    first = ["Esteban", "María", "Dana", "José", "Li", "Ana", "Tomás", "Wei", "Fatima"]
    last = ["Quiroga", "Whitlock", "González", "Nguyen", "Pérez", "Okafor", "Smith"]
    streets = ["Alameda Ave", "Main St", "Oak Park Rd", "19th St", "Johnson Blvd"]
    values: list[str] = []
    while len(values) < count:
        n = len(values)
        match n % 6:
            case 0:
                value = f"{rng.choice(first)} {rng.choice(last)} {n}"
            case 1:
                value = f"+1 505 555 {rng.randrange(10_000):04d}"
            case 2:
                value = f"505-{rng.randrange(1000):03d}-{rng.randrange(10_000):04d}"
            case 3:
                value = f"{rng.randrange(1, 9999)} {rng.choice(streets)} Apt {n}"
            case 4:
                value = f"{rng.randrange(10)}XYZ{rng.randrange(1000):03d}"
            case _:
                value = f"agent{n}@field.example"
        values.append(value)
    return values


def _lines() -> dict[str, Callable[[], None]]:
    intake = get_logger("services.intake.notices.submission")
    router = get_logger("services.router.alerting.notices")
    outcomes = get_logger("services.router.delivery.outcomes")
    notice_id, alert_id = str(uuid.uuid4()), str(uuid.uuid4())
    correlation_id, request_id = str(uuid.uuid4()), str(uuid.uuid4())
    recipient_id, delivery_id = str(uuid.uuid4()), str(uuid.uuid4())

    def notice_received() -> None:
        intake.info(
            "notice.received",
            notice_id=notice_id,
            version=1,
            status="Exercise",
            operation_type="targeted_arrest",
            received_via="api",
            http_method="POST",
            http_path="/v1/notices",
            http_route="/v1/notices",
            http_status=201,
            duration_ms=2.41,
            client="127.0.0.1",
            correlation_id=correlation_id,
            request_id=request_id,
        )

    def alert_triggered() -> None:
        with bound(message_id=request_id, topic="aviso.notices.v1", group_id="router"):
            router.info(
                "alert.triggered",
                alert_id=alert_id,
                notice_id=notice_id,
                notice_version=1,
                drill=True,
                step=0,
                repeat=0,
                recipient_id=recipient_id,
                urgency="Immediate",
                delegated=False,
                directory_version=3,
            )

    def alert_delivered() -> None:
        outcomes.info(
            "alert.delivered",
            alert_id=alert_id,
            notice_version=1,
            delivery_id=delivery_id,
            recipient_id=recipient_id,
            channel="webhook",
            purpose="alert",
            correlation_id=correlation_id,
            notice_id=notice_id,
            drill=True,
            step=0,
            attempts=1,
        )

    return {
        "intake notice.received": notice_received,
        "router alert.triggered": alert_triggered,
        "router alert.delivered": alert_delivered,
    }


def _per_line_us(
    line: Callable[[], None], *, lines: int, repeat: int, churn: list[str] | None
) -> float:
    best = float("inf")
    for _ in range(repeat):
        if churn:
            spare = churn[0]
            started = time.process_time()
            for i in range(lines):
                # One in, one out: the registry changes between every two lines.
                incoming = churn[i % len(churn)]
                register_sensitive_value(spare)
                forget_sensitive_value(incoming)
                spare = incoming
                line()
            elapsed = time.process_time() - started
            register_sensitive_value(spare)
            # Leave the registry as it was: every churn value held once.
            for value in churn:
                forget_sensitive_value(value)
            for value in churn:
                register_sensitive_value(value)
            forget_sensitive_value(spare)
        else:
            started = time.process_time()
            for _ in range(lines):
                line()
            elapsed = time.process_time() - started
        best = min(best, elapsed / lines)
    return best * 1e6


def main() -> None:
    """Print microseconds per line for each hot line and each number of held values."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--held", default="0,10,320")
    parser.add_argument("--churn", action="store_true")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()

    configure_logging("bench", level="INFO", fmt="json", stream=_NullStream(), force=True)
    lines = _lines()
    counts = [int(part) for part in args.held.split(",")]
    print(f"{'line':<26}" + "".join(f"{f'{n} held':>12}" for n in counts) + "   (us a line)")
    results: dict[str, list[float]] = {name: [] for name in lines}
    for count in counts:
        values = held_values(count)
        for value in values:
            register_sensitive_value(value)
        for name, line in lines.items():
            line()  # warm: the logger is cached on first use
            churn = values if args.churn and values else None
            results[name].append(
                _per_line_us(line, lines=args.lines, repeat=args.repeat, churn=churn)
            )
        if args.profile and count == counts[-1]:
            profiler = cProfile.Profile()
            profiler.runcall(lambda: [lines["intake notice.received"]() for _ in range(5000)])
            pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
        for value in values:
            forget_sensitive_value(value)
    for name, figures in results.items():
        print(f"{name:<26}" + "".join(f"{figure:>12.2f}" for figure in figures))
    print(f"(module: {aviso_logging.__file__})")


if __name__ == "__main__":
    main()
