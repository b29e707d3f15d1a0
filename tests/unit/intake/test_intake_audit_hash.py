"""The audit entry hash covers every field and reads the same instant the same way."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta, timezone

import pytest

from services.intake.audit import AuditEntry, ChainReport, entry_hash

KEY = b"audit-key-for-tests-0123456789abcdef"

ENTRY = AuditEntry(
    seq=7,
    entry_id="3f0b7a0e-93a5-4d39-9b59-8a1a7a0f3c11",
    occurred_at=datetime(2026, 11, 25, 12, 0, 0, 123456, tzinfo=UTC),
    action="notice.restricted_read",
    notice_id="6f1c0a52-8a0e-4c37-9d0c-2f1e4c1b8a10",
    version=2,
    actor_token_id="0d6c7f7e-3c8e-4b8a-9a3e-5f2d8c1b7a66",
    actor_role="contact",
    correlation_id="corr-1",
    details={"purged": False},
    prev_hash="a" * 64,
)


@pytest.mark.parametrize(
    "change",
    [
        {"seq": 8},
        {"entry_id": "other"},
        {"occurred_at": ENTRY.occurred_at + timedelta(microseconds=1)},
        {"action": "notice.updated"},
        {"notice_id": None},
        {"version": 3},
        {"actor_token_id": "other"},
        {"actor_role": "ops"},
        {"correlation_id": "corr-2"},
        {"details": {"purged": True}},
        {"prev_hash": "b" * 64},
    ],
)
def test_any_change_changes_the_hash(change: dict[str, object]) -> None:
    assert entry_hash(dataclasses.replace(ENTRY, **change), key=KEY) != entry_hash(ENTRY, key=KEY)  # type: ignore[arg-type]


def test_the_same_instant_hashes_alike_whatever_the_zone_or_awareness() -> None:
    naive_utc = ENTRY.occurred_at.replace(tzinfo=None)  # as SQLite returns it
    elsewhere = ENTRY.occurred_at.astimezone(
        timezone(timedelta(hours=-8))
    )  # as a session zone might
    for occurred_at in (naive_utc, elsewhere):
        assert entry_hash(
            dataclasses.replace(ENTRY, occurred_at=occurred_at), key=KEY
        ) == entry_hash(ENTRY, key=KEY)


def test_detail_key_order_does_not_matter() -> None:
    a = dataclasses.replace(ENTRY, details={"a": 1, "b": 2})
    b = dataclasses.replace(ENTRY, details={"b": 2, "a": 1})
    assert entry_hash(a, key=KEY) == entry_hash(b, key=KEY)


def test_the_hash_is_keyed() -> None:
    # Without the key nobody can recompute a link, so rewriting rows cannot hide an edit.
    assert entry_hash(ENTRY, key=KEY) != entry_hash(ENTRY, key=b"another-key-0123456789abcdefghij")
    assert entry_hash(ENTRY, key=KEY) != entry_hash(ENTRY, key=None)
    assert len(entry_hash(ENTRY, key=KEY)) == 64


def test_a_report_is_intact_only_without_a_broken_link() -> None:
    assert ChainReport(3, "h").intact
    assert not ChainReport(3, "h", broken_at=4, problem="missing").intact
