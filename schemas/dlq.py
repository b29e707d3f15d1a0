"""The dead-letter event on ``aviso.dlq.v1``, emitted by any consumer that gives up on a message.

A message that failed processing the configured number of times is wrapped here with the error so
the partition can move on and an operator can inspect or replay it. The original bytes are kept
verbatim (base64) so a replay republishes exactly what was consumed.
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, ClassVar
from uuid import UUID

from pydantic import AfterValidator, AwareDatetime, Field

from schemas.base import EventData
from schemas.topics import DLQ

__all__ = ["DeadLettered", "b64encode"]


def _check_base64(value: str) -> str:
    try:
        base64.b64decode(value, validate=True)
    except binascii.Error as error:
        raise ValueError(f"not standard base64: {error}") from None
    return value


Base64 = Annotated[str, AfterValidator(_check_base64)]


def b64encode(raw: bytes) -> str:
    """Encode bytes for ``original_key`` and ``original_value`` (standard alphabet, padded)."""
    return base64.b64encode(raw).decode("ascii")


class DeadLettered(EventData):
    """A consumed message failed processing too many times and was set aside.

    No restricted detail beyond the original's (none by contract); the caller redacts the error.
    """

    event_type: ClassVar[str] = "dlq.dead_lettered"
    topic: ClassVar[str] = DLQ
    subject_field: ClassVar[str] = "dead_letter_id"

    dead_letter_id: UUID = Field(
        description="Id of this dead letter: its ce_subject and Kafka key."
    )
    original_topic: str = Field(min_length=1)
    original_partition: int = Field(ge=0)
    original_offset: int = Field(ge=0)
    original_key: Base64 | None = Field(
        default=None, description="The original Kafka key, base64; null when the message had none."
    )
    original_headers: tuple[tuple[str, str], ...] = Field(
        description="The original headers as [name, value] pairs; values decoded as UTF-8 with "
        "undecodable bytes replaced, a null value as ''."
    )
    original_value: Base64 | None = Field(
        default=None, description="The original message value, base64; null for a tombstone."
    )
    error_type: str = Field(
        min_length=1, description="Class name of the last exception, e.g. 'ValidationError'."
    )
    error_message: str = Field(description="Message of the last exception, redacted by the caller.")
    attempts: int = Field(ge=1, description="Processing attempts made before giving up.")
    consumer_group: str = Field(min_length=1, description="Consumer group that gave up.")
    failed_at: AwareDatetime = Field(description="When the last attempt failed.")

    def original_key_bytes(self) -> bytes | None:
        """Decode the original Kafka key."""
        return None if self.original_key is None else base64.b64decode(self.original_key)

    def original_value_bytes(self) -> bytes | None:
        """Decode the original message value."""
        return None if self.original_value is None else base64.b64decode(self.original_value)
