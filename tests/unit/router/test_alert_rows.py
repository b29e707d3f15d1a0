"""An alert's row read back: from a SQLAlchemy row (JSON parsed) or from asyncpg (JSON
columns still text, as router's direct reads get them) gives the same record."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

from services.router import alerting
from services.router.domain import alert_id_for
from services.router.repository.alert_rows import alert_values, record, record_of
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
