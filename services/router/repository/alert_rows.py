"""How an alert and its timeline entries map to and from their rows (no I/O)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import fields
from typing import Any, TypeVar, cast

from pydantic import BaseModel

from schemas.alerts import AckMethod, ResolutionReason, Urgency
from schemas.base import Status
from services.router.domain import (
    AlertRecord,
    AlertState,
    NoticeContent,
    Snapshot,
    TimelineEntry,
    TimelineKind,
    TimelineRecord,
)
from services.router.repository._sql import aware, must

__all__ = [
    "COLUMNS",
    "JSON_TEXT_COLUMNS",
    "UNREAD_CONTENT",
    "UNREAD_SNAPSHOT",
    "alert_values",
    "column_value",
    "lean_record_of",
    "record",
    "record_of",
    "timeline_entry",
    "timeline_values",
]

COLUMNS = tuple(f.name for f in fields(AlertRecord))


def record(row: Any) -> AlertRecord:
    """An alert as its row holds it (a SQLAlchemy row)."""
    return record_of(row._mapping)


_Model = TypeVar("_Model", bound=BaseModel)


def _model(model: type[_Model], value: Any) -> _Model:
    # JSON columns read straight from asyncpg come as their text: parsed in one step.
    if isinstance(value, str):
        return model.model_validate_json(value)
    return model.model_validate(value)


# What a lean record holds in place of the content and the snapshot it did not read:
# models with no fields set, so any use of one fails at once (AttributeError) instead of
# reading as an empty notice. A transition keeps them as the same objects (`replace`),
# so writing it never touches those columns (`changed_columns` compares by identity
# first).
_NO_FIELDS: dict[str, Any] = {}
UNREAD_CONTENT = NoticeContent.model_construct(**_NO_FIELDS)
UNREAD_SNAPSHOT = Snapshot.model_construct(**_NO_FIELDS)


def record_of(row: Mapping[str, Any]) -> AlertRecord:
    """An alert from its columns by name (a SQLAlchemy row's mapping or an asyncpg
    record, whose JSON columns are still text)."""
    return _record_of(
        row,
        content=_model(NoticeContent, row["content"]),
        snapshot=_model(Snapshot, row["snapshot"]),
    )


def lean_record_of(row: Mapping[str, Any]) -> AlertRecord:
    """An alert from every column but its content and snapshot (left unread: see
    `UNREAD_CONTENT`), for readers that need neither, such as the outcome batch."""
    return _record_of(row, content=UNREAD_CONTENT, snapshot=UNREAD_SNAPSHOT)


def _record_of(
    row: Mapping[str, Any], *, content: NoticeContent, snapshot: Snapshot
) -> AlertRecord:
    acknowledged_by = row["acknowledged_by"]
    return AlertRecord(
        id=uuid.UUID(row["id"]),
        notice_id=uuid.UUID(row["notice_id"]),
        notice_version=row["notice_version"],
        status=cast(Status, row["status"]),
        state=cast(AlertState, row["state"]),
        urgency=cast(Urgency, row["urgency"]),
        content=content,
        snapshot=snapshot,
        step=row["step"],
        repeat=row["repeat"],
        escalation_count=row["escalation_count"],
        next_fire_at=aware(row["next_fire_at"]),
        active_escalation_id=row["active_escalation_id"],
        correlation_id=row["correlation_id"],
        triggered_at=must(row["triggered_at"]),
        version_triggered_at=must(row["version_triggered_at"]),
        acknowledged_version=row["acknowledged_version"],
        acknowledged_by=uuid.UUID(acknowledged_by) if acknowledged_by else None,
        acknowledged_at=aware(row["acknowledged_at"]),
        ack_method=cast(AckMethod | None, row["ack_method"]),
        exhausted_at=aware(row["exhausted_at"]),
        expires_at=must(row["expires_at"]),
        resolved_at=aware(row["resolved_at"]),
        resolution=cast(ResolutionReason | None, row["resolution"]),
        updated_at=must(row["updated_at"]),
    )


def column_value(value: object) -> object:
    """A Python value as its column stores it (UUIDs as text, models as JSON)."""
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, NoticeContent | Snapshot):
        return value.model_dump(mode="json")
    return value


def timeline_entry(row: Any) -> TimelineEntry:
    """A timeline entry as its row holds it."""
    return TimelineEntry(
        id=row.id,
        at=must(row.at),
        kind=cast(TimelineKind, row.kind),
        notice_version=row.notice_version,
        step=row.step,
        repeat=row.repeat,
        recipient_id=uuid.UUID(row.recipient_id) if row.recipient_id else None,
        channel=row.channel,
        method=row.method,
        delivery_id=uuid.UUID(row.delivery_id) if row.delivery_id else None,
        detail=dict(row.detail or {}),
    )


def timeline_values(alert_id: uuid.UUID, entry: TimelineRecord) -> dict[str, object]:
    """The row of one of `alert_id`'s timeline entries."""
    return {
        "alert_id": str(alert_id),
        "at": entry.at,
        "kind": entry.kind,
        "notice_version": entry.notice_version,
        "step": entry.position.step if entry.position else None,
        "repeat": entry.position.repeat if entry.position else None,
        "recipient_id": str(entry.recipient_id) if entry.recipient_id else None,
        "channel": entry.channel,
        "method": entry.method,
        "delivery_id": str(entry.delivery_id) if entry.delivery_id else None,
        "detail": dict(entry.detail) if entry.detail else None,
    }


def alert_values(alert: AlertRecord, *, json_text: bool = False) -> dict[str, object]:
    """Every column of `alert` as stored; `json_text`: its JSON columns as their JSON text.

    Why the text: a JSON column's value goes to the database as text either way. Pydantic
    writes the content's and the snapshot's text in one pass (~6 us an alert, measured),
    where a dump to dicts and `json.dumps` of them by the column's bind processor took
    ~26: the opening statement of every notice binds both (`JSON_TEXT_COLUMNS`).
    """
    if not json_text:
        return {name: column_value(getattr(alert, name)) for name in COLUMNS}
    values = {name: column_value(getattr(alert, name)) for name in COLUMNS if name not in _JSON}
    values["content"] = alert.content.model_dump_json()
    values["snapshot"] = alert.snapshot.model_dump_json()
    return values


# The alert's JSON columns, bound as JSON text where `alert_values(json_text=True)`.
JSON_TEXT_COLUMNS = ("content", "snapshot")
_JSON = frozenset(JSON_TEXT_COLUMNS)
