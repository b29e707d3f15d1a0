"""An outbox row's CloudEvents headers, stored as what the row's own columns do not say.

Every event's headers (cloudevents.py `new_event`) were stored whole with its row, ~410
bytes of JSON a row, most of it said again by the row's columns or by nothing at all: the
spec version and content type are constants, `ce_id` is `message_id`, `ce_type` is
`event_type`, `ce_dataschema` follows from it and `ce_subject` is the aggregate id
(`key`). What is left is the source, the event's time and, where it is not the message
id, the correlation id: about 130 bytes. (The time is kept as written rather than
derived from `created_at`: printing a time again costs the writer and the relay more
Python per row than its 45 bytes cost the database.) The relay puts the headers back
together in the same order with the same values, so the record on the topic is what it
was.

A row is stored short only when putting it back together gives exactly the headers it
had (names, values and order): anything else (another shape of envelope) is stored
whole, as is every row written before this change. A stored set with `ce_id` in it is
whole; the short form never has it.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache

from services.common.cloudevents import CONTENT_TYPE, SPECVERSION

__all__ = ["full_headers", "stored_headers"]

# The names `new_event` gives, in its order (the record keeps it).
_ORDER = (
    "ce_specversion",
    "ce_id",
    "ce_type",
    "ce_source",
    "ce_time",
    "ce_subject",
    "ce_correlationid",
    "ce_dataschema",
    "content-type",
)


def stored_headers(
    headers: Mapping[str, str], *, message_id: str, event_type: str, key: str
) -> dict[str, str]:
    """What to store of `headers`: the short form if `full_headers` gives them back exactly
    (names, order and values), else all of them.

    Checked field by field rather than by building the headers again: this runs for every
    event a service writes.
    """
    if (
        tuple(headers) == _ORDER
        and headers["ce_id"] == message_id
        and headers["ce_type"] == event_type
        and headers["ce_subject"] == key
        and headers["ce_specversion"] == SPECVERSION
        and headers["content-type"] == CONTENT_TYPE
        and headers["ce_dataschema"] == _schema_url(event_type)
    ):
        kept = {"ce_source": headers["ce_source"], "ce_time": headers["ce_time"]}
        if headers["ce_correlationid"] != message_id:
            kept["ce_correlationid"] = headers["ce_correlationid"]
        return kept
    return dict(headers)


def full_headers(
    stored: Mapping[str, str],
    *,
    message_id: str,
    event_type: str,
    key: str,
) -> dict[str, str]:
    """The headers a row was written with, from what was stored and the row's columns."""
    if "ce_id" in stored:
        return dict(stored)
    # In `_ORDER`.
    return {
        "ce_specversion": SPECVERSION,
        "ce_id": message_id,
        "ce_type": event_type,
        "ce_source": stored.get("ce_source", ""),
        "ce_time": stored.get("ce_time", ""),
        "ce_subject": key,
        "ce_correlationid": stored.get("ce_correlationid", message_id),
        "ce_dataschema": _schema_url(event_type),
        "content-type": CONTENT_TYPE,
    }


@cache
def _schema_url(event_type: str) -> str:
    return f"https://aviso.local/schemas/{event_type}.schema.json"
