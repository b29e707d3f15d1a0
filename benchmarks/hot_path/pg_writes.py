"""What PostgreSQL writes in a phase: WAL, rows per table, index entries, index scans.

CPU (pg_split.py) says how long the server worked; this says on what it wrote, which is
what a durable server pays for again in WAL flushes, checkpoints and vacuum:

- WAL: `pg_stat_wal` before and after the phase (records, full-page images, bytes), and
  per role and per statement from pg_stat_statements (`wal_bytes`, `wal_records`,
  `wal_fpi`, `shared_blks_dirtied`, `shared_blks_written`, `rows`). The bench's cluster
  runs with `full_page_writes=off` (`--fast`), so its full-page images are 0: a durable
  server adds one per page first touched after each checkpoint.
- Rows: `pg_stat_user_tables` inserts, updates (and how many were HOT: no index entry
  written), deletes per table; index entries written are counted from the WAL per index
  where pg_walinspect is available (wal_entries.py: a partial index gets none for a row
  outside its predicate), else estimated as (inserts + non-HOT updates) x the table's
  indexes (a HOT update writes none; a non-HOT one writes into every index).
- Index scans per index in the phase (`pg_stat_user_indexes.idx_scan`): an index of a
  written table that no statement of the hot path scans is a cost with no reader here
  (it may still have one elsewhere: a listing, a sweep, a uniqueness it enforces).
- Row shape of the written tables at the phase's end: live rows, heap, TOAST and index
  bytes, the average row width over up to 1,000 rows (`pg_column_size`) and its columns
  of 64 bytes or more (a JSON copy of a notice shows here).

The statistics of other backends reach the views when they go idle (at most once a
second on PostgreSQL 15), so the phase's end is read after a short pause.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url

from benchmarks.hot_path.infra import Infra
from benchmarks.hot_path.wal_entries import entries_by_index, wal_position

__all__ = ["PgWrites", "render_writes"]

_TABLES = (
    "SELECT schemaname || '.' || relname AS name, n_tup_ins, n_tup_upd, n_tup_hot_upd,"
    " n_tup_del FROM pg_stat_user_tables"
)
_INDEXES = (
    "SELECT schemaname || '.' || relname AS tab, indexrelname AS name, idx_scan"
    " FROM pg_stat_user_indexes"
)
_WAL = "SELECT wal_records, wal_fpi, wal_bytes::float8 AS wal_bytes FROM pg_stat_wal"
_BY_ROLE = (
    "SELECT r.rolname AS role, sum(s.wal_bytes)::float8 AS wal_bytes,"
    " sum(s.wal_records)::float8 AS wal_records, sum(s.wal_fpi)::float8 AS wal_fpi,"
    " sum(s.shared_blks_dirtied)::float8 AS blks_dirtied,"
    " sum(s.shared_blks_written)::float8 AS blks_written, sum(s.rows)::float8 AS rows"
    " FROM pg_stat_statements s JOIN pg_roles r ON r.oid = s.userid GROUP BY r.rolname"
)
_TOP = (
    "SELECT r.rolname AS role, s.calls, s.rows, s.wal_bytes::float8 AS wal_bytes,"
    " s.wal_records, s.wal_fpi, s.shared_blks_dirtied AS blks_dirtied,"
    " s.mean_exec_time AS mean_exec_ms, left(s.query, 140) AS query"
    " FROM pg_stat_statements s JOIN pg_roles r ON r.oid = s.userid"
    " WHERE s.wal_bytes > 0 ORDER BY s.wal_bytes DESC LIMIT 15"
)
_SHAPE = (
    "SELECT pg_relation_size(c.oid) AS heap, coalesce(pg_total_relation_size(c.reltoastrelid),"
    " 0) AS toast, pg_indexes_size(c.oid) AS indexes, c.relpages, c.reltuples"
    " FROM pg_class c WHERE c.oid = $1::regclass"
)
_FLUSH_PAUSE_S = 1.2
# A table's inserts, updates, HOT updates and deletes.
_Counts = tuple[int, int, int, int]


@dataclass
class PgWrites:
    """Counters at a phase's start; `stop` gives the phase's writes per notice."""

    infra: Infra
    _tables: dict[str, _Counts] = field(default_factory=dict)
    _indexes: dict[tuple[str, str], int] = field(default_factory=dict)
    _wal: tuple[float, ...] = ()
    _lsn: str | None = None

    def _dsn(self) -> str:
        # The services' database (the table views are per database), not the admin one.
        url = make_url(self.infra.database_url).set(drivername="postgresql")
        return url.render_as_string(hide_password=False)

    async def start(self) -> None:
        """Read the counters the phase will be measured against."""
        conn = await asyncpg.connect(self._dsn())
        try:
            self._tables, self._indexes, self._wal = await _counters(conn)
        finally:
            await conn.close()
        self._lsn = await wal_position(self.infra.dsn())

    async def stop(self, notices: int) -> dict[str, Any]:
        """The phase's WAL, rows and index work per notice, and the written tables' shape."""
        await asyncio.sleep(_FLUSH_PAUSE_S)
        conn = await asyncpg.connect(self._dsn())
        try:
            tables, indexes, wal = await _counters(conn)
            written = _table_deltas(self._tables, tables, indexes, self._indexes)
            for name, row in written.items():
                row.update(await _shape(conn, name))
        finally:
            await conn.close()
        if self._lsn is not None:
            counted = await entries_by_index(self.infra.dsn(), self._dsn(), self._lsn)
            if counted is not None:
                _use_counted(written, counted)
        by_role: list[Any] = []
        top: list[Any] = []
        if self.infra.pg_stat_statements:
            # pg_stat_statements is installed in the administrative database.
            conn = await asyncpg.connect(self.infra.dsn())
            try:
                by_role, top = await conn.fetch(_BY_ROLE), await conn.fetch(_TOP)
            finally:
                await conn.close()
        n = float(notices or 1)
        return {
            "wal": {
                k: (after - before) / n
                for k, before, after in zip(_WAL_KEYS, self._wal, wal, strict=True)
            },
            "by_role": {
                row["role"]: {k: float(row[k] or 0.0) / n for k in _ROLE_KEYS} for row in by_role
            },
            "top_statements": [
                {
                    "role": row["role"],
                    "calls": int(row["calls"]),
                    "rows": int(row["rows"]),
                    "wal_bytes_per_call": float(row["wal_bytes"]) / max(1, row["calls"]),
                    "wal_records_per_call": float(row["wal_records"]) / max(1, row["calls"]),
                    "wal_fpi": int(row["wal_fpi"]),
                    "blks_dirtied": int(row["blks_dirtied"]),
                    "mean_exec_ms": round(float(row["mean_exec_ms"]), 3),
                    "query": " ".join(row["query"].split()),
                }
                for row in top
            ],
            "tables": {name: _per_notice(row, n) for name, row in written.items()},
        }


_WAL_KEYS = ("wal_records", "wal_fpi", "wal_bytes")
_ROLE_KEYS = ("wal_bytes", "wal_records", "wal_fpi", "blks_dirtied", "blks_written", "rows")
_COUNTED = ("inserts", "updates", "hot_updates", "deletes", "index_entries")


async def _counters(
    conn: Any,
) -> tuple[dict[str, _Counts], dict[tuple[str, str], int], tuple[float, ...]]:
    tables = {
        row["name"]: (row["n_tup_ins"], row["n_tup_upd"], row["n_tup_hot_upd"], row["n_tup_del"])
        for row in await conn.fetch(_TABLES)
    }
    indexes = {
        (row["tab"], row["name"]): int(row["idx_scan"]) for row in await conn.fetch(_INDEXES)
    }
    wal = await conn.fetchrow(_WAL)
    return tables, indexes, tuple(float(wal[k]) for k in _WAL_KEYS)


def _table_deltas(
    before: dict[str, _Counts],
    after: dict[str, _Counts],
    indexes: dict[tuple[str, str], int],
    indexes_before: dict[tuple[str, str], int],
) -> dict[str, dict[str, Any]]:
    """Tables written in the phase, with their indexes' scans in it."""
    written: dict[str, dict[str, Any]] = {}
    for name, now in after.items():
        then = before.get(name, (0, 0, 0, 0))
        ins, upd, hot, dele = (a - b for a, b in zip(now, then, strict=True))
        if not (ins or upd or dele):
            continue
        scans = {
            index: count - indexes_before.get((tab, index), 0)
            for (tab, index), count in indexes.items()
            if tab == name
        }
        written[name] = {
            "inserts": ins,
            "updates": upd,
            "hot_updates": hot,
            "deletes": dele,
            "index_entries": (ins + upd - hot) * len(scans),
            "index_scans": scans,
        }
    return written


