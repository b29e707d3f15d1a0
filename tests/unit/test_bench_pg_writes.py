"""What PostgreSQL writes per notice in `make bench` (benchmarks/hot_path/pg_writes.py)."""

from __future__ import annotations

from benchmarks.hot_path import pg_writes


def test_a_phase_counts_rows_index_entries_and_unscanned_indexes() -> None:
    before = {"router.alerts": (10, 5, 0, 0), "router.quiet": (3, 0, 0, 0)}
    after = {
        "router.alerts": (20, 15, 4, 1),
        "router.quiet": (3, 0, 0, 0),
        "router.new": (2, 0, 0, 0),
    }
    scans_before = {("router.alerts", "alerts_pkey"): 7, ("router.alerts", "ix_state"): 0}
    scans_after = {
        ("router.alerts", "alerts_pkey"): 9,
        ("router.alerts", "ix_state"): 0,
        ("router.new", "new_pkey"): 0,
    }

    written = pg_writes._table_deltas(before, after, scans_after, scans_before)

    assert set(written) == {"router.alerts", "router.new"}  # an unwritten table is left out
    alerts = written["router.alerts"]
    assert (alerts["inserts"], alerts["updates"], alerts["hot_updates"], alerts["deletes"]) == (
        10,
        10,
        4,
        1,
    )
    # Every insert and every non-HOT update writes one entry into each of the two indexes.
    assert alerts["index_entries"] == (10 + 10 - 4) * 2
    assert alerts["index_scans"] == {"alerts_pkey": 2, "ix_state": 0}
    assert written["router.new"]["index_entries"] == 2


def test_the_report_lists_unscanned_indexes_and_wide_columns() -> None:
    table = {
        "inserts": 10,
        "updates": 10,
        "hot_updates": 4,
        "deletes": 0,
        "index_entries": 32,
        "index_scans": {"alerts_pkey": 2, "ix_state": 0},
        "row_width": 1960.0,
        "toast_bytes": 8192,
        "wide_columns": {"content": 854.0, "snapshot": 825.0},
    }
    phase = {
        "rate": 10.0,
        "pg_writes": {
            "wal": {"wal_bytes": 28000.0, "wal_records": 110.0, "wal_fpi": 0.0},
            "by_role": {
                "router": {
                    "wal_bytes": 19000.0,
                    "wal_records": 74.0,
                    "wal_fpi": 0.0,
                    "blks_dirtied": 2.0,
                    "blks_written": 0.0,
                    "rows": 9.0,
                }
            },
            "top_statements": [],
            "tables": {"router.alerts": pg_writes._per_notice(table, 10.0)},
        },
    }

    lines = pg_writes.render_writes([phase])

    text = "\n".join(lines)
    assert "WAL 28000 B in 110.0 records" in text
    alerts = next(line for line in lines if "router.alerts" in line and "ix_state" in line)
    assert "alerts_pkey" not in alerts  # scanned, so not listed
    assert "3.20" in alerts  # index entries per notice
    assert "router.alerts: content 854, snapshot 825" in text


def test_entries_counted_in_the_wal_replace_the_estimate_per_index() -> None:
    # A partial index gets no entry for a row outside its predicate: the estimate (every
    # insert and non-HOT update into every index) would say 3 x 6 = 18.
    written = pg_writes._table_deltas(
        {"router.delivery_records": (0, 0, 0, 0)},
        {"router.delivery_records": (4, 2, 0, 0)},
        {("router.delivery_records", "pkey"): 0, ("router.delivery_records", "ix_due"): 5},
        {},
    )
    assert written["router.delivery_records"]["index_entries"] == 12
    written["router.delivery_records"].update(row_width=1500.0, toast_bytes=0)

    pg_writes._use_counted(written, {("router.delivery_records", "pkey"): 6,
                                     ("router.delivery_records", "ix_due"): 1,
                                     ("router.other", "pkey"): 9})  # fmt: skip

    row = pg_writes._per_notice(written["router.delivery_records"], 2.0)
    assert row["index_entries"] == 7
    assert row["index_entries_by_index_per_notice"] == {"pkey": 3.0, "ix_due": 0.5}
    phase = {
        "rate": 200.0,
        "pg_writes": {
            "wal": {"wal_bytes": 1.0, "wal_records": 1.0, "wal_fpi": 0.0},
            "by_role": {},
            "top_statements": [],
            "tables": {"router.delivery_records": row},
        },
    }
    text = "\n".join(pg_writes.render_writes([phase]))
    assert "router.delivery_records: ix_due 0.50, pkey 3.00" in text
