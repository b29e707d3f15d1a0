"""An outbox row stores only the headers its columns do not say, and the relay puts back
exactly the headers the event was made with (services/common/outbox/headers.py)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from uuid import uuid4

from services.common.cloudevents import OutgoingEvent, new_event
from services.common.outbox.rows import relay_row
from services.common.outbox.writing import outbox_row
from tests.support.events import notice_cancelled


def _event(**kwargs: object) -> OutgoingEvent:
    data = notice_cancelled(uuid4(), status="Test", reason="other")
    return new_event(data, source="aviso.intake", **kwargs)  # type: ignore[arg-type]


def _round_trip(row: dict[str, object]) -> dict[str, str]:
    """The row as a database gives it back (headers as JSON text) and the relay takes it."""
    stored = dict(row, id=7, headers=json.dumps(row["headers"]))
    return relay_row(stored).headers


def test_a_row_stores_the_source_time_and_correlation_id_only_and_gives_back_the_same() -> None:
    outgoing = _event(correlation_id="req-42")
    row = outbox_row(outgoing, datetime.now(UTC))
    assert row["headers"] == {
        "ce_source": "aviso.intake",
        "ce_time": outgoing.headers["ce_time"],
        "ce_correlationid": "req-42",
    }
    assert len(json.dumps(row["headers"])) < 120 < 300 < len(json.dumps(outgoing.headers))
    assert list(_round_trip(row).items()) == list(outgoing.headers.items())


def test_a_correlation_id_that_is_the_message_id_is_not_stored() -> None:
    outgoing = _event()
    assert outgoing.headers["ce_correlationid"] == outgoing.message_id
    row = outbox_row(outgoing, datetime.now(UTC))
    assert row["headers"] == {"ce_source": "aviso.intake", "ce_time": outgoing.headers["ce_time"]}
    assert list(_round_trip(row).items()) == list(outgoing.headers.items())


def test_the_events_time_is_kept_as_written_whatever_its_zone() -> None:
    for stamped in (
        datetime(2026, 11, 29, 9, 0, 0, 0, tzinfo=UTC),  # no fraction: none printed
        datetime(2026, 11, 29, 3, 0, tzinfo=timezone(timedelta(hours=-6))),
    ):
        outgoing = _event(time=stamped)
        row = outbox_row(outgoing, stamped + timedelta(seconds=5))
        assert row["headers"]["ce_time"] == stamped.isoformat()  # type: ignore[index]
        assert list(_round_trip(row).items()) == list(outgoing.headers.items())


def test_headers_the_columns_cannot_give_back_are_stored_whole() -> None:
    outgoing = _event()
    odd = [
        {**outgoing.headers, "x-extra": "1"},  # one more header
        {k: v for k, v in outgoing.headers.items() if k != "ce_dataschema"},  # one fewer
        dict(reversed(list(outgoing.headers.items()))),  # another order
        {**outgoing.headers, "ce_subject": "someone-else"},  # a subject not the key
    ]
    for headers in odd:
        event = OutgoingEvent(
            topic=outgoing.topic,
            key=outgoing.key,
            message_id=outgoing.message_id,
            event_type=outgoing.event_type,
            headers=headers,
            payload=outgoing.payload,
        )
        row = outbox_row(event, datetime.now(UTC))
        assert row["headers"] == headers
        assert list(_round_trip(row).items()) == list(headers.items())


def test_a_row_stored_whole_before_this_change_is_published_as_stored() -> None:
    outgoing = _event(correlation_id="c-1")
    row = {**outbox_row(outgoing, datetime.now(UTC)), "headers": outgoing.headers}
    assert list(_round_trip(row).items()) == list(outgoing.headers.items())