def _use_counted(written: dict[str, dict[str, Any]], counted: dict[tuple[str, str], int]) -> None:
    """The tables' index entries as counted in the WAL, in place of the estimate."""
    for name, row in written.items():
        per_index = {ix: counted.get((name, ix), 0) for ix in row["index_scans"]}
        row["index_entries"] = sum(per_index.values())
        row["index_entries_by_index"] = per_index
        row["index_entries_counted"] = True


async def _shape(conn: Any, name: str) -> dict[str, Any]:
    # The name comes from pg_stat_user_tables (the server's own catalogue), quoted.
    schema, table = (part.replace('"', '""') for part in name.split(".", 1))
    qualified = f'"{schema}"."{table}"'
    row = await conn.fetchrow(_SHAPE, qualified)
    width = await conn.fetchval(
        "SELECT avg(pg_column_size(t.*))::float8"  # noqa: S608
        f" FROM (SELECT * FROM {qualified} LIMIT 1000) t"
    )
    live = await conn.fetchval(f"SELECT count(*) FROM {qualified}")  # noqa: S608
    return {
        "wide_columns": await _wide_columns(conn, qualified, schema, table),
        "live_rows": int(live),
        "heap_bytes": int(row["heap"]),
        "toast_bytes": int(row["toast"]),
        "index_bytes": int(row["indexes"]),
        "row_width": round(float(width or 0.0), 1),
    }


