"""The hot-path benchmark: `make bench` (or `make bench ARGS=--short`).

    python -m benchmarks.hot_path [--short] [--rates 10,50,200] [--duration S] [--out DIR]
                                  [--profile] [--backend postgresql|sqlite]

Starts Kafka and PostgreSQL (or uses KAFKA_BOOTSTRAP_SERVERS + DATABASE_URL from the
environment), the three services as separate processes, and measures in one run:

1. the floors: Kafka produce -> consume round trip; asyncpg INSERT + COMMIT at c16/c64
   (sampled again after the intake phase: intake's share is read against the median,
   floor_samples.py); intake's request in process, back to back and after each rate's
   pause (cold_request.py: what this machine charges in CPU for waking the same code);
2. per rate, an open-loop load of unique notices: notice -> SPOC webhook latency, CPU
   ms per notice of every process (Kafka and PostgreSQL included), its wakes per notice
   (wakes.py) and database statements per notice per service (pg_stat_statements, one
   role per service);
3. intake alone (router and rumor_control stopped) at 16 and 64 closed-loop clients;
4. the pipeline floor (pipeline_floor.py), the services stopped and the database
   vacuumed (so what the system wrote before does not fall in its window): the least
   pipeline of the same hops on the same broker and database, at the same rates and
   durations, its CPU per notice beside the system's (`--skip-pipeline-floor` leaves it
   out).

With `--backend sqlite` no PostgreSQL runs: each service keeps its own SQLite files (the
embedded default of `make run`), the database floor is one SQLite connection's INSERT +
COMMIT, and statements are not counted (there is no server to count them).

With `--profile`, py-spy samples each service during every phase (profiling.py): the
collapsed stacks are kept beside the run's logs and summarised in the JSON.

Prints a table and writes everything as JSON to var/bench/<timestamp>.json. Nothing is
asserted: the figures are observations of this machine at this moment.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from benchmarks.hot_path.cold_request import measure_cold_request
from benchmarks.hot_path.delivery_metrics import delivery_change, scrape_delivery
from benchmarks.hot_path.floor_samples import floor_samples, sample_after, with_shares
from benchmarks.hot_path.floors import (
    kafka_round_trip,
    postgres_insert_commit,
    sqlite_insert_commit,
)
from benchmarks.hot_path.infra import (
    SERVICE_ROLES,
    Infra,
    cpu_ms,
    per_notice,
    sample_cpu,
    statements_by_role,
    system_total,
    top_statements,
    vacuum_and_settle,
)
from benchmarks.hot_path.interpreter import python_build
from benchmarks.hot_path.kafka_requests import kafka_requests_by_phase, render_requests
from benchmarks.hot_path.load import (
    HttpxPoster,
    NoticePoster,
    RatePoster,
    run_rate,
    run_throughput,
)
from benchmarks.hot_path.path import path_breakdown, wait_for_projection
from benchmarks.hot_path.pg_split import (
    PgCpuSplit,
    statement_costs,
    tune_roles,
    tune_statements,
)
from benchmarks.hot_path.pg_writes import PgWrites
from benchmarks.hot_path.pipeline_run import measure_pipeline_floor
from benchmarks.hot_path.profiling import PhaseProfiler, render_summaries
from benchmarks.hot_path.report import render
from benchmarks.hot_path.system import BenchSystem, running_services
from benchmarks.hot_path.targets import readings
from benchmarks.hot_path.wakes import sample_wakes, wakes_per_notice

ROOT = Path(__file__).resolve().parents[2]
# Processes whose CPU is their own and their children's: PostgreSQL's backends, and
# intake's worker processes when it runs several (a supervisor and its workers).
_FORKING = ("postgres", "intake")
# A warm-up this long leaves autovacuum owing enough to run through what follows.
_LONG_WARM_UP_S = 60.0
# Each phase's wall-clock window (unix ms): what the broker's request log is cut by.
WINDOWS: dict[str, tuple[int, int]] = {}


def _args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.hot_path", description=__doc__)
    parser.add_argument("--short", action="store_true", help="fewer, shorter phases")
    parser.add_argument("--rates", default=None, help="notices/s, comma-separated")
    parser.add_argument("--duration", type=float, default=None, help="seconds per rate")
    parser.add_argument("--out", type=Path, default=ROOT / "var" / "bench")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument(
        "--intake-only",
        action="store_true",
        help="only the floors and intake c16/c64 (--duration seconds each): a quick A/B",
    )
    parser.add_argument(
        "--profile", action="store_true", help="py-spy each service during every phase"
    )
    parser.add_argument(
        "--intake-workers",
        type=int,
        default=2,
        help=(
            "intake's worker processes in the intake-alone phase (AVISO_INTAKE_WORKERS; "
            "PostgreSQL only); the notice path runs intake as `make run` does, in one"
        ),
    )
    parser.add_argument(
        "--path-intake-workers",
        type=int,
        default=1,
        help=(
            "intake's worker processes on the notice path too (default 1, as `make run`): "
            "to see what several workers cost per notice (PostgreSQL only)"
        ),
    )
    parser.add_argument(
        "--backend",
        choices=("postgresql", "sqlite"),
        default="postgresql",
        help="the services' database: PostgreSQL (default) or the embedded SQLite default",
    )
    parser.add_argument(
        "--kafka-requests",
        action="store_true",
        help=(
            "log every request at the broker and count them per phase by type and client "
            "(benchmarks/kafka_requests.py); the log costs the broker CPU, so read no CPU "
            "figure from such a run"
        ),
    )
    parser.add_argument(
        "--pg-statements",
        choices=("on", "off", "planning"),
        default="on",
        help=(
            "pg_stat_statements in the bench's own cluster: on (statements counted), "
            "planning (and planning timed: plans per notice, planning ms) or off (to see "
            "what counting costs PostgreSQL; no statement figures)"
        ),
    )
    parser.add_argument(
        "--pg-role-setting",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help=(
            "a PostgreSQL setting for every service role (ALTER ROLE ... SET), e.g. "
            "plan_cache_mode=force_generic_plan: to try a server setting without a code change"
        ),
    )
    parser.add_argument(
        "--httpx-load",
        action="store_true",
        help=(
            "send the rate phases' notices with httpx, stamped before its post (as before "
            "the tenth round), instead of kept raw connections stamped at the write"
        ),
    )
    parser.add_argument(
        "--warm-up",
        type=float,
        default=2.0,
        metavar="SECONDS",
        help=(
            "seconds of load before anything is measured (default 2: connections, caches "
            "and consumers ready). A long one (300 and more, with --warm-up-rate 50) "
            "measures the steady state a long-running system is in: the broker's JIT done "
            "compiling (with AVISO_KAFKA_JVM_OPTS=-XX:TieredStopAtLevel=4, the full JIT a "
            "department's own cluster runs). After a warm-up of 60 s or more on PostgreSQL "
            "the run's database is vacuumed and autovacuum waited for before the idle "
            "window, so its workers do not run through the measured phases"
        ),
    )
    parser.add_argument(
        "--warm-up-rate",
        type=float,
        default=5.0,
        metavar="N",
        help="notices/s during the warm-up (default 5)",
    )
    parser.add_argument(
        "--thread-sink",
        action="store_true",
        help=(
            "receive the webhooks and e-mails on threads of the bench's own process "
            "(deploy.local's sinks, as before the ninth round) instead of the sink process "
            "(sink.py)"
        ),
    )
    parser.add_argument(
        "--skip-pipeline-floor",
        action="store_true",
        help=(
            "leave out the pipeline floor (pipeline_floor.py: the least pipeline of the "
            "notice's hops, measured after the system on the same broker and database)"
        ),
    )
    parser.add_argument(
        "--pipeline-floor-only",
        action="store_true",
        help=(
            "only the single-hop floors and the pipeline floor, warmed up with --warm-up and "
            "--warm-up-rate (no services): e.g. its broker's share with the full JIT"
        ),
    )
    return parser.parse_args(argv)


def _plan(args: argparse.Namespace) -> dict[str, Any]:
    rates = [10.0, 50.0] if args.short else [10.0, 50.0, 200.0]
    if args.rates:
        rates = [float(r) for r in args.rates.split(",")]
    return {
        "rates": rates,
        # The machine's price for waking a process, at each rate's pause (cold_request.py);
        # intake alone at c16/c64 never sleeps, so --intake-only leaves it out.
        "cold_request_rates": [] if args.intake_only else rates,
        # 60 s at the top rate: the goal is p99 sustained for a minute.
        "durations": {
            rate: args.duration or (5.0 if args.short else (60.0 if rate >= 200 else 20.0))
            for rate in rates
        },
        "drain_timeout_s": 20.0 if args.short else 60.0,
        "httpx_load": args.httpx_load,
        "warm_up_s": args.warm_up,
        "warm_up_rate": args.warm_up_rate,
        "vacuum_after_warm_up": args.warm_up >= _LONG_WARM_UP_S and args.backend == "postgresql",
        "throughput_s": (args.duration or 3.0)
        if args.intake_only
        else (3.0 if args.short else 10.0),
        "kafka_samples": 50 if args.short else 200,
        # One every 100 ms: 3 s (short) or 6 s of the run.
        "kafka_paced_samples": 30 if args.short else 60,
        "floor_s": 2.0 if args.short else 5.0,
        "idle_s": 5.0 if args.short else 15.0,
        # The warm-up's tail (last settlements and offset commits, the broker's JIT
        # compiling what the warm-up ran) stays out of the idle window.
        "idle_settle_s": 5.0 if args.short else 15.0,
    }


def _git_commit() -> str:
    done = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],  # noqa: S607 - git from PATH, as make does
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    return done.stdout.strip() or "unknown"


async def _floors(infra: Infra, plan: dict[str, Any], work_dir: Path) -> dict[str, Any]:
    kafka = await kafka_round_trip(
        infra.bootstrap, samples=plan["kafka_samples"], paced_samples=plan["kafka_paced_samples"]
    )
    floors: dict[str, Any] = {"kafka_round_trip": kafka}
    if infra.backend == "sqlite":
        floors["postgres_insert_commit"] = []
        floors["sqlite_insert_commit"] = await sqlite_insert_commit(
            work_dir / "floor", duration_s=plan["floor_s"]
        )
    else:
        floors["postgres_insert_commit"] = [
            await postgres_insert_commit(infra, concurrency=c, duration_s=plan["floor_s"])
            for c in (16, 64)
        ]
    if plan["cold_request_rates"]:
        sys.stderr.write(
            "\r\033[Kfloors: intake's request in process, back to back and after each "
            "rate's pause (~10 s)\n"
        )
        floors["cold_request"] = await measure_cold_request(plan["cold_request_rates"])
    return floors


async def _projected(
    infra: Infra, posted: dict[str, float], timeout_s: float
) -> dict[str, float | int] | None:
    """After the SPOC's webhooks: wait for rumor_control's projections of the phase, which
    may run behind the alerts (it is not on their path); None on SQLite."""
    if infra.backend != "postgresql" or not posted:
        return None
    waited, missing = await wait_for_projection(
        infra.database_url, list(posted), timeout_s=timeout_s
    )
    if waited >= 1.0 or missing:
        sys.stderr.write(
            f"\r\033[Krumor_control: projected the phase {waited:.1f} s after its last "
            f"webhook ({missing} missing)\n"
        )
    return {"waited_s": round(waited, 2), "missing": missing}


async def _idle(infra: Infra, system: BenchSystem, seconds: float) -> dict[str, float]:
    """CPU ms per second of each process with no load: the background work (heartbeats,
    fetch long-polls, pollers) that a low rate's per-notice figures carry."""
    pids = {**infra.pids, **system.pids()}
    before = sample_cpu(pids, forking=_FORKING)
    began = time.monotonic()
    window = [_unix_ms()]
    await asyncio.sleep(seconds)
    spent = cpu_ms(before, sample_cpu(pids, forking=_FORKING))
    elapsed = time.monotonic() - began
    WINDOWS["idle"] = (window[0], _unix_ms())
    return {name: ms / elapsed for name, ms in spent.items()}


