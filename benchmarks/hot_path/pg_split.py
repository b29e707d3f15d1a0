"""PostgreSQL's CPU in a phase, split by what each of its processes is.

PostgreSQL forks a process per connection and per background task. Each one's CPU
(/proc/<pid>/stat utime + stime) is sampled every `interval_s` while the phase runs and
put under a label:

- a client backend: `<role>/pool` or `<role>/listener` (the outbox relay's wake-up
  connection: named after its channel, or its last statement a `LISTEN`), `<role>`
  from `pg_stat_activity.usename` (the bench runs one role per service; the bench's
  own connections are the cluster's superuser, `bench`);
- a background process: its `backend_type` (walwriter, checkpointer, background writer,
  autovacuum launcher, autovacuum worker, logical replication launcher, ...);
- `postmaster`: the server's own process.

A process that ends during the phase (a pool's connection recycled, an autovacuum
worker) is reaped by the postmaster, whose `cutime + cstime` grows by its whole
lifetime's CPU: what was seen of it is under its label, and the rest (its ticks before
the phase, after the last sample, or all of a process never sampled) is `reaped, unseen`,
so the split adds up to the phase's PostgreSQL total. Labels of new processes come from
one `pg_stat_activity` read when a new pid shows up (at most every `interval_s`), over a
connection of the bench's own (`bench`).

Beside the CPU: the listening connections per role, and per role the calls of its
statements that hold a `pg_notify` (pg_stat_statements: an upper bound of the NOTIFYs
sent, as the outbox's NOTIFY is skipped while no other process listens), and the
planning and execution time the server spent on them (`--pg-statements planning` turns
pg_stat_statements.track_planning on in the bench's own cluster).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from benchmarks.hot_path.infra import SERVICE_ROLES, Infra, _children, _ticks

__all__ = [
    "PgCpuSplit",
    "pg_activity",
    "render_split",
    "statement_costs",
    "tune_roles",
    "tune_statements",
]

_TICKS_PER_S = os.sysconf("SC_CLK_TCK")
_ACTIVITY = (
    "SELECT pid, coalesce(usename, '') AS usename, coalesce(backend_type, '') AS backend_type,"
    " coalesce(query, '') AS query, coalesce(application_name, '') AS application_name"
    " FROM pg_stat_activity"
)
REAPED = "reaped, unseen"


def _label(row: asyncpg.Record, superuser: str) -> str:
    kind = row["backend_type"]
    if kind != "client backend":
        return kind or "unknown"
    role = "bench" if row["usename"] == superuser else row["usename"]
    # The relay's LISTEN connection: named after its channel (outbox/peers.py), or, in
    # versions before that, a connection whose last statement was its LISTEN.
    listening = row["application_name"].startswith("aviso_outbox_") or (
        row["query"].lstrip().upper().startswith("LISTEN")
    )
    return f"{role}/{'listener' if listening else 'pool'}"


@dataclass
class _Seen:
    label: str
    first: int  # ticks at the first sample (0 for a process born during the phase)
    last: int


@dataclass
class PgCpuSplit:
    """Samples the PostgreSQL processes under `postmaster_pid` until `stop`."""

    infra: Infra
    postmaster_pid: int
    interval_s: float = 0.25
    _seen: dict[int, _Seen] = field(default_factory=dict)
    _reaped_at_start: int = 0
    _own_at_start: int = 0
    _task: asyncio.Task[None] | None = None
    _conn: Any = None
    _superuser: str = ""
    _listeners: dict[str, int] = field(default_factory=dict)

    async def start(self) -> None:
        """First sample (every live process labelled), then sample in the background."""
        self._conn = await asyncpg.connect(self.infra.dsn())
        self._superuser = str(await self._conn.fetchval("SELECT current_user"))
        fields = self._postmaster_ticks()
        self._own_at_start, self._reaped_at_start = fields
        await self._sample(first=True)
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            await self._sample(first=False)

    def _postmaster_ticks(self) -> tuple[int, int]:
        own = _ticks(self.postmaster_pid)
        return own, _ticks(self.postmaster_pid, with_children=True) - own

    async def _sample(self, *, first: bool) -> None:
        live = {pid: _ticks(pid) for pid in _children(self.postmaster_pid)}
        # A backend may show in /proc before pg_stat_activity lists it: label it later.
        new = [pid for pid in live if pid not in self._seen or self._seen[pid].label == "unknown"]
        labels: dict[int, str] = {}
        if new:
            rows = await self._conn.fetch(_ACTIVITY)
            labels = {row["pid"]: _label(row, self._superuser) for row in rows}
            self._listeners = _count_listeners(rows, self._superuser)
        for pid, ticks in live.items():
            seen = self._seen.get(pid)
            if seen is not None and seen.label == "unknown" and pid in labels:
                seen.label = labels[pid]
            if seen is None:
                label = labels.get(pid, "unknown")
                self._seen[pid] = _Seen(label, ticks if first else 0, ticks)
            elif ticks >= seen.last:
                seen.last = ticks

    async def stop(self) -> dict[str, Any]:
        """The phase's split: CPU ms per label, the total, and listeners per role."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._sample(first=False)
        own, reaped = self._postmaster_ticks()
        live = set(_children(self.postmaster_pid))
        ticks: dict[str, int] = {"postmaster": own - self._own_at_start}
        busy: dict[str, int] = {}
        reaped_seen = 0
        for pid, seen in self._seen.items():
            ticks[seen.label] = ticks.get(seen.label, 0) + seen.last - seen.first
            if seen.last > seen.first:
                busy[seen.label] = busy.get(seen.label, 0) + 1
            if pid not in live:
                reaped_seen += seen.last
        ticks[REAPED] = max(0, reaped - self._reaped_at_start - reaped_seen)
        listeners = dict(self._listeners)
        with contextlib.suppress(Exception):
            await self._conn.close()
        ms = {label: t * 1000.0 / _TICKS_PER_S for label, t in ticks.items() if t}
        return {
            "cpu_ms": ms,
            "total_ms": sum(ms.values()),
            "listeners": listeners,
            # Processes of each label that spent CPU in the phase (a pool's busy connections).
            "processes_busy": busy,
        }