async def _wide_columns(conn: Any, qualified: str, schema: str, table: str) -> dict[str, float]:
    """Columns of 64 bytes or more on average (as stored: compressed or a TOAST pointer)."""
    names = [
        row["column_name"]
        for row in await conn.fetch(
            "SELECT column_name FROM information_schema.columns"
            " WHERE table_schema = $1 AND table_name = $2 ORDER BY ordinal_position",
            schema,
            table,
        )
    ]
    if not names:
        return {}
    sizes = ", ".join(
        f'avg(pg_column_size("{n.replace(chr(34), chr(34) * 2)}"))::float8' for n in names
    )
    row = await conn.fetchrow(
        f"SELECT {sizes} FROM (SELECT * FROM {qualified} LIMIT 1000) t"  # noqa: S608
    )
    return {n: round(float(v), 1) for n, v in zip(names, row, strict=True) if v and v >= 64}


def _per_notice(row: dict[str, Any], n: float) -> dict[str, Any]:
    per = {f"{k}_per_notice": row[k] / n for k in _COUNTED}
    if "index_entries_by_index" in row:
        per["index_entries_by_index_per_notice"] = {
            ix: entries / n for ix, entries in row["index_entries_by_index"].items()
        }
    return {**row, **per}


def render_writes(phases: list[dict[str, Any]]) -> list[str]:
    """WAL per notice by role, and per table its rows, index entries and unscanned indexes."""
    lines: list[str] = []
    for phase in phases:
        writes = phase.get("pg_writes")
        if not writes:
            continue
        wal = writes["wal"]
        lines += [
            "",
            f"PostgreSQL writes per notice at {phase['rate']:g}/s (pg_writes.py): WAL "
            f"{wal['wal_bytes']:.0f} B in {wal['wal_records']:.1f} records, "
            f"{wal['wal_fpi']:.2f} full-page images",
        ]
        for role, c in sorted(writes["by_role"].items()):
            lines.append(
                f"  {role:<14} WAL {c['wal_bytes']:7.0f} B {c['wal_records']:5.1f} rec "
                f"dirtied {c['blks_dirtied']:5.2f} blocks, rows {c['rows']:5.1f}"
            )
        lines.append(
            f"  {'table':<36}{'ins':>6}{'upd':>6}{'hot':>6}{'del':>6}{'idx':>4}{'ix ent':>7}"
            f"{'width':>7}{'toast kB':>9}  indexes not scanned"
        )
        for name, t in sorted(writes["tables"].items()):
            unscanned = [ix for ix, scans in t["index_scans"].items() if not scans]
            lines.append(
                f"  {name:<36}{t['inserts_per_notice']:6.2f}{t['updates_per_notice']:6.2f}"
                f"{t['hot_updates_per_notice']:6.2f}{t['deletes_per_notice']:6.2f}"
                f"{len(t['index_scans']):4d}{t['index_entries_per_notice']:7.2f}"
                f"{t['row_width']:7.0f}{t['toast_bytes'] / 1024:9.0f}  {', '.join(unscanned)}"
            )
        lines += _entries_lines(writes["tables"])
    last = next((p["pg_writes"] for p in reversed(phases) if p.get("pg_writes")), None)
    if last:
        lines.append(
            "  columns of 64 B or more, average bytes as stored (the last phase's tables):"
        )
        for name, t in sorted(last["tables"].items()):
            if t.get("wide_columns"):
                wide = ", ".join(f"{c} {b:.0f}" for c, b in t["wide_columns"].items())
                lines.append(f"    {name}: {wide}")
    return lines


def _entries_lines(tables: dict[str, Any]) -> list[str]:
    """Entries per notice per index, where they were counted from the WAL."""
    counted = {n: t for n, t in tables.items() if t.get("index_entries_counted")}
    if not counted:
        return ["  (index entries estimated: pg_walinspect not available)"]
    lines = ["  index entries per notice, counted from the WAL (wal_entries.py):"]
    for name, t in sorted(counted.items()):
        per_index = sorted(t["index_entries_by_index_per_notice"].items())
        lines.append(f"    {name}: " + ", ".join(f"{ix} {n:.2f}" for ix, n in per_index))
    return lines
