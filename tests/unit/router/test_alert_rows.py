"""An alert's row read back: from a SQLAlchemy row (JSON parsed) or from asyncpg (JSON
columns still text, as router's direct reads get them) gives the same record."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest

from services.router import alerting
from services.router.domain import alert_id_for
from services.router.repository.alert_rows import (
    UNREAD_CONTENT,
    UNREAD_SNAPSHOT,
    alert_values,
    lean_record_of,
    record,
    record_of,
)
from services.router.repository.alert_statements import LEFT_OUT_OF_LEAN
from tests.unit.router.fakes import FakeUnitOfWork, make_deps, received, with_directory


async def test_a_row_with_json_as_text_reads_back_as_the_same_alert(tmp_path: Path) -> None:
    deps = make_deps(tmp_path)
    with_directory(deps.store)
    notice = received()
    await alerting.open_alert(FakeUnitOfWork(deps.store), deps=deps, notice=notice)
    alert = deps.store.alerts[alert_id_for(notice.notice_id)]
    stored = alert_values(alert)  # JSON columns as the dicts SQLAlchemy parses them to

    as_text = {
        name: json.dumps(value) if name in ("content", "snapshot") else value
        for name, value in stored.items()
    }
    assert isinstance(as_text["snapshot"], str)
    assert record_of(as_text) == alert
    assert record(SimpleNamespace(_mapping=stored)) == alert


async def test_a_lean_row_reads_every_column_but_the_content_and_snapshot(
    tmp_path: Path,
) -> None:
    deps = make_deps(tmp_path)
    with_directory(deps.store)
    notice = received()
    await alerting.open_alert(FakeUnitOfWork(deps.store), deps=deps, notice=notice)
    alert = deps.store.alerts[alert_id_for(notice.notice_id)]
    lean_row = {
        name: value for name, value in alert_values(alert).items() if name not in LEFT_OUT_OF_LEAN
    }

    lean = lean_record_of(lean_row)

    assert replace(lean, content=alert.content, snapshot=alert.snapshot) == alert
    assert lean.content is UNREAD_CONTENT
    assert lean.snapshot is UNREAD_SNAPSHOT
    # An unread document fails on use instead of reading as an empty one.
    with pytest.raises(AttributeError):
        _ = lean.content.summary
    with pytest.raises(AttributeError):
        _ = lean.snapshot.recipients
