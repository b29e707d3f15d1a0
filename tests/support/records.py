"""A consumed Kafka record built from an event, as aiokafka hands it to the consumer."""

from __future__ import annotations

from schemas.base import EventData
from services.common.cloudevents import new_event

__all__ = ["FetchedRecord"]


class FetchedRecord:
    """Enough of aiokafka's ConsumerRecord for the consumer: an event encoded as a record."""

    def __init__(
        self,
        data: EventData,
        offset: int,
        *,
        topic: str,
        source: str = "aviso.test",
        message_id: str | None = None,
        correlation_id: str | None = None,
    ) -> None:
        outgoing = new_event(
            data, source=source, message_id=message_id, correlation_id=correlation_id
        )
        self.topic, self.partition, self.offset = topic, 0, offset
        self.key = outgoing.key.encode()
        self.value = outgoing.payload.encode()
        self.headers = [(k, v.encode()) for k, v in outgoing.headers.items()]
        self.message_id = outgoing.message_id
