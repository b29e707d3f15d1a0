"""The load: open-loop notices at a fixed rate (e2e latency) and closed-loop clients (throughput).

Open loop: notice n is sent at start + n / rate whether or not earlier ones were
answered, so a slow system meets the load it would meet in life and its queueing shows
in the latency. At most `max_in_flight` requests are outstanding; a send that finds
them all busy is counted as late (the system did not keep up), not silently delayed.

Latency is from the moment the notice's request is written to intake's socket (its body
and head built beforehand, so the load generator's own work is not in it) to the SPOC's
webhook receipt: the sink (a process of its own, `sink.py`) stamps wall-clock time on the
same machine when the request's last byte is read, before it verifies the signature. A
receipt whose signature is not valid does not count as delivered: it is counted as bad
(and the phase is not sustained). `HttpxPoster` (the bench's `--httpx-load`) stamps just
before httpx's `post`, as the bench did before the tenth round.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from benchmarks.hot_path.raw_http import RawConnection
from benchmarks.hot_path.system import BenchSystem

__all__ = [
    "HttpxPoster",
    "NoticePoster",
    "Posted",
    "RatePoster",
    "RateResult",
    "ThroughputResult",
    "notice_body",
    "percentile",
    "run_rate",
    "run_throughput",
]


def notice_body(now: datetime) -> dict[str, Any]:
    """A unique notice (its own reference) with restricted detail, as a field office sends it."""
    start = (now + timedelta(days=1)).replace(minute=0, second=0, microsecond=0)
    return {
        "reference": f"BENCH-{uuid.uuid4().hex.upper()}",
        "received_via": "api",
        "status": "Exercise",
        "operation_type": "targeted_arrest",
        "public_safety_nexus": True,
        "window_start": start.isoformat(),
        "window_end": (start + timedelta(hours=4)).isoformat(),
        "area": "District 4",
        "area_code": "district-4",
        "summary": "Federal agents plan a targeted operation in District 4 tomorrow.",
        "source": {
            "field_office_name": "Riverton ERO field office",
            "agent": {"name": "Dana Whitlock", "phone": "+1 505 555 0199"},
        },
        "restricted": {
            "names": ["Esteban Quiroga"],
            "addresses": ["2231 Alameda Ave Apt 4"],
            "vehicles": ["Silver Tacoma 7XYZ123"],
            "exact_locations": ["Corner of 19th and Alameda"],
        },
    }


def percentile(values: list[float], p: float) -> float | None:
    """The p-th percentile (nearest rank) of `values`, or None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(p / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


@dataclass
class RateResult:
    """One fixed-rate phase."""

    rate: float
    duration_s: float
    sent: int = 0
    accepted: int = 0
    errors: int = 0
    late: int = 0
    delivered: int = 0
    bad_signatures: int = 0
    http_ms: list[float] = field(default_factory=list)
    e2e_ms: list[float] = field(default_factory=list)
    drained_s: float = 0.0
    # Wall-clock seconds per notice id: when its POST began, when the SPOC's webhook came.
    posted: dict[str, float] = field(default_factory=dict)
    arrived: dict[str, float] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        e2e = {f"p{p}": percentile(self.e2e_ms, p) for p in (50, 90, 99)}
        http = {f"p{p}": percentile(self.http_ms, p) for p in (50, 99)}
        return {
            "rate": self.rate,
            "duration_s": self.duration_s,
            "sent": self.sent,
            "accepted": self.accepted,
            "errors": self.errors,
            "late": self.late,
            "delivered": self.delivered,
            "bad_signatures": self.bad_signatures,
            # Kept up: nothing late or lost, and the backlog gone soon after the last send.
            "sustained": self.late == 0
            and self.errors == 0
            and self.bad_signatures == 0
            and self.delivered == self.accepted
            and self.drained_s <= max(2.0, self.duration_s / 10),
            "e2e_ms": e2e,
            "e2e_max_ms": max(self.e2e_ms) if self.e2e_ms else None,
            "http_ms": http,
            "drained_s": self.drained_s,
        }


class _SpocWatcher:
    """Matches the SPOC's webhook receipts to the notices sent (first receipt per notice)."""

    def __init__(self, system: BenchSystem) -> None:
        self._system = system
        self._seen = 0
        self.arrived: dict[str, float] = {}
        self.bad_signatures = 0  # receipts of any path whose signature did not verify

    def poll(self) -> None:
        received = self._system.webhook.received
        path = self._system.spoc_path()
        for item in received[self._seen :]:
            if item.get("signature_valid") is False:
                self.bad_signatures += 1
                continue
            payload = item.get("payload")
            if item.get("path") != path or not isinstance(payload, dict):
                continue
            notice_id = payload.get("notice_id")
            if isinstance(notice_id, str) and notice_id not in self.arrived:
                self.arrived[notice_id] = datetime.fromisoformat(item["received_at"]).timestamp()
        self._seen = len(received)


@dataclass(frozen=True)
class Posted:
    """One notice's answer: status, JSON body (None if not JSON) and when it was sent."""

    status_code: int
    body: Any
    sent_at: float  # wall-clock seconds, comparable with the sink's stamps


NoticePoster = Callable[[dict[str, Any]], Awaitable[Posted]]


class RatePoster:
    """Posts notices over kept raw connections, stamping each as its bytes are written.

    The stamp is taken once the request is built, just before its one write: what the
    system is measured on starts when the notice leaves for intake, not while the load
    generator encodes it. A connection idle for longer than `idle_s` is closed rather
    than reused: uvicorn closes idle keep-alive connections after 5 s, and a POST must
    never meet a socket the server is closing (it could not be told apart from a lost
    notice, and sending it again could submit it twice).
    """

    def __init__(self, url: str, headers: dict[str, str], *, idle_s: float = 1.0) -> None:
        parsed = httpx.URL(url)
        self._host, self._port = parsed.host, parsed.port or 80
        self._path = parsed.raw_path.decode("ascii")
        self._headers = headers
        self._idle_s = idle_s
        self._free: list[tuple[float, RawConnection]] = []  # (last used, monotonic)

    async def __call__(self, notice: dict[str, Any]) -> Posted:
        body = json.dumps(notice).encode()
        connection = await self._take()
        try:
            response = await connection.post_json(self._path, body, headers=self._headers)
        except BaseException:
            await connection.close()
            raise
        assert connection.written_at is not None
        self._free.append((time.monotonic(), connection))
        try:
            parsed = json.loads(response.body) if response.body else None
        except ValueError:
            parsed = None
        return Posted(response.status_code, parsed, connection.written_at)

    async def _take(self) -> RawConnection:
        while self._free:
            last_used, connection = self._free.pop()
            if time.monotonic() - last_used <= self._idle_s:
                return connection
            await connection.close()
        return RawConnection(self._host, self._port)

    async def close(self) -> None:
        """Close every kept connection."""
        while self._free:
            await self._free.pop()[1].close()


class HttpxPoster:
    """Posts notices with httpx, stamped just before `post` (the bench before the tenth round)."""

    def __init__(self, client: httpx.AsyncClient, url: str, headers: dict[str, str]) -> None:
        self._client = client
        self._url = url
        self._headers = headers

    async def __call__(self, notice: dict[str, Any]) -> Posted:
        sent_at = time.time()
        response = await self._client.post(self._url, json=notice, headers=self._headers)
        try:
            parsed = response.json()
        except ValueError:
            parsed = None
        return Posted(response.status_code, parsed, sent_at)


def _progress(text: str) -> None:
    sys.stderr.write("\r\033[K" + text)
    sys.stderr.flush()


async def run_rate(
    system: BenchSystem,
    post: NoticePoster,
    *,
    rate: float,
    duration_s: float,
    drain_timeout_s: float,
    max_in_flight: int = 512,
    label: str = "",
) -> RateResult:
    """Send `rate` notices/s for `duration_s`, then wait (bounded) for every SPOC webhook."""
    result = RateResult(rate, duration_s)
    watcher = _SpocWatcher(system)
    sent_at: dict[str, float] = {}
    slots = asyncio.Semaphore(max_in_flight)

    async def one() -> None:
        try:
            posted = await post(notice_body(datetime.now(UTC)))
            result.http_ms.append((time.time() - posted.sent_at) * 1000)
            body = posted.body
            if posted.status_code == 201 and isinstance(body, dict):
                result.accepted += 1
                sent_at[str(body.get("id") or body.get("notice_id"))] = posted.sent_at
            else:
                result.errors += 1
        except (httpx.HTTPError, OSError, asyncio.IncompleteReadError, ValueError):
            result.errors += 1
        finally:
            slots.release()

    def line() -> str:
        watcher.poll()
        return (
            f"{label} {rate:.0f}/s: sent {result.sent} accepted {result.accepted} "
            f"delivered {len(watcher.arrived.keys() & sent_at.keys())} late {result.late}"
        )

    tasks: set[asyncio.Task[None]] = set()
    start = time.perf_counter()
    total = int(rate * duration_s)
    for n in range(total):
        delay = start + n / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        if slots.locked():
            result.late += 1
            continue
        await slots.acquire()
        result.sent += 1
        task = asyncio.create_task(one())
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        if n % max(int(rate // 2), 1) == 0:
            _progress(line())
    await asyncio.gather(*tasks)
    drain_start = time.perf_counter()
    while time.perf_counter() - drain_start < drain_timeout_s:
        _progress(line())
        if sent_at.keys() <= watcher.arrived.keys():
            break
        await asyncio.sleep(0.2)
    watcher.poll()
    result.drained_s = time.perf_counter() - drain_start
    result.bad_signatures = watcher.bad_signatures
    result.posted = sent_at
    for notice_id, began_wall in sent_at.items():
        if notice_id in watcher.arrived:
            result.arrived[notice_id] = watcher.arrived[notice_id]
            result.delivered += 1
            result.e2e_ms.append((watcher.arrived[notice_id] - began_wall) * 1000)
    _progress(line() + "\n")
    return result


@dataclass
class ThroughputResult:
    """Closed-loop clients against intake alone."""

    concurrency: int
    duration_s: float
    accepted: int = 0
    errors: int = 0
    http_ms: list[float] = field(default_factory=list)

    @property
    def per_s(self) -> float:
        return self.accepted / self.duration_s if self.duration_s else 0.0

    def summary(self) -> dict[str, Any]:
        return {
            "concurrency": self.concurrency,
            "duration_s": self.duration_s,
            "accepted": self.accepted,
            "errors": self.errors,
            "notices_per_s": self.per_s,
            "http_ms": {f"p{p}": percentile(self.http_ms, p) for p in (50, 99)},
        }


async def run_throughput(
    system: BenchSystem,
    *,
    concurrency: int,
    duration_s: float,
    on_tick: Callable[[], None] | None = None,
) -> ThroughputResult:
    """`concurrency` clients, each POSTing a new notice as soon as the last one was answered.

    Each client is one keep-alive connection of raw_http.py, not httpx: the client's own
    CPU would otherwise take a third of the two cores from intake (see raw_http.py).
    """
    result = ThroughputResult(concurrency, duration_s)
    url = httpx.URL(system.intake.url)
    host, port = url.host, url.port or 80
    headers = {"Authorization": f"Bearer {system.token}"}
    stop_at = time.perf_counter() + duration_s

    async def client_loop() -> None:
        connection = RawConnection(host, port)
        try:
            while time.perf_counter() < stop_at:
                began = time.perf_counter()
                body = json.dumps(notice_body(datetime.now(UTC))).encode()
                try:
                    response = await connection.post_json("/v1/notices", body, headers=headers)
                except (OSError, asyncio.IncompleteReadError, ValueError):
                    result.errors += 1
                    await connection.close()
                    continue
                if time.perf_counter() > stop_at:
                    break  # answered after the window: not counted either way
                result.http_ms.append((time.perf_counter() - began) * 1000)
                if response.status_code == 201:
                    result.accepted += 1
                else:
                    result.errors += 1
        finally:
            await connection.close()

    async def ticker() -> None:
        while time.perf_counter() < stop_at:
            _progress(f"intake c{concurrency}: accepted {result.accepted} errors {result.errors}")
            if on_tick is not None:
                on_tick()
            await asyncio.sleep(0.5)

    await asyncio.gather(ticker(), *(client_loop() for _ in range(concurrency)))
    _progress(f"intake c{concurrency}: {result.per_s:.0f} notices/s\n")
    return result
