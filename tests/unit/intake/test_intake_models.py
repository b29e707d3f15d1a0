"""Request validation: strict shapes, clean text, zoned and bounded times, window order."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from services.intake.notices.commands import NoticeCancellation, NoticeRevision, NoticeSubmission


def body(**overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "reference": "ERO-2026-0042",
        "status": "Actual",
        "operation_type": "targeted_arrest",
        "public_safety_nexus": True,
        "window_start": "2026-12-01T06:00:00-08:00",
        "window_end": "2026-12-01T10:00:00-08:00",
        "area": "Mission District",
        "summary": "Planned operation.",
        "source": {"field_office_name": "SF ERO", "agent": {"name": "Dana Whitlock"}},
    }
    values.update(overrides)
    return values


def errors(data: dict[str, Any], model: type[Any] = NoticeSubmission) -> list[str]:
    with pytest.raises(ValidationError) as error:
        model.model_validate(data)
    return [".".join(str(p) for p in e["loc"]) + ": " + e["msg"] for e in error.value.errors()]


def test_a_minimal_notice_is_valid_and_normalised_to_utc() -> None:
    notice = NoticeSubmission.model_validate(body(area="  Mission District  "))
    assert notice.window_start == datetime(2026, 12, 1, 14, 0, tzinfo=UTC)
    assert notice.window_start.utcoffset() is not None
    assert notice.area == "Mission District"
    assert notice.received_via == "api"
    assert notice.restricted.names == []


def test_equal_content_in_other_zones_compares_equal() -> None:
    a = NoticeSubmission.model_validate(body())
    b = NoticeSubmission.model_validate(
        body(window_start="2026-12-01T14:00:00Z", window_end="2026-12-01T19:00:00+01:00")
    )
    assert a.content() == b.content()
    assert "reference" not in a.content()


@pytest.mark.parametrize(
    ("overrides", "where"),
    [
        ({"priority": "high"}, "priority"),
        (
            {"source": {"field_office_name": "x", "agent": {"name": "y", "badge": "1"}}},
            "source.agent.badge",
        ),
        ({"window_end": "2026-12-01T05:00:00-08:00"}, "window_end must be after window_start"),
        ({"window_end": "2026-12-01T06:00:00-08:00"}, "window_end must be after window_start"),
        ({"window_start": "2026-12-01T06:00:00"}, "window_start"),
        ({"window_start": "0001-01-01T00:00:00+14:00"}, "year must be between"),
        ({"public_safety_nexus": "yes"}, "public_safety_nexus"),
        ({"public_safety_nexus": 1}, "public_safety_nexus"),
        ({"status": "Rumor"}, "status"),
        ({"area": "Mission\x00District"}, "control character"),
        ({"area": "\ud800"}, "area"),  # pydantic refuses it before our own check
        ({"area": "   "}, "blank"),
        ({"area": "x" * 201}, "area"),
        ({"reference": "has space"}, "reference"),
        ({"area_code": "District 3"}, "area_code"),
        ({"restricted": {"names": ["x"] * 51}}, "restricted.names"),
        ({"restricted": {"names": [""]}}, "blank"),
        (
            {"source": {"field_office_name": "x", "agent": {"name": "y", "phone": "call me"}}},
            "phone",
        ),
        (
            {"source": {"field_office_name": "x", "agent": {"name": "y", "email": "nobody"}}},
            "email",
        ),
    ],
)
def test_invalid_notices_are_refused(overrides: dict[str, Any], where: str) -> None:
    assert any(where in line for line in errors(body(**overrides))), errors(body(**overrides))


def test_free_text_may_span_lines_but_names_may_not() -> None:
    ok = NoticeSubmission.model_validate(body(restricted={"free_text": "line one\nline two"}))
    assert ok.restricted.free_text == "line one\nline two"
    assert errors(body(restricted={"names": ["first\nsecond"]}))


def test_revision_and_cancellation_shapes() -> None:
    revision = {k: v for k, v in body().items() if k != "reference"}
    assert NoticeRevision.model_validate({**revision, "expected_version": 2}).expected_version == 2
    assert errors({**revision, "reference": "x"}, NoticeRevision)  # the reference cannot change
    assert errors({**revision, "expected_version": "2"}, NoticeRevision)
    cancel = NoticeCancellation.model_validate({"reason": "operation_postponed"})
    assert cancel.content() == {
        "reason": "operation_postponed",
        "received_via": "api",
        "sent_at": None,
    }
    assert errors({"reason": "because"}, NoticeCancellation)
    assert errors({}, NoticeCancellation)
