"""Event models: the registry matches BRIEF, every event round-trips, invariants hold."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest
from pydantic import ValidationError

import schemas
from schemas import (
    ALL_TOPICS,
    DIRECTORY_ID,
    EVENT_MODELS,
    AlertAcknowledged,
    AlertDelivered,
    AlertDeliveryFailed,
    AlertEscalated,
    AlertResolved,
    AlertTriggered,
    BulletinApproved,
    BulletinDeliveryFailed,
    BulletinDrafted,
    BulletinPublished,
    BulletinRejected,
    BulletinRetracted,
    DeadLettered,
    DirectoryPublished,
    EventData,
    NoticeCancelled,
    NoticeReceived,
    NoticeUpdated,
    RumorAssessed,
    RumorReported,
    UnknownEventType,
    b64encode,
    is_drill,
    model_for,
    models_for_topic,
    parse_event,
    parse_version_ref,
    topics,
    version_ref,
)
from schemas.base import DuplicateEventType

# The contract table of BRIEF ("Contract (shared by all services)"), copied here so the test runs
# in a clone without the brief; change both together, with a note on the issue.
BRIEF_CONTRACT: dict[str, set[str]] = {
    "aviso.notices.v1": {"notice.received", "notice.updated", "notice.cancelled"},
    "aviso.alerts.v1": {
        "alert.triggered",
        "alert.delivered",
        "alert.escalated",
        "alert.acknowledged",
        "alert.resolved",
        # Not in the brief's table: a failed delivery attempt (noted on issue 10).
        "alert.delivery_failed",
    },
    "aviso.rumors.v1": {"rumor.reported", "rumor.assessed"},
    "aviso.bulletins.v1": {
        "bulletin.drafted",
        "bulletin.approved",
        "bulletin.rejected",
        "bulletin.published",
        "bulletin.retracted",
        # Not in the brief's table: a failed delivery attempt (noted on issue 10).
        "bulletin.delivery_failed",
    },
    "aviso.dlq.v1": {"dlq.dead_lettered"},
    # Not in the brief's table: who is in the directory in force, person ids only, so intake
    # can tell which contact tokens may read restricted detail (a contract addition noted on
    # issue 12).
    "aviso.directory.v1": {"directory.published"},
}
TOPIC_PREFIX = {
    topics.NOTICES: "notice.",
    topics.ALERTS: "alert.",
    topics.RUMORS: "rumor.",
    topics.BULLETINS: "bulletin.",
    topics.DLQ: "dlq.",
    topics.DIRECTORY: "directory.",
}

T0 = datetime(2025, 3, 12, 14, 0, tzinfo=UTC)
NOTICE_ID = UUID("6f1c2a3e-8d4b-4c1e-9a7f-0b2d3c4e5f60")
ALERT_ID = UUID("0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d")
RUMOR_ID = UUID("11111111-2222-4333-8444-555555555555")
BULLETIN_ID = UUID("99999999-8888-4777-8666-555555555555")
SPOC_ID, BACKUP_ID, VETTER_ID, VETTER2_ID, AUTHOR_ID = (uuid4() for _ in range(5))
FINGERPRINTS = ("0" * 32, "f" * 32)


def notice_snapshot(**overrides: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "notice_id": NOTICE_ID,
        "version": 1,
        "references": (),
        "status": "Actual",
        "sent_at": T0,
        "received_at": T0 + timedelta(seconds=2),
        "received_via": "api",
        "operation_type": "worksite",
        "public_safety_nexus": False,
        "window_start": T0 + timedelta(hours=1),
        "window_end": T0 + timedelta(hours=5),
        "area": "Police District 3 (Eastside)",
        "area_code": "district-3",
        "summary": "Federal worksite operation announced for the Eastside district.",
        "policy_annotations": (
            {
                "code": "no_worksite_raids",
                "text": "The department takes no part in workplace raids.",
            },
        ),
        "restricted_fingerprints": FINGERPRINTS,
        "fingerprint_key_id": "fp-2025-01",
    }
    return fields | overrides


def alert_fields(**overrides: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "alert_id": ALERT_ID,
        "notice_id": NOTICE_ID,
        "notice_version": 1,
        "status": "Actual",
    }
    return fields | overrides


def bulletin_fields(**overrides: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "bulletin_id": BULLETIN_ID,
        "version": 1,
        "msg_type": "Alert",
        "references": (),
        "status": "Actual",
        "kind": "rumor_fact",
        "rumor_id": RUMOR_ID,
        "notice_ids": (NOTICE_ID,),
    }
    return fields | overrides


def signoffs() -> tuple[dict[str, Any], ...]:
    return (
        {"language": "es", "signed_off_by": VETTER2_ID, "signed_off_at": T0},
        {"language": "en", "signed_off_by": VETTER_ID, "signed_off_at": T0},
    )


EXAMPLES: dict[str, EventData] = {
    "notice.received": NoticeReceived(**notice_snapshot()),
    "notice.updated": NoticeUpdated(
        **notice_snapshot(version=2, references=(version_ref(NOTICE_ID, 1),), status="Exercise")
    ),
    "notice.cancelled": NoticeCancelled(
        notice_id=NOTICE_ID,
        version=3,
        references=(version_ref(NOTICE_ID, 1), version_ref(NOTICE_ID, 2)),
        status="Actual",
        sent_at=T0,
        received_at=T0,
        reason="operation_postponed",
    ),
    "alert.triggered": AlertTriggered(
        **alert_fields(),
        cause="notice.received",
        urgency="high",
        step=0,
        recipient_id=SPOC_ID,
        delegated=False,
        triggered_at=T0,
    ),
    "alert.delivered": AlertDelivered(
        **alert_fields(),
        step=0,
        recipient_id=SPOC_ID,
        channel="webhook",
        attempts=2,
        delivered_at=T0,
    ),
    "alert.delivery_failed": AlertDeliveryFailed(
        **alert_fields(),
        step=0,
        recipient_id=SPOC_ID,
        channel="webhook",
        reason="http_5xx",
        attempts=1,
        final=False,
        failed_at=T0,
    ),
    "alert.escalated": AlertEscalated(
        **alert_fields(),
        step=1,
        repeat=0,
        escalation_count=1,
        recipient_id=BACKUP_ID,
        escalated_at=T0,
    ),
    "alert.acknowledged": AlertAcknowledged(
        **alert_fields(), acknowledged_by=BACKUP_ID, method="link", step=1, acknowledged_at=T0
    ),
    "alert.resolved": AlertResolved(
        **alert_fields(), reason="notice_cancelled", acknowledged=True, resolved_at=T0
    ),
    "rumor.reported": RumorReported(
        rumor_id=RUMOR_ID,
        status="Actual",
        area_code="district-3",
        area="Eastside",
        report_id=uuid4(),
        channel="radio",
        channels=("radio", "phone_line", "radio"),
        report_count=3,
        first_reported_at=T0,
        reported_at=T0 + timedelta(minutes=20),
    ),
    "rumor.assessed": RumorAssessed(
        rumor_id=RUMOR_ID,
        status="Actual",
        area_code="district-3",
        area="Eastside",
        assessment="Not confirmed",
        revision=1,
        as_of=T0,
        expires_at=T0 + timedelta(hours=6),
        assessed_by=VETTER_ID,
        linked_notice_ids=(NOTICE_ID,),
    ),
    "bulletin.drafted": BulletinDrafted(
        **bulletin_fields(),
        languages=("es", "en"),
        template_id="rumor_fact",
        author_id=AUTHOR_ID,
        blocked_reasons=("leak", "parity.time"),
        drafted_at=T0,
    ),
    "bulletin.approved": BulletinApproved(
        **bulletin_fields(),
        languages=("en", "es"),
        signoffs=signoffs(),
        author_id=AUTHOR_ID,
        approved_by=VETTER_ID,
        approved_at=T0,
    ),
    "bulletin.rejected": BulletinRejected(
        **bulletin_fields(), rejected_by=VETTER_ID, reason_codes=("leak",), rejected_at=T0
    ),
    "bulletin.published": BulletinPublished(
        **bulletin_fields(),
        texts=(
            {"language": "en", "headline": "Rumor: raid on Eastside", "body": "Not confirmed."},
            {"language": "es", "headline": "Rumor: redada en Eastside", "body": "No confirmado."},
        ),
        channels=("public_feed", "liaison", "radio"),
        area_code="district-3",
        area="Eastside",
        approved_by=VETTER_ID,
        published_at=T0,
        expires_at=T0 + timedelta(hours=6),
    ),
    "bulletin.delivery_failed": BulletinDeliveryFailed(
        bulletin_id=BULLETIN_ID,
        version=1,
        status="Actual",
        recipient_id=SPOC_ID,
        channel="email",
        reason="expired",
        attempts=7,
        final=True,
        failed_at=T0,
    ),
    "bulletin.retracted": BulletinRetracted(
        **bulletin_fields(version=2, msg_type="Cancel", references=(version_ref(BULLETIN_ID, 1),)),
        retracted_by=VETTER_ID,
        reason_code="superseded",
        retracted_at=T0,
    ),
    "directory.published": DirectoryPublished(
        directory_id=DIRECTORY_ID,
        version=3,
        person_ids=(SPOC_ID, BACKUP_ID),
        published_at=T0,
    ),
    "dlq.dead_lettered": DeadLettered(
        dead_letter_id=uuid4(),
        original_topic=topics.NOTICES,
        original_partition=2,
        original_offset=41,
        original_key=b64encode(str(NOTICE_ID).encode()),
        original_headers=(("ce_type", "notice.received"), ("ce_id", "abc")),
        original_value=b64encode(b"{not json"),
        error_type="pydantic_core.ValidationError",
        error_message="1 validation error",
        attempts=5,
        consumer_group="router",
        failed_at=T0,
    ),
}


def test_every_brief_topic_has_exactly_its_events() -> None:
    registered: dict[str, set[str]] = {}
    for event_type, model in EVENT_MODELS.items():
        registered.setdefault(model.topic, set()).add(event_type)
    assert registered == BRIEF_CONTRACT
    assert set(ALL_TOPICS) == set(BRIEF_CONTRACT)


@pytest.mark.parametrize("event_type", sorted(EVENT_MODELS))
def test_event_type_prefix_matches_topic(event_type: str) -> None:
    model = EVENT_MODELS[event_type]
    assert model.event_type == event_type
    assert event_type.startswith(TOPIC_PREFIX[model.topic])


@pytest.mark.parametrize("event_type", sorted(EVENT_MODELS))
def test_subject_field_is_a_required_uuid(event_type: str) -> None:
    field = EVENT_MODELS[event_type].model_fields[EVENT_MODELS[event_type].subject_field]
    assert field.annotation is UUID
    assert field.is_required()


@pytest.mark.parametrize("event_type", sorted(EVENT_MODELS))
def test_example_round_trips_through_json(event_type: str) -> None:
    event = EXAMPLES[event_type]
    assert type(event).event_type == event_type
    parsed = parse_event(event_type, event.model_dump_json().encode())
    assert parsed == event
    assert type(parsed) is type(event)


@pytest.mark.parametrize("event_type", sorted(EVENT_MODELS))
def test_unknown_fields_are_rejected(event_type: str) -> None:
    data = json.loads(EXAMPLES[event_type].model_dump_json())
    data["surprise"] = 1
    with pytest.raises(ValidationError, match="surprise"):
        parse_event(event_type, json.dumps(data))


@pytest.mark.parametrize("event_type", sorted(EVENT_MODELS))
def test_naive_datetimes_are_rejected(event_type: str) -> None:
    data = json.loads(EXAMPLES[event_type].model_dump_json())
    time_fields = [name for name, value in data.items() if isinstance(value, str) and "T" in value]
    assert time_fields, "every event records when it happened"
    for name in time_fields:
        naive = dict(data, **{name: data[name].replace("Z", "")})
        with pytest.raises(ValidationError):
            parse_event(event_type, json.dumps(naive))


@pytest.mark.parametrize("event_type", sorted(EVENT_MODELS))
def test_key_is_the_encoded_subject(event_type: str) -> None:
    event = EXAMPLES[event_type]
    assert event.key() == event.subject().encode()
    assert event.subject() == str(getattr(event, type(event).subject_field))


def test_subject_and_key_are_the_aggregate_id() -> None:
    assert EXAMPLES["notice.updated"].subject() == str(NOTICE_ID)
    assert EXAMPLES["notice.updated"].key() == str(NOTICE_ID).encode()
    assert EXAMPLES["alert.acknowledged"].subject() == str(ALERT_ID)
    assert EXAMPLES["rumor.assessed"].key() == str(RUMOR_ID).encode()
    assert EXAMPLES["bulletin.published"].key() == str(BULLETIN_ID).encode()


def test_dead_letter_keeps_the_original_bytes() -> None:
    dead = EXAMPLES["dlq.dead_lettered"]
    assert isinstance(dead, DeadLettered)
    assert dead.key() == str(dead.dead_letter_id).encode()
    assert dead.original_key_bytes() == str(NOTICE_ID).encode()
    assert dead.original_value_bytes() == b"{not json"


def test_dead_letter_rejects_non_base64() -> None:
    data = json.loads(EXAMPLES["dlq.dead_lettered"].model_dump_json())
    data["original_value"] = "not base64!"
    with pytest.raises(ValidationError, match="base64"):
        DeadLettered.model_validate(data)


def test_events_are_immutable() -> None:
    received = EXAMPLES["notice.received"]
    assert isinstance(received, NoticeReceived)
    with pytest.raises(ValidationError, match="frozen"):
        received.status = "Test"  # type: ignore[misc]


def test_unknown_event_type_is_a_clear_key_error() -> None:
    with pytest.raises(UnknownEventType, match=r"'notice\.exploded'.*notice\.received"):
        model_for("notice.exploded")
    with pytest.raises(KeyError):
        parse_event("notice.exploded", b"{}")


def test_duplicate_event_type_is_refused() -> None:
    with pytest.raises(DuplicateEventType, match=r"notice\.received"):

        class Impostor(EventData):
            event_type = "notice.received"
            topic = topics.NOTICES
            subject_field = "notice_id"
            notice_id: UUID

    assert EVENT_MODELS["notice.received"] is NoticeReceived


def test_models_for_topic_lists_the_topic_events() -> None:
    names = [model.event_type for model in models_for_topic(topics.RUMORS)]
    assert names == ["rumor.assessed", "rumor.reported"]


def test_drill_statuses() -> None:
    assert not is_drill("Actual")
    assert is_drill("Exercise")
    assert is_drill("Test")


def test_version_ref_round_trips() -> None:
    assert parse_version_ref(version_ref(NOTICE_ID, 7)) == (NOTICE_ID, 7)
    with pytest.raises(ValueError, match="version"):
        parse_version_ref(f"{NOTICE_ID}:0")
    with pytest.raises(ValueError, match="version"):
        version_ref(NOTICE_ID, 0)


def test_sets_are_stored_sorted_and_unique() -> None:
    reported = EXAMPLES["rumor.reported"]
    assert isinstance(reported, RumorReported)
    assert reported.channels == ("phone_line", "radio")
    received = NoticeReceived(
        **notice_snapshot(restricted_fingerprints=("f" * 32, "0" * 32, "f" * 32))
    )
    assert received.restricted_fingerprints == ("0" * 32, "f" * 32)


def test_notice_window_must_not_end_before_it_starts() -> None:
    with pytest.raises(ValidationError, match="window_end"):
        NoticeReceived(**notice_snapshot(window_end=T0))


@pytest.mark.parametrize(
    ("model", "version", "references"),
    [
        (NoticeReceived, 2, ()),
        (NoticeReceived, 1, (f"{NOTICE_ID}:1",)),
        (NoticeUpdated, 2, ()),
        (NoticeUpdated, 1, ()),
        (NoticeUpdated, 2, (f"{NOTICE_ID}:2",)),
        (NoticeUpdated, 2, (f"{uuid4()}:1",)),
    ],
)
def test_notice_version_chain_is_checked(
    model: type[NoticeReceived] | type[NoticeUpdated], version: int, references: tuple[str, ...]
) -> None:
    with pytest.raises(ValidationError):
        model(**notice_snapshot(version=version, references=references))


def test_restricted_fingerprints_must_be_fingerprints() -> None:
    with pytest.raises(ValidationError, match="restricted_fingerprints"):
        NoticeReceived(**notice_snapshot(restricted_fingerprints=("Juan Perez",)))


def test_author_cannot_approve_or_sign_off_own_bulletin() -> None:
    with pytest.raises(ValidationError, match="author"):
        BulletinApproved(
            **bulletin_fields(),
            languages=("en", "es"),
            signoffs=signoffs(),
            author_id=VETTER_ID,
            approved_by=VETTER2_ID,
            approved_at=T0,
        )


def test_every_language_needs_a_signoff() -> None:
    with pytest.raises(ValidationError, match="sign-off"):
        BulletinApproved(
            **bulletin_fields(),
            languages=("en", "es"),
            signoffs=signoffs()[:1],
            author_id=AUTHOR_ID,
            approved_by=VETTER_ID,
            approved_at=T0,
        )


def test_drill_bulletin_is_never_published_to_the_public_feed() -> None:
    published = EXAMPLES["bulletin.published"]
    data = json.loads(published.model_dump_json()) | {"status": "Exercise"}
    with pytest.raises(ValidationError, match="drill"):
        BulletinPublished.model_validate(data)
    data["channels"] = ["liaison", "radio"]
    assert BulletinPublished.model_validate(data).status == "Exercise"


def test_published_text_is_looked_up_by_language() -> None:
    published = EXAMPLES["bulletin.published"]
    assert isinstance(published, BulletinPublished)
    assert published.text("es").headline == "Rumor: redada en Eastside"


def test_rumor_fact_bulletin_names_its_rumor() -> None:
    with pytest.raises(ValidationError, match="rumor_id"):
        BulletinRejected(
            **bulletin_fields(rumor_id=None),
            rejected_by=VETTER_ID,
            reason_codes=("x",),
            rejected_at=T0,
        )


def test_reason_codes_are_codes_not_free_text() -> None:
    with pytest.raises(ValidationError):
        BulletinRejected(
            **bulletin_fields(),
            rejected_by=VETTER_ID,
            reason_codes=("Saw him at 12 Oak St",),
            rejected_at=T0,
        )


def test_package_exports_every_event_model() -> None:
    exported = [getattr(schemas, name) for name in schemas.__all__]
    assert all(model in exported for model in EVENT_MODELS.values())
