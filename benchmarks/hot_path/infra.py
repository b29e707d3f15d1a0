"""The benchmark's Kafka and PostgreSQL (or SQLite), and the CPU each process spends.

Kafka and PostgreSQL come from the environment when KAFKA_BOOTSTRAP_SERVERS and
DATABASE_URL are set (deploy.local starts nothing then; a broker with history makes the
services' new consumer groups replay it first), otherwise the benchmark starts its own
under var/bench/stack on free ports (a new broker each run) and stops them at the end.
Either way the services get a new database of their own. Its own cluster
loads pg_stat_statements (a restart after ALTER SYSTEM), so statements are counted by
the server; each service connects as a role of its own, so they are counted per service.

CPU comes from /proc/<pid>/stat (utime + stime, in clock ticks). PostgreSQL forks a
backend per connection: its CPU is the postmaster's own and its reaped children's
(cutime + cstime) plus every live child's. The kernel's part (stime: system calls,
wake-ups, the network stack of loopback sockets) is kept apart as well.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url

from deploy.local import kafka as local_kafka
from deploy.local import postgres as local_postgres
from tests.support.infra import drop_database_async, fresh_database_async

__all__ = [
    "SERVICE_ROLES",
    "CpuSample",
    "Infra",
    "cpu_ms",
    "per_notice",
    "pid_listening_on",
    "sample_cpu",
    "statements_by_role",
    "system_total",
]

SERVICE_ROLES = ("intake", "router", "rumor_control")
_TICKS_PER_S = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name may hold spaces; everything after its closing parenthesis is fields.
    return raw[raw.rindex(")") + 2 :].split()


def _ticks(pid: int, *, with_children: bool = False) -> int:
    """Clock ticks a process has spent."""
    return _tick_pair(pid, with_children=with_children)[0]


def _tick_pair(pid: int, *, with_children: bool = False) -> tuple[int, int]:
    """(all, the kernel's) clock ticks of a process."""
    fields = _stat_fields(pid)
    if fields is None:
        return 0, 0
    # Fields from 3 on (state is index 0 here): utime 11, stime 12, cutime 13, cstime 14.
    kernel = int(fields[12]) + (int(fields[14]) if with_children else 0)
    user = int(fields[11]) + (int(fields[13]) if with_children else 0)
    return user + kernel, kernel


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


@dataclass(frozen=True)
class CpuSample:
    """(all, the kernel's) clock ticks per process name at one instant (per live child for
    a forking server)."""

    ticks: dict[str, tuple[int, int]] = field(default_factory=dict)
    children: dict[str, dict[int, tuple[int, int]]] = field(default_factory=dict)


def sample_cpu(pids: dict[str, int], *, forking: Iterable[str] = ()) -> CpuSample:
    """Ticks spent so far by each named process; `forking` ones include their children."""
    forking = set(forking)
    ticks: dict[str, tuple[int, int]] = {}
    children: dict[str, dict[int, tuple[int, int]]] = {}
    for name, pid in pids.items():
        if name in forking:
            ticks[name] = _tick_pair(pid, with_children=True)
            children[name] = {child: _tick_pair(child) for child in _children(pid)}
        else:
            ticks[name] = _tick_pair(pid)
    return CpuSample(ticks, children)


def cpu_ms(before: CpuSample, after: CpuSample, *, kernel: bool = False) -> dict[str, float]:
    """Milliseconds of CPU each process spent between two samples (`kernel`: only its
    system time)."""
    part = 1 if kernel else 0
    spent: dict[str, float] = {}
    for name, end in after.ticks.items():
        ticks = end[part] - before.ticks.get(name, end)[part]
        old = before.children.get(name, {})
        for child, child_end in after.children.get(name, {}).items():
            ticks += child_end[part] - old.get(child, (0, 0))[part]
        spent[name] = ticks * 1000.0 / _TICKS_PER_S
    return spent


def per_notice(totals: dict[str, float], notices: int) -> dict[str, float | None]:
    """Each process's figure divided by the phase's notices (None without notices)."""
    return {name: (value / notices if notices else None) for name, value in totals.items()}


def system_total(totals: dict[str, float], notices: int) -> float | None:
    """The system's processes' figure per notice, summed: the bench and its sink are not
    the system."""
    if not notices:
        return None
    return sum(v for k, v in totals.items() if k not in ("bench", "sink")) / notices


def pid_listening_on(port: int) -> int | None:
    """The pid of the process listening on TCP `port` (IPv4 or IPv6), if this user sees it."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            local, state, inode = parts[1], parts[3], parts[9]
            if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:
                inodes.add(inode)
    if not inodes:
        return None
    wanted = {f"socket:[{inode}]" for inode in inodes}
    candidates: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            for fd in (entry / "fd").iterdir():
                if os.readlink(fd) in wanted:
                    candidates.append(int(entry.name))
                    break
        except OSError:
            continue
    # A forking server's children inherit the listening socket: the parent is the lowest.
    return min(candidates) if candidates else None


@dataclass
class Infra:
    """Kafka and PostgreSQL addresses, their pids, and whether this run started them.

    `backend="sqlite"`: no PostgreSQL at all; each service keeps its own SQLite files
    under the run's var directory (the embedded default), and `database_url` is empty.
    """

    bootstrap: str
    database_url: str
    own: bool
    state_dir: Path
    pids: dict[str, int] = field(default_factory=dict)
    pg_stat_statements: bool = False
    service_roles: bool = False
    admin_url: str = ""
    backend: str = "postgresql"

    @classmethod
    def start(cls, state_dir: Path, *, backend: str = "postgresql") -> Infra:
        """Use the environment's Kafka and PostgreSQL, or start both (pg_stat_statements on)."""
        if backend == "sqlite":
            return cls._start_kafka_only(state_dir)
        own = not (os.environ.get("KAFKA_BOOTSTRAP_SERVERS") and os.environ.get("DATABASE_URL"))
        if own:
            for name in ("KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL"):
                os.environ.pop(name, None)
            # A broker without history: the services' new consumer groups start at the
            # earliest offset and would first replay every earlier run's events.
            local_kafka.stop(data_dir=state_dir / "kafka")
            shutil.rmtree(state_dir / "kafka", ignore_errors=True)
        bootstrap = local_kafka.start(port=0 if own else None, data_dir=state_dir / "kafka")
        database_url = local_postgres.start(
            port=0 if own else None, data_dir=state_dir / "postgres", fast=True
        )
        infra = cls(bootstrap, database_url, own, state_dir)
        if own and not asyncio.run(infra._preloaded()):
            asyncio.run(infra._preload_statements())
            local_postgres.stop(data_dir=state_dir / "postgres")
            infra.database_url = local_postgres.start(
                port=infra.postgres_port, data_dir=state_dir / "postgres", fast=True
            )
        infra.pg_stat_statements = asyncio.run(infra._enable_statements())
        infra.service_roles = asyncio.run(infra._create_service_roles())
        # A database of this run's own: the router keeps its directory in the database,
        # and an earlier run's would point at that run's (gone) webhook sink.
        infra.admin_url = infra.database_url
        infra.database_url = asyncio.run(fresh_database_async(infra.database_url, prefix="bench"))
        for name, port in (("kafka", infra.kafka_port), ("postgres", infra.postgres_port)):
            pid = pid_listening_on(port)
            if pid is not None:
                infra.pids[name] = pid
        return infra

    @classmethod
    def _start_kafka_only(cls, state_dir: Path) -> Infra:
        """Kafka from the environment or started here; the services on SQLite."""
        for name in ("DATABASE_URL", "AVISO_DATABASE_URL"):
            os.environ.pop(name, None)  # the services inherit this environment
        own = not os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
        if own:
            local_kafka.stop(data_dir=state_dir / "kafka")
            shutil.rmtree(state_dir / "kafka", ignore_errors=True)
        bootstrap = local_kafka.start(port=0 if own else None, data_dir=state_dir / "kafka")
        infra = cls(bootstrap, "", own, state_dir, backend="sqlite")
        pid = pid_listening_on(infra.kafka_port)
        if pid is not None:
            infra.pids["kafka"] = pid
        return infra

    def stop(self) -> None:
        """Drop the run's database; stop what this run started, not the environment's."""
        if self.admin_url:
            with contextlib.suppress(Exception):
                asyncio.run(drop_database_async(self.database_url))
        if self.own:
            local_kafka.stop(data_dir=self.state_dir / "kafka")
            if self.backend == "postgresql":
                local_postgres.stop(data_dir=self.state_dir / "postgres")

    @property
    def kafka_port(self) -> int:
        return int(self.bootstrap.split(",")[0].rsplit(":", 1)[1])

    @property
    def postgres_port(self) -> int:
        return int(make_url(self.database_url).port or 5432)

    def dsn(self, *, user: str | None = None) -> str:
        """A libpq DSN for asyncpg (the administrative database), as `user` when given."""
        url = make_url(self.admin_url or self.database_url).set(drivername="postgresql")
        if user is not None:
            url = url.set(username=user, password=None)
        return url.render_as_string(hide_password=False)

    def service_url(self, service: str) -> str | None:
        """The SQLAlchemy URL `service` connects with (its own role when there is one);
        None on SQLite (each service's own files under its var directory)."""
        if self.backend == "sqlite":
            return None
        url = make_url(self.database_url)
        if self.service_roles:
            url = url.set(username=service, password=None)
        return url.render_as_string(hide_password=False)

    async def _preloaded(self) -> bool:
        conn = await asyncpg.connect(self.dsn())
        try:
            value = await conn.fetchval("SHOW shared_preload_libraries")
        finally:
            await conn.close()
        return "pg_stat_statements" in str(value)

    async def _preload_statements(self) -> None:
        conn = await asyncpg.connect(self.dsn())
        try:
            await conn.execute("ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'")
        finally:
            await conn.close()

    async def _enable_statements(self) -> bool:
        conn = await asyncpg.connect(self.dsn())
        try:
            await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            await conn.fetchval("SELECT count(*) FROM pg_stat_statements")
        except asyncpg.PostgresError:
            return False
        finally:
            await conn.close()
        return True

    async def _create_service_roles(self) -> bool:
        conn = await asyncpg.connect(self.dsn())
        try:
            for role in SERVICE_ROLES:
                exists = await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", role)
                if not exists:
                    # Superusers: each service creates its schema and reads the token store.
                    await conn.execute(f'CREATE ROLE "{role}" LOGIN SUPERUSER')
        except asyncpg.PostgresError:
            return False
        finally:
            await conn.close()
        return True


async def statements_by_role(infra: Infra, *, reset: bool = False) -> dict[str, int]:
    """Statements executed per role since the last reset (pg_stat_statements); optionally reset."""
    if not infra.pg_stat_statements:
        return {}
    conn = await asyncpg.connect(infra.dsn())
    try:
        rows = await conn.fetch(
            "SELECT r.rolname AS role, sum(s.calls)::bigint AS calls "
            "FROM pg_stat_statements s JOIN pg_roles r ON r.oid = s.userid GROUP BY r.rolname"
        )
        if reset:
            await conn.execute("SELECT pg_stat_statements_reset()")
    finally:
        await conn.close()
    return {row["role"]: int(row["calls"]) for row in rows}


async def top_statements(infra: Infra, *, limit: int = 12) -> dict[str, list[dict[str, Any]]]:
    """Per role, the statements called most since the last reset: where the round trips go."""
    if not infra.pg_stat_statements:
        return {}
    conn = await asyncpg.connect(infra.dsn())
    try:
        rows = await conn.fetch(
            "SELECT role, calls, query FROM ("
            " SELECT r.rolname AS role, s.calls::bigint AS calls, left(s.query, 160) AS query,"
            "  row_number() OVER (PARTITION BY r.rolname ORDER BY s.calls DESC) AS n"
            " FROM pg_stat_statements s JOIN pg_roles r ON r.oid = s.userid) ranked"
            " WHERE n <= $1 ORDER BY role, calls DESC",
            limit,
        )
    finally:
        await conn.close()
    top: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        top.setdefault(row["role"], []).append(
            {"calls": int(row["calls"]), "query": " ".join(row["query"].split())}
        )
    return top


async def vacuum_and_settle(
    infra: Infra, *, timeout_s: float = 180.0, poll_s: float = 0.5
) -> dict[str, Any]:
    """VACUUM (ANALYZE) the run's database, then wait until no autovacuum worker runs.

    After a long warm-up PostgreSQL owes the dead rows of thousands of notices (deleted
    outbox rows, rewritten deliveries) to autovacuum, whose workers then run through the
    measured phases (~150 ms/s after 15,000 notices). Doing that work here, before the
    idle window, measures the system between its vacuums, as a long-running one mostly
    is. Waits at most `timeout_s` for the workers; says whether they were done.
    """
    url = make_url(infra.database_url).set(drivername="postgresql")
    began = time.monotonic()
    conn = await asyncpg.connect(url.render_as_string(hide_password=False))
    try:
        await conn.execute("VACUUM (ANALYZE)")
        vacuumed = time.monotonic()
        quiet = 0
        while quiet < 2 and time.monotonic() - vacuumed < timeout_s:
            workers = await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'autovacuum worker'"
            )
            quiet = quiet + 1 if workers == 0 else 0
            await asyncio.sleep(poll_s)
    finally:
        await conn.close()
    return {
        "vacuum_s": round(vacuumed - began, 1),
        "autovacuum_wait_s": round(time.monotonic() - vacuumed, 1),
        "autovacuum_quiet": quiet >= 2,
    }
