"""The pipeline floor's phases (pipeline_floor.py), run after the system's on the same
broker and database: the bench's own open-loop load at the system's rates and durations,
CPU per notice of every process from /proc (Kafka and PostgreSQL included, the system
stopped), notice -> sink latency, and the floor's CPU with no load."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any, cast

import asyncpg
from sqlalchemy.engine import make_url

from benchmarks.hot_path.infra import Infra, cpu_ms, per_notice, sample_cpu, system_total
from benchmarks.hot_path.load import RatePoster, run_rate
from benchmarks.hot_path.pipeline_floor import running_floor
from benchmarks.hot_path.sink import ProcessSink
from benchmarks.hot_path.system import WEBHOOK_SECRET, BenchSystem
from benchmarks.hot_path.wakes import sample_wakes, wakes_per_notice

__all__ = ["STANDS_IN_FOR", "measure_pipeline_floor"]

# Each floor process by the service it stands in for (the JSON's and the report's keys).
STANDS_IN_FOR = {"intake": "front", "router": "relay", "rumor_control": "project"}
# As __main__.py's: PostgreSQL's backends, and the front's workers when it runs several.
_FORKING = ("postgres", "intake")
# Connections ready, consumers assigned, caches warm: the system's default warm-up (the
# broker and the database have just run the system's phases).
_WARM_UP = (2.0, 5.0)


def _dsn(infra: Infra) -> str:
    url = make_url(infra.database_url).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


async def _projected(dsn: str, wanted: int, *, within: float) -> int:
    """Rows in the floor's projection once there are `wanted`, or when `within` has passed:
    its consumer reads up to a fetch wait behind the sink, as rumor_control does."""
    conn = await asyncpg.connect(dsn)
    try:
        deadline = time.monotonic() + within
        while True:
            count = int(await conn.fetchval("SELECT count(*) FROM pipeline_floor_projection"))
            if count >= wanted or time.monotonic() > deadline:
                return count
            await asyncio.sleep(0.1)
    finally:
        await conn.close()


async def _idle(pids: dict[str, int], seconds: float) -> dict[str, float]:
    before = sample_cpu(pids, forking=_FORKING)
    began = time.monotonic()
    await asyncio.sleep(seconds)
    spent = cpu_ms(before, sample_cpu(pids, forking=_FORKING))
    return {name: ms / (time.monotonic() - began) for name, ms in spent.items()}


async def measure_pipeline_floor(
    infra: Infra,
    plan: dict[str, Any],
    work_dir: Path,
    *,
    workers: int = 1,
    warm_up: tuple[float, float] = _WARM_UP,
) -> dict[str, Any]:
    """Warm the floor up (`warm_up`: seconds, notices/s), measure its idle, then each of
    the plan's rates."""
    sink_file = work_dir / "pipeline-floor-webhooks.jsonl"
    with ProcessSink(sink_file, secrets=[WEBHOOK_SECRET.encode()]) as sink:
        async with running_floor(
            bootstrap=infra.bootstrap,
            dsn=_dsn(infra),
            sink=sink,
            webhook_secret=WEBHOOK_SECRET,
            log_dir=work_dir / "logs",
            workers=workers,
        ) as (system, floor):
            post = RatePoster(f"{system.url}/v1/notices", {})
            # run_rate reads only the sink and its path of a system.
            bench_system = cast(BenchSystem, system)
            try:
                await run_rate(
                    bench_system,
                    post,
                    rate=warm_up[1],
                    duration_s=warm_up[0],
                    drain_timeout_s=max(30.0, plan["drain_timeout_s"]),
                    label="pipeline floor warm-up",
                )
                await asyncio.sleep(plan["idle_settle_s"])
                idle = await _idle({**infra.pids, **floor.pids()}, plan["idle_s"])
                phases = [
                    await _rate(infra, plan, bench_system, post, floor.pids(), sink.pid, rate)
                    for rate in plan["rates"]
                ]
            finally:
                await post.close()
    return {
        "stands_in_for": STANDS_IN_FOR,
        "front_workers": workers,
        "warm_up": {"seconds": warm_up[0], "rate": warm_up[1]},
        "idle_cpu_ms_per_s": idle,
        "rates": phases,
    }


async def _rate(
    infra: Infra,
    plan: dict[str, Any],
    system: BenchSystem,
    post: RatePoster,
    floor_pids: dict[str, int],
    sink_pid: int | None,
    rate: float,
) -> dict[str, Any]:
    pids = {**infra.pids, **floor_pids, **({} if sink_pid is None else {"sink": sink_pid})}
    projected = await _projected(_dsn(infra), 0, within=0.0)
    before = sample_cpu(pids, forking=_FORKING)
    woken = sample_wakes(pids, forking=_FORKING)
    result = await run_rate(
        system,
        post,
        rate=rate,
        duration_s=plan["durations"][rate],
        drain_timeout_s=plan["drain_timeout_s"],
        label="pipeline floor",
    )
    # Each notice is projected twice (the notice, the relayed record), as the system's
    # phase waits for rumor_control's projections before it reads the CPU.
    began = time.monotonic()
    wanted = 2 * result.accepted
    projected = (
        await _projected(_dsn(infra), projected + wanted, within=plan["drain_timeout_s"])
        - projected
    )
    waited = time.monotonic() - began
    after = sample_cpu(pids, forking=_FORKING)
    woke = wakes_per_notice(woken, sample_wakes(pids, forking=_FORKING), result.accepted)
    cpu = cpu_ms(before, after)
    kernel = cpu_ms(before, after, kernel=True)
    notices = result.accepted
    summary = result.summary()
    return {
        "rate": rate,
        "sent": summary["sent"],
        "accepted": notices,
        "delivered": summary["delivered"],
        "late": summary["late"],
        "errors": summary["errors"],
        "sustained": summary["sustained"],
        "e2e_ms": summary["e2e_ms"],
        "projected": {"waited_s": round(waited, 2), "missing": wanted - projected},
        "cpu_ms_per_notice": per_notice(cpu, notices),
        "cpu_ms_per_notice_total": system_total(cpu, notices),
        "kernel_ms_per_notice": per_notice(kernel, notices),
        "kernel_ms_per_notice_total": system_total(kernel, notices),
        **woke,
    }
