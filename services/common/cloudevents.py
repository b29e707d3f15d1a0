"""CloudEvents 1.0 in Kafka binary mode: the envelope every Aviso event travels in.

Attributes go in `ce_*` headers, the JSON data is the message value, and the key is
the aggregate id so one notice or bulletin stays in order on one partition. A
correlation id (`ce_correlationid`, a CloudEvents extension) travels from the first
HTTP request through every event it causes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Generic, TypeVar

from pydantic import ValidationError

from schemas.base import EventData, model_for
from services.common.ids import new_id

__all__ = [
    "CONTENT_TYPE",
    "SPECVERSION",
    "Envelope",
    "InvalidEnvelope",
    "OutgoingEvent",
    "correlation_scope",
    "current_correlation_id",
    "decode_headers",
    "new_event",
    "parse_envelope",
]

SPECVERSION = "1.0"
CONTENT_TYPE = "application/json"

# The correlation id of the work in progress: set by the HTTP middleware for a
# request and by the consumer for a message, read when an event is created.
current_correlation_id: ContextVar[str | None] = ContextVar("aviso_correlation_id", default=None)

EventT = TypeVar("EventT", bound=EventData)


class InvalidEnvelope(ValueError):
    """A message that is not a well-formed Aviso CloudEvent (headers or data)."""


@dataclass(frozen=True)
class OutgoingEvent:
    """An event ready to publish: topic, key, CloudEvents headers and JSON body."""

    topic: str
    key: str
    message_id: str
    event_type: str
    headers: dict[str, str]
    payload: str


@dataclass(frozen=True)
class Envelope(Generic[EventT]):
    """A received event: its CloudEvents attributes and validated data."""

    id: str
    type: str
    source: str
    time: datetime
    subject: str | None
    correlation_id: str | None
    data: EventT
    headers: Mapping[str, str] = field(default_factory=dict)


def new_event(
    data: EventData,
    *,
    source: str,
    correlation_id: str | None = None,
    message_id: str | None = None,
    time: datetime | None = None,
) -> OutgoingEvent:
    """Wrap `data` in a CloudEvents envelope keyed by its aggregate id."""
    message_id = message_id or new_id()
    correlation_id = correlation_id or current_correlation_id.get() or message_id
    subject = data.subject()
    headers = {
        "ce_specversion": SPECVERSION,
        "ce_id": message_id,
        "ce_type": data.event_type,
        "ce_source": source,
        "ce_time": (time or datetime.now(UTC)).isoformat(),
        "ce_subject": subject,
        "ce_correlationid": correlation_id,
        "ce_dataschema": f"https://aviso.local/schemas/{data.event_type}.schema.json",
        "content-type": CONTENT_TYPE,
    }
    return OutgoingEvent(
        topic=data.topic,
        key=data.key().decode("utf-8"),
        message_id=message_id,
        event_type=data.event_type,
        headers=headers,
        payload=data.model_dump_json(),
    )


def decode_headers(
    raw: Mapping[str, bytes | str] | Iterable[tuple[str, bytes | str]],
) -> dict[str, str]:
    """Kafka headers as text (undecodable values are replaced, never raised on)."""
    items = raw.items() if isinstance(raw, Mapping) else raw
    decoded: dict[str, str] = {}
    for name, value in items:
        decoded[name] = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    return decoded


def parse_envelope(headers: Mapping[str, str], body: bytes) -> Envelope[EventData]:
    """Validate the CloudEvents headers and the data against the event type's model."""
    missing = [h for h in ("ce_id", "ce_type", "ce_source", "ce_specversion") if not headers.get(h)]
    if missing:
        raise InvalidEnvelope(f"missing CloudEvents headers: {', '.join(missing)}")
    if headers["ce_specversion"] != SPECVERSION:
        raise InvalidEnvelope(f"unsupported ce_specversion {headers['ce_specversion']!r}")
    model = model_for(headers["ce_type"])
    try:
        time = datetime.fromisoformat(headers.get("ce_time") or "")
    except ValueError as exc:
        raise InvalidEnvelope("ce_time is not an ISO 8601 timestamp") from exc
    try:
        # Parsed and validated in one pass by pydantic's core (no dict built in between).
        data = model.model_validate_json(body)
    except ValidationError as exc:
        if any(err["type"] == "json_invalid" for err in exc.errors()):
            raise InvalidEnvelope("message value is not UTF-8 JSON") from None
        # Locations and messages only: the input may hold anything.
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise InvalidEnvelope(f"data does not match {model.event_type}: {problems}") from None
    return Envelope(
        id=headers["ce_id"],
        type=headers["ce_type"],
        source=headers["ce_source"],
        time=time,
        subject=headers.get("ce_subject"),
        correlation_id=headers.get("ce_correlationid"),
        data=data,
        headers=dict(headers),
    )


class correlation_scope:
    """Set the current correlation id for the duration of a block."""

    def __init__(self, correlation_id: str | None) -> None:
        self._value = correlation_id
        self._token: object | None = None

    def __enter__(self) -> None:
        self._token = current_correlation_id.set(self._value)

    def __exit__(self, *exc: object) -> None:
        current_correlation_id.reset(self._token)  # type: ignore[arg-type]