def _unix_ms() -> int:
    return int(time.time() * 1000)


async def _rates(
    infra: Infra,
    system: BenchSystem,
    plan: dict[str, Any],
    profiler: PhaseProfiler | None,
    idle: dict[str, float],
    after_warm_up: dict[str, Any],
) -> list[dict[str, Any]]:
    phases: list[dict[str, Any]] = []
    url = f"{system.intake.url}/v1/notices"
    headers = {"Authorization": f"Bearer {system.token}"}
    raw = RatePoster(url, headers)
    async with contextlib.AsyncExitStack() as stack:
        stack.push_async_callback(raw.close)
        post: NoticePoster = raw
        if plan["httpx_load"]:
            client = await stack.enter_async_context(
                httpx.AsyncClient(
                    timeout=60.0,
                    limits=httpx.Limits(max_connections=512, max_keepalive_connections=512),
                )
            )
            post = HttpxPoster(client, url, headers)
        # A few notices first: connections, caches and JITs warm, consumers assigned.
        await run_rate(
            system,
            post,
            rate=plan["warm_up_rate"],
            duration_s=plan["warm_up_s"],
            drain_timeout_s=max(30.0, plan["drain_timeout_s"]),
            label="warm-up",
        )
        if plan["vacuum_after_warm_up"]:
            sys.stderr.write("\r\033[Kwarm-up: vacuuming, then waiting for autovacuum\n")
            after_warm_up.update(await vacuum_and_settle(infra))
        sys.stderr.write(f"\r\033[Kidle: settling {plan['idle_settle_s']:g} s, then measuring\n")
        await asyncio.sleep(plan["idle_settle_s"])
        idle.update(await _idle(infra, system, plan["idle_s"]))
        for rate in plan["rates"]:
            # The bench and its webhook sink are not the system: reported, not totalled.
            pids = {**infra.pids, **system.pids(), "bench": os.getpid(), **system.sink_pid()}
            await statements_by_role(infra, reset=True)
            split = _pg_split(infra)
            if split is not None:
                await split.start()
            writes = PgWrites(infra) if split is not None else None
            if writes is not None:
                await writes.start()
            delivery_before = await scrape_delivery(system.router.url)
            before = sample_cpu(pids, forking=_FORKING)
            woken = sample_wakes(pids, forking=_FORKING)
            began_ms = _unix_ms()
            if profiler is not None:
                profiler.start(f"rate{rate:g}", system.pids(), duration_s=plan["durations"][rate])
            result = await run_rate(
                system,
                post,
                rate=rate,
                duration_s=plan["durations"][rate],
                drain_timeout_s=plan["drain_timeout_s"],
                label="e2e",
            )
            projected = await _projected(infra, result.posted, plan["drain_timeout_s"])
            after = sample_cpu(pids, forking=_FORKING)
            woke = wakes_per_notice(woken, sample_wakes(pids, forking=_FORKING), result.accepted)
            cpu = cpu_ms(before, after)
            kernel = cpu_ms(before, after, kernel=True)
            WINDOWS[f"rate{rate:g}"] = (began_ms, _unix_ms())
            pg_split = await _pg_split_result(infra, split, result.accepted)
            pg_writes = await writes.stop(result.accepted) if writes is not None else None
            statements = await statements_by_role(infra)
            top = await top_statements(infra)
            delivery = delivery_change(delivery_before, await scrape_delivery(system.router.url))
            if profiler is not None:
                await asyncio.to_thread(profiler.wait)
            # The legs are read from PostgreSQL (one database, a schema per service).
            path = (
                await path_breakdown(
                    infra.database_url,
                    infra.bootstrap,
                    posted=result.posted,
                    arrived=result.arrived,
                )
                if infra.backend == "postgresql"
                else {}
            )
            notices = result.accepted
            phases.append(
                {
                    **result.summary(),
                    "cpu_ms_per_notice": per_notice(cpu, notices),
                    "cpu_ms_per_notice_total": system_total(cpu, notices),
                    "kernel_ms_per_notice": per_notice(kernel, notices),
                    "kernel_ms_per_notice_total": system_total(kernel, notices),
                    **woke,
                    "statements_per_notice": per_notice(
                        {role: float(statements.get(role, 0)) for role in SERVICE_ROLES}, notices
                    )
                    if statements
                    else {},
                    "top_statements": top,
                    "router_delivery": delivery,
                    "rumor_control_projected": projected,
                    "path_ms": path,
                    "pg_split": pg_split,
                    "pg_writes": pg_writes,
                }
            )
    return phases


