"""PostgreSQL's CPU split by process in `make bench` (benchmarks/hot_path/pg_split.py)."""

from __future__ import annotations

from typing import Any

import pytest

from benchmarks.hot_path import pg_split
from benchmarks.hot_path.infra import Infra

POSTMASTER = 100


def _row(pid: int, user: str, kind: str, query: str = "", app: str = "") -> dict[str, Any]:
    return {
        "pid": pid,
        "usename": user,
        "backend_type": kind,
        "query": query,
        "application_name": app,
    }


class FakeConnection:
    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.rows = rows

    async def fetchval(self, _sql: str) -> str:
        return "postgres"

    async def fetch(self, _sql: str) -> list[dict[str, Any]]:
        return self.rows

    async def close(self) -> None:
        return None


class FakeProcesses:
    """Ticks of the postmaster (own, reaped children's) and of its live children."""

    def __init__(self) -> None:
        self.own = 0
        self.reaped = 0
        self.children: dict[int, int] = {}

    def ticks(self, pid: int, *, with_children: bool = False) -> int:
        if pid == POSTMASTER:
            return self.own + (self.reaped if with_children else 0)
        return self.children.get(pid, 0)

    def live(self, _pid: int) -> list[int]:
        return list(self.children)

    def end(self, pid: int) -> None:
        self.reaped += self.children.pop(pid)


def test_backends_are_labelled_by_role_and_kind() -> None:
    label = pg_split._label
    assert label(_row(1, "router", "client backend", "COMMIT", "router"), "postgres") == (
        "router/pool"
    )
    named = _row(2, "router", "client backend", "SELECT count(*)", "aviso_outbox_router")
    assert label(named, "postgres") == "router/listener"
    older = _row(3, "intake", "client backend", 'LISTEN "aviso_outbox_intake"')
    assert label(older, "postgres") == "intake/listener"
    assert label(_row(4, "postgres", "client backend", "SELECT 1"), "postgres") == "bench/pool"
    assert label(_row(5, "", "autovacuum worker"), "postgres") == "autovacuum worker"


async def test_the_split_adds_up_with_processes_that_ended_in_the_phase(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    procs = FakeProcesses()
    procs.own, procs.reaped = 5, 1_000
    procs.children = {11: 40, 12: 7, 13: 3}
    rows = [
        _row(11, "router", "client backend", "COMMIT", "router"),
        _row(12, "", "walwriter"),
        _row(13, "router", "client backend", "", "aviso_outbox_router"),
    ]
    connection = FakeConnection(rows)

    async def connect(_dsn: str) -> FakeConnection:
        return connection

    monkeypatch.setattr(pg_split, "_ticks", procs.ticks)
    monkeypatch.setattr(pg_split, "_children", procs.live)
    monkeypatch.setattr(pg_split.asyncpg, "connect", connect)
    infra = Infra("127.0.0.1:1", "postgresql://postgres@127.0.0.1:1/x", own=False, state_dir=None)  # type: ignore[arg-type]
    split = pg_split.PgCpuSplit(infra, POSTMASTER, interval_s=3600)
    await split.start()

    procs.own += 2
    procs.children[11] += 30  # a pool connection
    procs.children[12] += 4  # the walwriter
    procs.children[14] = 20  # an autovacuum worker starts...
    rows.append(_row(14, "", "autovacuum worker"))
    await split._sample(first=False)
    procs.children[14] += 5  # ...works a little more after the last sample, and ends
    procs.end(14)
    procs.children[11] += 10
    procs.children[15] = 6  # a backend that came and went between two samples
    procs.end(15)
    done = await split.stop()

    ticks_ms = 1000.0 / pg_split._TICKS_PER_S
    assert done["cpu_ms"] == {
        "postmaster": 2 * ticks_ms,
        "router/pool": 40 * ticks_ms,
        "walwriter": 4 * ticks_ms,
        "autovacuum worker": 20 * ticks_ms,
        pg_split.REAPED: (5 + 6) * ticks_ms,
    }
    assert done["total_ms"] == pytest.approx(77 * ticks_ms)
    assert done["listeners"] == {"router": 1}
    assert done["processes_busy"] == {"router/pool": 1, "walwriter": 1, "autovacuum worker": 1}


def test_the_split_is_rendered_per_phase() -> None:
    phase = {
        "rate": 10.0,
        "pg_split": {
            "cpu_ms_per_notice": {"router/pool": 2.5, "walwriter": 0.1},
            "total_ms_per_notice": 2.6,
            "listeners": {"router": 1},
            "statements": {
                "router": {"notify_statements": 0.0, "plans": 0.1, "plan_ms": 0.01, "exec_ms": 1.0}
            },
        },
    }
    text = "\n".join(pg_split.render_split([phase]))
    assert "router/pool" in text
    assert "2.50" in text
    assert text.index("router/pool") < text.index("walwriter")
    assert "router NOTIFY-bearing statements 0.00" in text
