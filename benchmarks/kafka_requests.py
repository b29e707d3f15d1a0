"""What the broker answered, by request type and client: counts and where each one's time went.

The local broker logs every completed request (with its timings) when started with
``AVISO_KAFKA_REQUEST_LOG=1`` (deploy/local/kafka.py). ``make bench ARGS=--kafka-requests``
turns that on and summarises each phase's window from that log; by hand:

    python -m benchmarks.kafka_requests var/bench/stack/kafka/logs/server.log.requests \\
        [--from UNIX_MS] [--to UNIX_MS] [--notices N]

Per (client, request type): how many, per second, per notice, and the p50 of the
broker's own time split as its request metrics split it: queued for a handler thread,
local work, waiting on others (purgatory: a fetch's long-poll, acks=all), queued for the
network thread, sending. The log costs the broker CPU of its own, so a run that counts
requests is not a run to read CPU figures from.
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["Request", "parse", "render", "summarise"]

_PREFIX = " Completed request:"
TIMINGS = (
    "totalTimeMs",
    "requestQueueTimeMs",
    "localTimeMs",
    "remoteTimeMs",
    "responseQueueTimeMs",
    "sendTimeMs",
)


@dataclass(frozen=True)
class Request:
    """One completed request as the broker logged it."""

    at_ms: int
    api: str
    client: str
    listener: str
    timings: dict[str, float]


def parse(lines: Iterable[str]) -> Iterator[Request]:
    """The requests of a request log (lines that are not a completed request are skipped)."""
    for line in lines:
        stamp, found, body = line.partition(_PREFIX)
        if not found:
            continue
        try:
            logged = json.loads(body)
            header = logged["requestHeader"]
            yield Request(
                at_ms=int(stamp),
                api=str(header["requestApiKeyName"]),
                client=str(header.get("clientId") or "-"),
                listener=str(logged.get("listener", "")),
                timings={name: float(logged.get(name, 0.0)) for name in TIMINGS},
            )
        except (ValueError, KeyError, TypeError):
            continue  # a line cut short by a roll or a crash


def _client(request: Request) -> str:
    # The broker's own requests to its controller (one JVM here) are listed apart.
    if request.listener == "CONTROLLER":
        return "broker->controller"
    return request.client


def summarise(
    requests: Iterable[Request],
    *,
    from_ms: int | None = None,
    to_ms: int | None = None,
    notices: int | None = None,
) -> dict[str, Any]:
    """Counts, rates and p50 timings per (client, request type) within the window."""
    groups: dict[tuple[str, str], list[Request]] = defaultdict(list)
    first = last = None
    for request in requests:
        if from_ms is not None and request.at_ms < from_ms:
            continue
        if to_ms is not None and request.at_ms > to_ms:
            continue
        groups[_client(request), request.api].append(request)
        first = request.at_ms if first is None else min(first, request.at_ms)
        last = request.at_ms if last is None else max(last, request.at_ms)
    start = from_ms if from_ms is not None else first
    end = to_ms if to_ms is not None else last
    seconds = max(((end or 0) - (start or 0)) / 1000, 1e-9)
    rows = []
    for (client, api), found in sorted(groups.items(), key=lambda item: -len(item[1])):
        rows.append(
            {
                "client": client,
                "api": api,
                "count": len(found),
                "per_s": len(found) / seconds,
                "per_notice": len(found) / notices if notices else None,
                "p50_ms": {
                    name: statistics.median(r.timings[name] for r in found) for name in TIMINGS
                },
            }
        )
    total = sum(row["count"] for row in rows)
    return {
        "seconds": seconds,
        "notices": notices,
        "total": total,
        "total_per_s": total / seconds,
        "total_per_notice": total / notices if notices else None,
        "rows": rows,
    }


def render(summary: dict[str, Any], *, title: str = "Kafka requests") -> str:
    """A plain-text table of one summary."""
    per_notice = summary["notices"] is not None
    lines = [
        f"{title}: {summary['total']} requests in {summary['seconds']:.1f} s "
        f"({summary['total_per_s']:.1f}/s"
        + (f", {summary['total_per_notice']:.2f} per notice)" if per_notice else ")"),
        f"  {'client':<22} {'request':<22} {'count':>6} {'/s':>7} {'/notice':>8}   "
        "p50 ms: total = queue + local + remote + resp.queue + send",
    ]
    for row in summary["rows"]:
        t = row["p50_ms"]
        share = f"{row['per_notice']:.2f}" if row["per_notice"] is not None else "-"
        lines.append(
            f"  {row['client'][:22]:<22} {row['api'][:22]:<22} {row['count']:>6} "
            f"{row['per_s']:>7.2f} {share:>8}   {t['totalTimeMs']:.2f} = "
            f"{t['requestQueueTimeMs']:.2f} + {t['localTimeMs']:.2f} + "
            f"{t['remoteTimeMs']:.2f} + {t['responseQueueTimeMs']:.2f} + {t['sendTimeMs']:.2f}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.kafka_requests", description=__doc__
    )
    parser.add_argument("log", type=Path, help="the broker's request log")
    parser.add_argument("--from", dest="from_ms", type=int, default=None, help="unix ms")
    parser.add_argument("--to", dest="to_ms", type=int, default=None, help="unix ms")
    parser.add_argument("--notices", type=int, default=None)
    args = parser.parse_args(argv)
    with args.log.open(encoding="utf-8", errors="replace") as lines:
        summary = summarise(
            parse(lines), from_ms=args.from_ms, to_ms=args.to_ms, notices=args.notices
        )
    print(render(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