def _pg_split(infra: Infra) -> PgCpuSplit | None:
    """A sampler of PostgreSQL's processes for one phase (PostgreSQL only)."""
    postmaster = infra.pids.get("postgres")
    if infra.backend != "postgresql" or postmaster is None:
        return None
    return PgCpuSplit(infra, postmaster)


async def _pg_split_result(
    infra: Infra, split: PgCpuSplit | None, notices: int
) -> dict[str, Any] | None:
    """The phase's PostgreSQL split (pg_split.py), per notice."""
    if split is None or not notices:
        return None
    done = await split.stop()
    costs = await statement_costs(infra)
    return {
        **done,
        "cpu_ms_per_notice": {k: v / notices for k, v in done["cpu_ms"].items()},
        "total_ms_per_notice": done["total_ms"] / notices,
        "statements": {
            role: {k: (v / notices if isinstance(v, float) else v) for k, v in c.items()}
            for role, c in costs.items()
        },
    }


async def _throughput(
    infra: Infra,
    system: BenchSystem,
    plan: dict[str, Any],
    profiler: PhaseProfiler | None,
    *,
    workers: int,
) -> list[dict[str, Any]]:
    # Intake alone: the consumers would otherwise share the two cores with it.
    await asyncio.gather(
        asyncio.to_thread(system.router.terminate, 15.0),
        asyncio.to_thread(system.rumor_control.terminate, 15.0),
    )
    if system.intake.env.get("AVISO_INTAKE_WORKERS") != str(workers):
        # Several workers for this phase only: at a low rate each worker's relay wakes for
        # every commit, an extra claim round per notice that the notice path need not pay.
        await asyncio.to_thread(system.intake.terminate, 15.0)
        system.intake.env = {**system.intake.env, "AVISO_INTAKE_WORKERS": str(workers)}
        await asyncio.to_thread(system.intake.start)
    results = []
    for concurrency in (16, 64):
        pids = {**infra.pids, **system.pids()}
        await statements_by_role(infra, reset=True)
        before = sample_cpu(pids, forking=_FORKING)
        if profiler is not None:
            profiler.start(f"intake-c{concurrency}", system.pids(), duration_s=plan["throughput_s"])
        outcome = await run_throughput(
            system, concurrency=concurrency, duration_s=plan["throughput_s"]
        )
        cpu = cpu_ms(before, sample_cpu(pids, forking=_FORKING))
        statements = await statements_by_role(infra)
        top = await top_statements(infra)
        if profiler is not None:
            await asyncio.to_thread(profiler.wait)
        results.append(
            {
                **outcome.summary(),
                "cpu_ms_per_notice": per_notice(cpu, outcome.accepted),
                "statements_per_notice": (
                    statements.get("intake", 0) / outcome.accepted
                    if outcome.accepted and statements
                    else None
                ),
                "top_statements": top.get("intake", []),
            }
        )
    return results


