"""CPU a request of the layers around intake's plain submission, in one process.

    python -m benchmarks.edge_layers [--requests 20000] [--rounds 7]

A service's app as `create_http_app` builds it, with intake's submission layer and a
`PlainSubmissionRoute` whose endpoint does nothing (no database, no token look-up, no
parse: `plain_submission` is replaced by one that reads the body and returns fixed
values), is called directly as ASGI with the bench's headers and a 685-byte JSON body, one
request after another. What it measures is everything between the server's call and the
endpoint: FastAPI's and the app's own layers, the body guard's check, the ids, the
metrics, the request's log line (JSON to /dev/null) and the answer's building. Prints CPU
microseconds a request (`time.process_time`) for each round, then the median, and the
Python calls a request under cProfile (a count the machine's load does not change).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import pstats
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from fastapi import Response
from starlette.middleware import Middleware

from benchmarks.asgi_calls import post_scope
from services.common.http import create_http_app
from services.common.logging import configure_logging
from services.common.runtime import ServiceRuntime
from services.common.settings import CommonSettings
from services.intake.http import plain_submission as plain_module
from services.intake.http.submission_layer import PlainSubmissionLayer
from tests.support.plain_submission import (
    plain_stand_in,
    submission_endpoint,
    submission_router,
)

_BODY = json.dumps({"reference": "r-1", "text": "x" * (685 - 32)}).encode()


def _created(_principal: Any, response: Response) -> dict[str, str]:
    response.status_code = 201
    response.headers["Location"] = "/v1/notices/n-1"
    return {"id": "n-1", "reference": "r-1"}


def _app(var_dir: Path) -> Any:
    runtime = ServiceRuntime(
        name="edge-bench",
        component="intake",
        settings=CommonSettings(var_dir=var_dir, development_mode=True),
    )
    router = submission_router("/v1/notices", submission_endpoint(_created))
    app = create_http_app(runtime, title="t", description="t", routers=[router])
    app.user_middleware.append(Middleware(PlainSubmissionLayer, path="/v1/notices"))
    return app


def _scope() -> dict[str, Any]:
    return post_scope("/v1/notices", _BODY, token="t" * 43, port=8000)


async def _round(app: Any, requests: int) -> float:
    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": _BODY, "more_body": False}

    statuses: list[int] = []

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    started = time.process_time()
    for _ in range(requests):
        await app(_scope(), receive, send)
    spent = time.process_time() - started
    assert set(statuses) == {201}, set(statuses)
    return spent / requests * 1e6


async def _main(requests: int, rounds: int) -> None:
    plain_module.plain_submission = plain_stand_in  # type: ignore[assignment]
    with tempfile.TemporaryDirectory() as var_dir:
        app = _app(Path(var_dir))
        await _round(app, 200)  # warm: the stack built, the route resolved
        results = [await _round(app, requests) for _ in range(rounds)]
        profiler = cProfile.Profile()
        profiler.enable()
        await _round(app, 1000)
        profiler.disable()
    calls = pstats.Stats(profiler).total_calls / 1000  # type: ignore[attr-defined]
    print(" ".join(f"{r:.1f}" for r in results), f"median {statistics.median(results):.1f} us")
    print(f"{calls:.0f} Python calls a request (cProfile)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    with open(os.devnull, "w") as null:
        configure_logging("edge-bench", fmt="json", stream=null, force=True)
        try:
            import uvloop

            uvloop.run(_main(args.requests, args.rounds))
        except ImportError:
            asyncio.run(_main(args.requests, args.rounds))


if __name__ == "__main__":
    main()
