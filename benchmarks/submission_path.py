"""CPU a plain submission costs intake, all of its request but the database, in one process.

    python -m benchmarks.submission_path [--requests 5000] [--rounds 7] [--profile N]

Intake's app as `compose` builds it for PostgreSQL (the engine is never connected), called
directly as ASGI with the bench's headers and notice (a new reference each request): the
request edge, the token (its look-up answered from the verifier's cache), the body's parse
and validation, the use case (domain rules, fingerprints, the sealed version, the event,
the audit entry, the statement's values and asyncpg's argument encoding), the outbox
hand-over to a relay that takes and drops, the after-commit hooks, the view and the
request's log line (JSON to a temporary file, written as the turn ends: each request
is awaited, then the loop turns once). Only the round trip is a stand-in: the grouped
writes' `fetchrow` answers "written, leased" at once. Prints CPU microseconds a request
(`time.process_time`) for each round, then the median, and the Python calls a request
under cProfile (a count the machine's load does not change). `--profile N` also prints
the N functions with the most inclusive time under cProfile, as a share of the request.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import json
import pstats
import statistics
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from benchmarks.asgi_calls import post_scope
from benchmarks.hot_path.load import notice_body
from services.common.auth import Principal, Role
from services.common.logging import configure_logging
from services.common.outbox.handoff import Taker, register_taker
from services.intake.app import IntakeService, compose
from services.intake.config import IntakeSettings

_TOKEN = "t" * 43
_PRINCIPAL = Principal(
    token_id="tok-bench",  # noqa: S106  # an id, not a secret
    role=Role.FIELD_OFFICE,
    name="bench",
    subject="fo-bench",
)


class _Verifier:
    """The token verifier's cache hit, without its database."""

    async def verify(self, token: str) -> Principal | None:
        return _PRINCIPAL if token == _TOKEN else None


def intake_app(var_dir: Path) -> Any:
    """Intake's ASGI app as `compose` builds it for PostgreSQL, with the token's look-up
    and the grouped writes' round trip answered in process (nothing is connected)."""
    return _service(var_dir).app


async def submit(app: Any, body: bytes) -> int:
    """POST `body` to the app's /v1/notices, then let the loop turn once (the turn's log
    line is written then, as a server's); the response's status."""
    statuses: list[int] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    await app(_scope(body), receive, send)
    await asyncio.sleep(0)
    return statuses[0] if statuses else 0


def _service(var_dir: Path) -> IntakeService:
    settings = IntakeSettings(
        var_dir=var_dir,
        development_mode=True,
        # Never connected: the statement's dialect and the grouped writes are PostgreSQL's.
        database_url="postgresql+asyncpg://bench@127.0.0.1:9/none",
        fingerprint_key=SecretStr("bench-fingerprint-key-of-enough-bytes"),
    )
    service = compose(settings)
    service.app.state.token_verifier = _Verifier()
    writes = service.deps.writes
    assert writes is not None  # PostgreSQL's path

    async def written(sql: str, arguments: Any, *, order: tuple[str, ...] = ()) -> Any:
        return {"existing_id": None, "written": 1, "notified": None, "leased_id": 1}

    writes.fetchrow = written  # type: ignore[method-assign]
    register_taker(writes.engine, Taker("bench-relay", 30.0, lambda rows, at: None))
    return service


def _scope(body: bytes) -> dict[str, Any]:
    return post_scope("/v1/notices", body, token=_TOKEN, port=8001)


async def _round(app: Any, requests: int) -> float:
    now = datetime.now(UTC)
    bodies = [json.dumps(notice_body(now)).encode() for _ in range(requests)]
    started = time.process_time()
    statuses = [await submit(app, body) for body in bodies]
    spent = time.process_time() - started
    assert set(statuses) == {201}, set(statuses)
    return spent / requests * 1e6


def _top(stats: pstats.Stats, requests: int, per_request_us: float, count: int) -> None:
    """The functions with the most inclusive time, as a share of a request."""
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    total = sum(tt for (_, _, tt, _, _) in raw.values())
    rows = sorted(raw.items(), key=lambda item: item[1][3], reverse=True)
    print(f"{'cum %':>6} {'self %':>6} {'calls/req':>9}  function")
    for (path, line, name), (_, calls, tt, ct, _) in rows[:count]:
        where = path.split("site-packages/")[-1].split("intake23/")[-1]
        print(
            f"{100 * ct / total:6.1f} {100 * tt / total:6.1f} {calls / requests:9.2f}  "
            f"{where}:{line}({name})"
        )
    print(f"(a request: {per_request_us:.0f} us outside cProfile)")


async def _main(requests: int, rounds: int, profile: int) -> None:
    with tempfile.TemporaryDirectory() as var_dir:
        app = intake_app(Path(var_dir))
        await _round(app, 300)  # warm: the stack built, the route resolved, statements
        results = [await _round(app, requests) for _ in range(rounds)]
        profiler = cProfile.Profile()
        profiler.enable()
        await _round(app, 1000)
        profiler.disable()
    stats = pstats.Stats(profiler)
    calls = stats.total_calls / 1000  # type: ignore[attr-defined]
    median = statistics.median(results)
    print(" ".join(f"{r:.1f}" for r in results), f"median {median:.1f} us")
    print(f"{calls:.0f} Python calls a request (cProfile)")
    if profile:
        _top(stats, 1000, median, profile)


@contextlib.contextmanager
def logging_to_a_file() -> Iterator[None]:
    """Intake's JSON log lines to a temporary regular file, as the bench's services write
    theirs (a turn's lines in one write), not to the terminal."""
    with tempfile.TemporaryFile("w") as log_stream:
        configure_logging("intake", fmt="json", stream=log_stream, force=True)
        yield


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--requests", type=int, default=5_000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--profile", type=int, default=0, metavar="N")
    args = parser.parse_args()
    import uvloop

    with logging_to_a_file():
        uvloop.run(_main(args.requests, args.rounds, args.profile))


if __name__ == "__main__":
    main()