async def _measure(infra: Infra, plan: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    # Kept after the run: the services' logs explain a phase that went wrong.
    work_dir = args.out / f"run-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}"
    work_dir.mkdir(parents=True, exist_ok=True)
    floors = await _floors(infra, plan, work_dir)
    profiler = PhaseProfiler(work_dir / "profiles") if args.profile else None
    workers = args.intake_workers if infra.backend == "postgresql" else 1
    path_workers = args.path_intake_workers if infra.backend == "postgresql" else 1
    first = workers if args.intake_only else path_workers
    if args.pipeline_floor_only:
        warm_up = (plan["warm_up_s"], plan["warm_up_rate"])
        floors["pipeline"] = await measure_pipeline_floor(
            infra, plan, work_dir, workers=path_workers, warm_up=warm_up
        )
        return {"floors": floors, "rates": [], "throughput": [], "pipeline_floor_only": True}
    async with running_services(
        infra, work_dir, intake_workers=first, thread_sink=args.thread_sink
    ) as system:
        idle: dict[str, float] = {}
        after_warm_up: dict[str, Any] = {}
        phases = (
            []
            if args.intake_only
            else await _rates(infra, system, plan, profiler, idle, after_warm_up)
        )
        throughput: list[dict[str, Any]] = []
        if not args.skip_throughput:
            throughput = await _throughput(infra, system, plan, profiler, workers=workers)
    settled: dict[str, Any] | None = None
    if throughput and infra.backend == "postgresql":
        # The services are stopped and their rows vacuumed, as at the start nothing runs
        # beside the floor: more samples of it, and intake's share read against their
        # median (floor_samples.py); the first sample's share stays as it was.
        settled = await vacuum_and_settle(infra)
        first = floors["postgres_insert_commit"]
        floors["postgres_insert_commit_samples"] = floor_samples(
            first, await sample_after(infra, duration_s=plan["floor_s"])
        )
        throughput = with_shares(throughput, first, floors["postgres_insert_commit_samples"])
    if _with_pipeline_floor(infra, args):
        # The services are stopped: the broker and the database work for the floor alone.
        # Their tables vacuumed first and autovacuum waited for: a faster system writes
        # more rows in the intake phase, whose vacuum then fell in the floor's window (the
        # floor at 50/s rose with the system's throughput, eighteenth round).
        settled = settled or await vacuum_and_settle(infra)
        floors["pipeline"] = {
            **await measure_pipeline_floor(infra, plan, work_dir, workers=path_workers),
            "vacuumed_before": settled,
        }
    measured: dict[str, Any] = {
        "intake_workers": workers,
        "path_intake_workers": path_workers,
        "floors": floors,
        "idle_cpu_ms_per_s": idle,
        "after_warm_up": after_warm_up,
        # Unix ms of each phase, to line up with outside samplers (per-thread CPU).
        "windows_unix_ms": dict(WINDOWS),
        "rates": phases,
        "webhook_sink": "thread" if args.thread_sink else "process",
        "load_client": "httpx" if args.httpx_load else "raw",
        "throughput": throughput,
    }
    if profiler is not None:
        measured["profiles"] = profiler.summaries()
    if args.kafka_requests:
        accepted = {f"rate{p['rate']:g}": p.get("accepted") for p in phases}
        measured["kafka_requests"] = kafka_requests_by_phase(
            infra.state_dir / "kafka" / "logs" / "server.log.requests", WINDOWS, accepted
        )
    return measured


def _with_pipeline_floor(infra: Infra, args: argparse.Namespace) -> bool:
    """The floor is measured beside the rate phases, on PostgreSQL (its tables live there)."""
    return not (args.skip_pipeline_floor or args.intake_only or infra.backend != "postgresql")


def main(argv: list[str] | None = None) -> int:
    args = _args(argv)
    if args.profile and PhaseProfiler.executable() is None:
        # Found out before the run, not after it: a profile-less run is not what was asked.
        sys.stderr.write(
            "--profile needs py-spy, which is not installed: "
            "pip install -e '.[profile]' (it also needs root or ptrace permission)\n"
        )
        return 2
    if args.pipeline_floor_only and args.backend != "postgresql":
        sys.stderr.write("--pipeline-floor-only needs PostgreSQL: its tables live there\n")
        return 2
    plan = _plan(args)
    if args.kafka_requests:
        os.environ["AVISO_KAFKA_REQUEST_LOG"] = "1"  # read by deploy/local/kafka.py's start
    started = datetime.now(UTC)
    infra = Infra.start(ROOT / "var" / "bench" / "stack", backend=args.backend)
    try:
        began = time.monotonic()
        asyncio.run(tune_statements(infra, mode=args.pg_statements))
        asyncio.run(tune_roles(infra, args.pg_role_setting))
        if args.pg_statements == "off":
            infra.pg_stat_statements = False  # nothing counted: no statement figures
        measured = asyncio.run(_measure(infra, plan, args))
    finally:
        infra.stop()
    results = {
        "started_at": started.isoformat(),
        "took_s": round(time.monotonic() - began, 1),
        "commit": _git_commit(),
        "short": args.short,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "python_build": python_build(),
        },
        # What the local broker's JVM ran with beyond its defaults (deploy/local/kafka_jvm.py).
        "kafka_jvm_opts": os.environ.get("AVISO_KAFKA_JVM_OPTS", ""),
        "infra": {
            "backend": infra.backend,
            "own": infra.own,
            "pg_stat_statements": infra.pg_stat_statements,
            "statements_per_service": infra.service_roles,
        },
        "plan": {**plan, "durations": {str(k): v for k, v in plan["durations"].items()}},
        **measured,
    }
    results["targets"] = readings(results)
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / f"{started.strftime('%Y%m%dT%H%M%SZ')}.json"
    out.write_text(json.dumps(results, indent=2), "utf-8")
    print(render(results))
    if "profiles" in results:
        print(render_summaries(results["profiles"]))
    for phase, summary in results.get("kafka_requests", {}).items():
        print("\n" + render_requests(summary, title=f"Kafka requests, {phase}"))
    print(f"\nresults: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
