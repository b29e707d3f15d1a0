"""The pure core of intake: rules, typed records and the transitions between states.

Nothing here does I/O, so every rule unit-tests without a database or a broker.
`rules` holds the lifecycle checks, digests and fingerprints; `records` the typed rows;
`transitions` the changes a rule decides, each with its audit entry and event.
"""

from __future__ import annotations

from services.intake.domain.records import (
    NoticeRecord,
    NoticeState,
    Operation,
    StoredIdempotencyKey,
    VersionRecord,
)
from services.intake.domain.rules import (
    TERMINAL_STATES,
    CancelOutcome,
    IntakeConflict,
    IntakeNotFound,
    RestrictedDetail,
    RestrictedTermInReleasable,
    RevisionOutcome,
    SignatureRejected,
    cancel_outcome,
    canonical_json,
    check_idempotency_key,
    check_releasable,
    check_releasable_words,
    content_digest,
    expiry_due,
    fingerprint_key_id,
    free_text_fingerprints,
    identifying_terms,
    msg_type_for,
    purge_due,
    references_for,
    restricted_fingerprints,
    revision_outcome,
    sensitive_values,
    source_key,
)
from services.intake.domain.transitions import AuditNote, NoticeEvent, Transition

__all__ = [
    "TERMINAL_STATES",
    "AuditNote",
    "CancelOutcome",
    "IntakeConflict",
    "IntakeNotFound",
    "NoticeEvent",
    "NoticeRecord",
    "NoticeState",
    "Operation",
    "RestrictedDetail",
    "RestrictedTermInReleasable",
    "RevisionOutcome",
    "SignatureRejected",
    "StoredIdempotencyKey",
    "Transition",
    "VersionRecord",
    "cancel_outcome",
    "canonical_json",
    "check_idempotency_key",
    "check_releasable",
    "check_releasable_words",
    "content_digest",
    "expiry_due",
    "fingerprint_key_id",
    "free_text_fingerprints",
    "identifying_terms",
    "msg_type_for",
    "purge_due",
    "references_for",
    "restricted_fingerprints",
    "revision_outcome",
    "sensitive_values",
    "source_key",
]
