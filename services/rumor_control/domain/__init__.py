"""Pure rules of rumor control and its typed state transitions. No I/O here.

Rumor: reported -> assessed (re-assessed as facts change; an assessment expires).
Bulletin version: drafted -> published (on approval) | rejected; a published bulletin is
updated by a new version (CAP Update) or retracted by one (CAP Cancel).
"""

from services.rumor_control.domain.errors import InvalidInput, InvalidLink, NotFound
from services.rumor_control.domain.records import (
    AuditEntry,
    BulletinRow,
    BulletinState,
    DeliveryRow,
    NoticeRow,
    ReceiptRow,
    ReportRow,
    RumorRow,
    Texts,
    VersionRow,
    VersionState,
)
from services.rumor_control.domain.rules import (
    LANGUAGES,
    NAMESPACE,
    Actor,
    NoticeFacts,
    RumorCandidate,
    RumorFacts,
    Suggestion,
    VettingError,
    bulletin_status,
    channels_for,
    check_approval,
    check_editable,
    check_sign_off,
    choose_rumor,
    delivery_id,
    fingerprint_key_id,
    missing_signoffs,
    person_id,
    references_for,
    suggest_assessment,
)
from services.rumor_control.domain.timeline import Aggregate, TimelineAction, TimelineRecord

__all__ = [
    "LANGUAGES",
    "NAMESPACE",
    "Actor",
    "Aggregate",
    "AuditEntry",
    "BulletinRow",
    "BulletinState",
    "DeliveryRow",
    "InvalidInput",
    "InvalidLink",
    "NotFound",
    "NoticeFacts",
    "NoticeRow",
    "ReceiptRow",
    "ReportRow",
    "RumorCandidate",
    "RumorFacts",
    "RumorRow",
    "Suggestion",
    "Texts",
    "TimelineAction",
    "TimelineRecord",
    "VersionRow",
    "VersionState",
    "VettingError",
    "bulletin_status",
    "channels_for",
    "check_approval",
    "check_editable",
    "check_sign_off",
    "choose_rumor",
    "delivery_id",
    "fingerprint_key_id",
    "missing_signoffs",
    "person_id",
    "references_for",
    "suggest_assessment",
]
