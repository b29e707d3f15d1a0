"""Our own lines handed to the JSON handler directly (services/common/logging/own_lines.py).

Where the JSON lines' handler is the root's only one, a structlog line makes no
`LogRecord`: the chain renders it and the handler keeps it. The text is the one the
record's way writes; anything else listening (pytest's own capture handlers, which these
tests take off the root while they check the direct way, a second handler, a filter) gets
the record as before.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import services.common.logging.setup as log_setup
from services.common.logging import (
    REDACTED,
    configure_logging,
    get_logger,
    holding_sensitive_values,
)
from tests.unit.common.test_log_writer import Recorder, turn_ended


@pytest.fixture(autouse=True)
def _reset() -> Iterator[None]:
    yield
    configure_logging("aviso-tests", force=True)
    log_setup._state.configured = False


def _only_ours(stream: Any, monkeypatch: pytest.MonkeyPatch) -> logging.Handler:
    """JSON logging to `stream`, its handler the root's only one (as in a service)."""
    configure_logging("intake", fmt="json", stream=stream, force=True)
    (handler,) = log_setup._state.handlers
    monkeypatch.setattr(logging.getLogger(), "handlers", [handler])
    return handler


@pytest.fixture
def records(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The messages' events of every LogRecord made from now on."""
    made: list[str] = []
    real_init = logging.LogRecord.__init__

    def counting(self: logging.LogRecord, *args: Any, **kwargs: Any) -> None:
        real_init(self, *args, **kwargs)
        made.append(str(self.msg))

    monkeypatch.setattr(logging.LogRecord, "__init__", counting)
    return made


def _lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.seen: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.seen.append(record)


def test_our_line_makes_no_record_and_reads_as_the_records_way_writes_it(
    monkeypatch: pytest.MonkeyPatch, records: list[str]
) -> None:
    stream = io.StringIO()
    handler = _only_ours(stream, monkeypatch)
    log = get_logger("services.intake.notices.submission")
    log.info("notice.received", notice_id="n-1", version=1, http_status=201, duration_ms=1.5)
    assert records == []  # fails on main: every line made its record
    # The same call with a second handler on the root: the record's way.
    extra = _Collect()
    monkeypatch.setattr(logging.getLogger(), "handlers", [handler, extra])
    log.info("notice.received", notice_id="n-1", version=1, http_status=201, duration_ms=1.5)
    assert len(records) == 1
    assert len(extra.seen) == 1
    direct, by_record = stream.getvalue().splitlines()
    # Byte for byte but for the time stamp: keys in the same order, the same values.
    assert list(json.loads(direct)) == list(json.loads(by_record))
    ts_direct, ts_record = json.loads(direct)["ts"], json.loads(by_record)["ts"]
    assert direct.replace(ts_direct, "T") == by_record.replace(ts_record, "T")


@pytest.mark.parametrize("where", ["handler filter", "logger filter", "logger's own handler"])
def test_a_filter_or_another_handler_on_the_way_gets_the_record(
    where: str, monkeypatch: pytest.MonkeyPatch, records: list[str]
) -> None:
    stream = io.StringIO()
    handler = _only_ours(stream, monkeypatch)
    name = f"tests.own_lines.{where.replace(' ', '_').replace(chr(39), '')}"
    std_logger = logging.getLogger(name)
    seen: list[str] = []

    def drop(record: logging.LogRecord) -> bool:
        seen.append(record.getMessage())
        return False

    extra = _Collect()
    match where:
        case "handler filter":
            monkeypatch.setattr(handler, "filters", [drop])
        case "logger filter":
            monkeypatch.setattr(std_logger, "filters", [drop])
        case _:
            monkeypatch.setattr(std_logger, "handlers", [extra])
    get_logger(name).info("line.filtered", n=1)
    assert len(records) == 1
    if where == "logger's own handler":
        assert len(extra.seen) == 1
        assert [line["event"] for line in _lines(stream)] == ["line.filtered"]
    else:
        assert len(seen) == 1
        assert stream.getvalue() == ""  # the filter dropped it, as before


async def test_an_error_line_is_written_at_once_after_the_kept_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, records: list[str]
) -> None:
    recorder = Recorder(tmp_path / "stderr")
    try:
        _only_ours(recorder, monkeypatch)
        log = get_logger("tests.own_lines.levels")
        log.info("line.kept")
        assert recorder.writes == []  # kept for the turn's end
        log.error("line.failed")
        assert recorder.events() == ["line.kept", "line.failed"]
        log.info("line.after")
        await turn_ended()
        assert recorder.events() == ["line.kept", "line.failed", "line.after"]
        assert records == []
    finally:
        recorder.close()


def test_restricted_fields_and_held_values_are_redacted_on_the_direct_way(
    monkeypatch: pytest.MonkeyPatch, records: list[str]
) -> None:
    stream = io.StringIO()
    _only_ours(stream, monkeypatch)
    log = get_logger("tests.own_lines.canary")
    with holding_sensitive_values(["Esteban Quiroga", "+1 505 555 0199"]):
        log.info(
            "notice.received",
            agent_phone="+1 505 555 0199",
            note="seen with Esteban Quiroga today",
        )
    assert records == []
    (line,) = _lines(stream)
    assert line["agent_phone"] == REDACTED
    assert "Esteban" not in stream.getvalue()
    assert "0199" not in stream.getvalue()
    assert line["note"] == f"seen with {REDACTED} today"