def _count_listeners(rows: list[asyncpg.Record], superuser: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for row in rows:
        label = _label(row, superuser)
        if label.endswith("/listener"):
            role = label.split("/", 1)[0]
            counts[role] = counts.get(role, 0) + 1
    return counts


async def pg_activity(infra: Infra) -> list[dict[str, Any]]:
    """Every PostgreSQL process now, labelled as the split labels it (for the JSON)."""
    conn = await asyncpg.connect(infra.dsn())
    try:
        superuser = str(await conn.fetchval("SELECT current_user"))
        rows = await conn.fetch(_ACTIVITY)
    finally:
        await conn.close()
    return [{"pid": row["pid"], "label": _label(row, superuser)} for row in rows]


async def tune_statements(infra: Infra, *, mode: str) -> None:
    """pg_stat_statements `on` (counting), `planning` (planning timed too) or `off`.

    Set every run (ALTER SYSTEM outlives it in the bench's cluster), so a run with
    planning timed, which costs the server a little, leaves none behind it."""
    if not infra.pg_stat_statements:
        return
    track = "none" if mode == "off" else "top"
    planning = "on" if mode == "planning" else "off"
    conn = await asyncpg.connect(infra.dsn())
    try:
        await conn.execute(f"ALTER SYSTEM SET pg_stat_statements.track = '{track}'")
        await conn.execute(f"ALTER SYSTEM SET pg_stat_statements.track_planning = {planning}")
        await conn.execute("SELECT pg_reload_conf()")
    finally:
        await conn.close()


async def tune_roles(infra: Infra, settings: list[str]) -> None:
    """`name=value` settings for every service role (ALTER ROLE ... SET), or none: each run
    resets what an earlier run set (roles outlive runs in the bench's cluster)."""
    if not infra.service_roles:
        return
    conn = await asyncpg.connect(infra.dsn())
    try:
        for role in SERVICE_ROLES:
            await conn.execute(f'ALTER ROLE "{role}" RESET ALL')
            for setting in settings:
                name, value = setting.split("=", 1)
                await conn.execute(f'ALTER ROLE "{role}" SET {name} = {value}')
    finally:
        await conn.close()


async def statement_costs(infra: Infra) -> dict[str, dict[str, Any]]:
    """Per role since the last reset: NOTIFY-sending statement calls, plans, and the
    server's planning and execution ms (pg_stat_statements)."""
    if not infra.pg_stat_statements:
        return {}
    conn = await asyncpg.connect(infra.dsn())
    try:
        rows = await conn.fetch(
            "SELECT r.rolname AS role,"
            " sum(s.calls) FILTER (WHERE s.query ILIKE '%pg_notify%')::float8 AS notify_statements,"
            " sum(s.plans)::float8 AS plans, sum(s.calls)::float8 AS calls,"
            " sum(s.total_plan_time)::float8 AS plan_ms, sum(s.total_exec_time)::float8 AS exec_ms"
            " FROM pg_stat_statements s JOIN pg_roles r ON r.oid = s.userid GROUP BY r.rolname"
        )
        planned = await conn.fetch(
            "SELECT r.rolname AS role, s.calls, s.plans, s.total_plan_time AS plan_ms,"
            " left(s.query, 120) AS query FROM pg_stat_statements s"
            " JOIN pg_roles r ON r.oid = s.userid ORDER BY s.total_plan_time DESC LIMIT 15"
        )
    finally:
        await conn.close()
    costs: dict[str, dict[str, Any]] = {
        row["role"]: {
            k: float(row[k] or 0.0)
            for k in ("notify_statements", "plans", "calls", "plan_ms", "exec_ms")
        }
        for row in rows
    }
    for row in planned:
        costs.setdefault(row["role"], {}).setdefault("most_planned", []).append(
            {
                "calls": int(row["calls"]),
                "plans": int(row["plans"]),
                "plan_ms": round(float(row["plan_ms"]), 3),
                "query": " ".join(row["query"].split()),
            }
        )
    return costs


def render_split(phases: list[dict[str, Any]]) -> list[str]:
    """PostgreSQL's CPU per notice by label, one column per phase, largest first."""
    split: list[tuple[float, dict[str, Any]]] = [
        (p["rate"], p["pg_split"]) for p in phases if p.get("pg_split")
    ]
    if not split:
        return []
    totals: dict[str, float] = {}
    for _, s in split:
        for label, ms in s["cpu_ms_per_notice"].items():
            totals[label] = totals.get(label, 0.0) + ms
    labels = sorted(totals, key=lambda k: -totals[k])
    lines = ["", "PostgreSQL CPU ms per notice by process (pg_split.py)"]
    lines.append("  " + f"{'process':<32}" + "".join(f"{f'{r:g}/s':>10}" for r, _ in split))
    for label in labels:
        cells = "".join(f"{s['cpu_ms_per_notice'].get(label, 0.0):>10.2f}" for _, s in split)
        lines.append(f"  {label:<32}{cells}")
    total = "".join(f"{s['total_ms_per_notice']:>10.2f}" for _, s in split)
    lines.append(f"  {'total':<32}{total}")
    for rate, s in split:
        costs = s.get("statements") or {}
        lines.append(
            f"  {rate:g}/s: listeners {s['listeners']}; busy {s.get('processes_busy', {})};"
            " per notice "
            + "; ".join(
                f"{role} NOTIFY-bearing statements {c.get('notify_statements', 0.0):.2f} "
                f"plans {c['plans']:.2f} "
                f"plan {c['plan_ms']:.3f} ms exec {c['exec_ms']:.3f} ms"
                for role, c in sorted(costs.items())
            )
        )
    return lines
