"""A notice and its versions as stored: typed, frozen, with timezone-aware UTC times.

The repository turns rows into these and back; nothing above it sees a database row.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, Literal

from schemas.base import MsgType, Status
from schemas.notices import CancelReason, OperationType, ReceivedVia

__all__ = [
    "NoticeRecord",
    "NoticeState",
    "Operation",
    "Releasable",
    "StoredIdempotencyKey",
    "VersionRecord",
]

NoticeState = Literal["received", "updated", "cancelled", "expired"]
# What an Idempotency-Key can be used for.
Operation = Literal["create", "update", "cancel"]


@dataclass(frozen=True)
class Releasable:
    """What a notice says that anyone allowed to read it may see; a version and a row share it."""

    status: Status
    received_via: ReceivedVia
    operation_type: OperationType
    public_safety_nexus: bool
    window_start: datetime
    window_end: datetime
    area: str
    area_code: str | None
    summary: str
    sent_at: datetime

    def releasable(self) -> dict[str, Any]:
        """These fields by name: what a notice row copies from its latest version."""
        return {name: getattr(self, name) for name in _RELEASABLE_FIELDS}


@dataclass(frozen=True)
class NoticeRecord(Releasable):
    """A notice's current releasable state (the `notices` row)."""

    id: str
    source_key: str
    reference: str
    state: NoticeState
    current_version: int
    received_at: datetime
    updated_at: datetime
    closed_at: datetime | None
    cancel_reason: CancelReason | None
    restricted_purged_at: datetime | None

    def values(self) -> dict[str, Any]:
        """Column values for an insert or a whole-row update."""
        return {name: getattr(self, name) for name in _NOTICE_FIELDS}


@dataclass(frozen=True)
class VersionRecord(Releasable):
    """One recorded version (the `notice_versions` row); `restricted_sealed` is ciphertext."""

    notice_id: str
    version: int
    msg_type: MsgType
    version_refs: tuple[str, ...]
    received_at: datetime
    cancel_reason: CancelReason | None
    policy_annotations: tuple[dict[str, str], ...]
    policy_version: str
    content_digest: str | None
    restricted_sealed: str | None
    restricted_changed: bool
    actor_token_id: str

    def values(self) -> dict[str, Any]:
        """Column values for an insert."""
        data = {name: getattr(self, name) for name in _VERSION_FIELDS}
        data["version_refs"] = list(self.version_refs)
        data["policy_annotations"] = [dict(a) for a in self.policy_annotations]
        return data


# Field names read once: `dataclasses.fields` per call was a few microseconds each, four
# calls a submission.
_RELEASABLE_FIELDS = tuple(f.name for f in fields(Releasable))
_NOTICE_FIELDS = tuple(f.name for f in fields(NoticeRecord))
_VERSION_FIELDS = tuple(f.name for f in fields(VersionRecord))


@dataclass(frozen=True)
class StoredIdempotencyKey:
    """What an Idempotency-Key was first used for."""

    operation: str
    notice_id: str
    content_digest: str
