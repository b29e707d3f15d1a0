"""The benchmark's results as a plain-text table (the JSON has everything)."""

from __future__ import annotations

from typing import Any

from benchmarks.hot_path.cold_request import render_cold_request
from benchmarks.hot_path.interpreter import describe
from benchmarks.hot_path.pg_split import render_split
from benchmarks.hot_path.pg_writes import render_writes
from benchmarks.hot_path.targets import render_targets
from benchmarks.hot_path.wakes import render_wakes

__all__ = ["render"]

_PROCESSES = ("intake", "router", "rumor_control", "postgres", "kafka")


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _num(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _floors(results: dict[str, Any]) -> list[str]:
    floors = results["floors"]
    kafka = floors["kafka_round_trip"]
    lines = [
        "Floors (same run)",
        f"  Kafka produce->consume round trip   p50 {_ms(kafka['p50_ms'])} ms   "
        f"p99 {_ms(kafka['p99_ms'])} ms",
    ]
    paced = kafka.get("paced")
    if paced:  # results written before the twenty-fourth round have none
        lines.append(
            f"  ... one every {paced['pace_s'] * 1000:.0f} ms (10/s's pace)      "
            f"p50 {_ms(paced['p50_ms'])} ms   p99 {_ms(paced['p99_ms'])} ms"
        )
    for pg in floors["postgres_insert_commit"]:
        lines.append(
            f"  asyncpg INSERT+COMMIT c{pg['concurrency']:<3}          "
            f"{pg['commits_per_s']:7.0f}/s   p50 {_ms(pg['p50_ms'])} ms"
        )
    for c, its in (floors.get("postgres_insert_commit_samples") or {}).items():
        every = ", ".join(f"{v:.0f}" for v in its["commits_per_s"])
        lines.append(
            f"  ... c{c} every sample (the start's first, then after intake's phase): "
            f"{every}; median {its['median_commits_per_s']:.0f}/s"
        )
    if "sqlite_insert_commit" in floors:
        lite = floors["sqlite_insert_commit"]
        lines.append(
            f"  SQLite INSERT+COMMIT, one writer    "
            f"{lite['commits_per_s']:7.0f}/s   p50 {_ms(lite['p50_ms'])} ms"
        )
    return lines + render_cold_request(floors)


def _rates(results: dict[str, Any]) -> list[str]:
    kafka_p50 = results["floors"]["kafka_round_trip"]["p50_ms"]
    lines = [
        "",
        "notice -> SPOC webhook (open loop)",
        "  rate/s  sent  deliv  late   p50 ms   p90 ms   p99 ms   max ms  sustained  p50/kafka",
    ]
    for phase in results["rates"]:
        e2e = phase["e2e_ms"]
        ratio = e2e["p50"] / kafka_p50 if e2e["p50"] and kafka_p50 else None
        lines.append(
            f"  {phase['rate']:6.0f} {phase['sent']:5d} {phase['delivered']:6d} {phase['late']:5d}"
            f" {_ms(e2e['p50']):>8} {_ms(e2e['p90']):>8} {_ms(e2e['p99']):>8}"
            f" {_ms(phase['e2e_max_ms']):>8}  {'yes' if phase['sustained'] else 'NO':>9}"
            f"  {_num(ratio, 0):>9}x"
        )
    idle = results.get("idle_cpu_ms_per_s") or {}
    if idle:
        lines += ["", "CPU ms per second with no load (background work)"]
        lines.append("         " + "".join(f"{p:>14}" for p in _PROCESSES) + "         total")
        lines.append(
            "         "
            + "".join(f"{_num(idle.get(p)):>14}" for p in _PROCESSES)
            + f"{sum(idle.get(p) or 0 for p in _PROCESSES):>14.1f}"
        )
    lines += [
        "",
        "CPU ms per notice (utime+stime from /proc; below each rate, stime alone, and the "
        "wakes: voluntary context switches per notice, wakes.py)",
    ]
    lines.append("  rate/s " + "".join(f"{p:>14}" for p in _PROCESSES) + "         total")
    for phase in results["rates"]:
        cpu = phase["cpu_ms_per_notice"]
        lines.append(
            f"  {phase['rate']:6.0f} "
            + "".join(f"{_num(cpu.get(p)):>14}" for p in _PROCESSES)
            + f"{_num(phase['cpu_ms_per_notice_total']):>14}"
        )
        kernel = phase.get("kernel_ms_per_notice")  # runs before the twenty-fourth round
        if kernel:
            lines.append(
                "  kernel "
                + "".join(f"{_num(kernel.get(p)):>14}" for p in _PROCESSES)
                + f"{_num(phase.get('kernel_ms_per_notice_total')):>14}"
            )
        lines += render_wakes(phase, _PROCESSES)
    sink = [(p["rate"], p["cpu_ms_per_notice"].get("sink")) for p in results["rates"]]
    if any(ms is not None for _, ms in sink):  # a process of its own since the ninth round
        lines.append(
            "  the webhook sink's own (not the system's, not in the total): "
            + ", ".join(f"{rate:g}/s {_num(ms)}" for rate, ms in sink)
        )
    lines += _path(results)
    lines += render_split(results["rates"])
    lines += render_writes(results["rates"])
    lines += ["", "Database statements per notice (pg_stat_statements, BEGIN/COMMIT included)"]
    lines.append("  rate/s        intake        router rumor_control         total")
    for phase in results["rates"]:
        stmts = phase["statements_per_notice"]
        if not stmts:
            why = "not counted on SQLite" if _sqlite(results) else "pg_stat_statements unavailable"
            lines.append(f"  {phase['rate']:6.0f}  ({why})")
            continue
        total = sum(v for v in stmts.values() if v is not None)
        lines.append(
            f"  {phase['rate']:6.0f} "
            + "".join(f"{_num(stmts.get(p)):>14}" for p in ("intake", "router", "rumor_control"))
            + f"{total:>14.1f}"
        )
    return lines


def _path(results: dict[str, Any]) -> list[str]:
    """Each leg of notice -> SPOC (benchmarks/hot_path/path.py), p50 / p90 in ms."""
    legs = [leg for phase in results["rates"] for leg in phase.get("path_ms") or {}]
    names = list(dict.fromkeys(legs))
    if not names:
        return []
    lines = ["", "notice -> SPOC by leg, p50 / p90 ms (path.py says what each stamp is)"]
    lines.append("  rate/s " + "".join(f"{name:>22}" for name in names))
    for phase in results["rates"]:
        path = phase.get("path_ms") or {}
        cells = [
            f"{_ms(path[n]['p50'])} / {_ms(path[n]['p90'])}" if n in path else "-" for n in names
        ]
        lines.append(f"  {phase['rate']:6.0f} " + "".join(f"{c:>22}" for c in cells))
    return lines


def _throughput(results: dict[str, Any]) -> list[str]:
    if not results["throughput"]:
        return []
    floors = {f["concurrency"]: f for f in results["floors"]["postgres_insert_commit"]}
    lite = results["floors"].get("sqlite_insert_commit")
    lines = [
        "",
        "Intake alone, closed loop (router and rumor_control stopped; "
        f"{results.get('intake_workers', 1)} intake worker process(es))",
        "  (of floor: the share of the first floor sample; of median: of the median of"
        " every sample)",
        "  clients  notices/s  of floor  of median   p50 ms   p99 ms  CPU ms/notice intake"
        "  pg   stmts",
    ]
    for run in results["throughput"]:
        # On SQLite every client shares the one writer: its floor is the same at any c.
        floor = (lite or floors.get(run["concurrency"], {})).get("commits_per_s")
        share = run["notices_per_s"] / floor * 100 if floor else None
        cpu = run["cpu_ms_per_notice"]
        lines.append(
            f"  {run['concurrency']:7d} {run['notices_per_s']:10.0f} {_num(share):>8}%"
            f" {_num(run.get('share_of_floor_median_pct')):>9}%"
            f" {_ms(run['http_ms']['p50']):>8} {_ms(run['http_ms']['p99']):>8}"
            f" {_num(cpu.get('intake')):>21} {_num(cpu.get('postgres')):>4}"
            f" {_num(run['statements_per_notice']):>7}"
        )
    return lines


def ratio(system: float | None, floor: float | None) -> float | None:
    """How many times the floor's figure the system's is (None without both)."""
    return system / floor if system is not None and floor else None


def _times(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}x"


def _cells(values: list[float | None], digits: int = 1, suffix: str = "") -> str:
    return "".join(f"{('-' if v is None else f'{v:.{digits}f}{suffix}'):>14}" for v in values)


def pipeline_rows(system: dict[str, Any] | None, floor: dict[str, Any]) -> list[str]:
    """One rate's CPU per notice: the system's, the floor's, and system / floor per process
    (the floor's alone when the system was not measured)."""
    its = [floor["cpu_ms_per_notice"].get(p) for p in _PROCESSES]
    its.append(floor.get("cpu_ms_per_notice_total"))
    if system is None:
        return [f"  {floor['rate']:6.0f} floor       " + _cells(its)]
    ours = [system["cpu_ms_per_notice"].get(p) for p in _PROCESSES]
    ours.append(system.get("cpu_ms_per_notice_total"))
    ratios = [ratio(a, b) for a, b in zip(ours, its, strict=True)]
    return [
        f"  {system['rate']:6.0f} system      " + _cells(ours),
        "         floor       " + _cells(its),
        "         system/floor" + _cells(ratios, 1, "x"),
    ]


def _pipeline(results: dict[str, Any]) -> list[str]:
    """The pipeline floor (pipeline_floor.py) beside the system's rate phases."""
    floor = results["floors"].get("pipeline")
    if not floor:
        return []
    systems = {phase["rate"]: phase for phase in results["rates"]}
    pairs = [(systems.get(its["rate"]), its) for its in floor["rates"]]
    lines = [
        "",
        "Pipeline floor (pipeline_floor.py: the notice's hops and nothing else; same broker "
        "and database, services stopped)",
        "  rate/s  sent  deliv  late   p50 ms  system p50  system/floor",
    ]
    for system, its in pairs:
        p50 = its["e2e_ms"]["p50"]
        ours = None if system is None else system["e2e_ms"]["p50"]
        lines.append(
            f"  {its['rate']:6.0f} {its['sent']:5d} {its['delivered']:6d} {its['late']:5d}"
            f" {_ms(p50):>8} {_ms(ours):>11} {_times(ratio(ours, p50)):>13}"
        )
    lines += [
        "  CPU ms per notice (the floor's front, relay and project under intake, router "
        "and rumor_control)",
        "  rate/s             " + "".join(f"{p:>14}" for p in _PROCESSES) + "         total",
    ]
    for system, its in pairs:
        lines += pipeline_rows(system, its)
    kernel = [
        f"{its['rate']:g}/s {_num((system or {}).get('kernel_ms_per_notice_total'))}"
        f" / {_num(its.get('kernel_ms_per_notice_total'))}"
        for system, its in pairs
    ]
    lines.append("  of it in the kernel (stime), system / floor: " + "; ".join(kernel))
    if any(its.get("wakes_per_notice_total") is not None for _, its in pairs):
        woken = [
            f"{its['rate']:g}/s {_num((system or {}).get('wakes_per_notice_total'))}"
            f" / {_num(its.get('wakes_per_notice_total'))}"
            for system, its in pairs
        ]
        lines.append("  wakes per notice, system / floor: " + "; ".join(woken))
    idle = floor.get("idle_cpu_ms_per_s") or {}
    lines.append(
        "  the floor's CPU ms per second with no load: "
        + ", ".join(f"{p} {_num(idle.get(p))}" for p in _PROCESSES)
    )
    return lines


def _sqlite(results: dict[str, Any]) -> bool:
    return bool(results.get("infra", {}).get("backend") == "sqlite")


def render(results: dict[str, Any]) -> str:
    """Floors, per-rate latency, CPU and statements, intake throughput, and the targets
    this run measured (met or not), as text."""
    head = _head(results)
    return "\n".join(
        [
            *head,
            "",
            *_floors(results),
            *_rates(results),
            *_pipeline(results),
            *_throughput(results),
            *render_targets(results),
        ]
    )


def _head(results: dict[str, Any]) -> list[str]:
    """The run's commit, kind and back end, and how it was warmed up."""
    backend = "SQLite" if _sqlite(results) else "PostgreSQL"
    run = "short" if results["short"] else "full"
    head = [f"Aviso hot path @ {results['commit']} ({run} run, {backend})"]
    build = results.get("machine", {}).get("python_build")
    if build:  # runs before the twenty-fourth round did not record it
        head.append(describe(build))
    plan = results.get("plan", {})
    if "warm_up_s" in plan:
        head.append(
            f"warmed up {plan['warm_up_s']:g} s at {plan['warm_up_rate']:g} notices/s; "
            f"the broker's extra JVM flags: {results.get('kafka_jvm_opts') or 'none'}"
        )
    vacuum = results.get("after_warm_up") or {}
    if vacuum:
        settled = "done" if vacuum["autovacuum_quiet"] else "still running when measuring began"
        head.append(
            f"then VACUUM took {vacuum['vacuum_s']:g} s; autovacuum waited for "
            f"{vacuum['autovacuum_wait_s']:g} s ({settled})"
        )
    return head
