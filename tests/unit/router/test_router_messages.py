"""Notification text: DRILL first for drills, releasable fields only, escaped HTML pages."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from services.router.directory import InvalidDirectory, check_directory, read_directory_file
from services.router.domain import AnnotationText, EscalationPosition, NoticeContent
from services.router.messages import (
    format_window,
    render_footer,
    render_notification,
    render_page,
)

START = datetime(2026, 11, 26, 20, 0, tzinfo=UTC)
CONTENT = NoticeContent(
    operation_type="worksite",
    public_safety_nexus=False,
    window_start=START,
    window_end=START + timedelta(hours=4),
    area="District 4",
    summary="Federal agents plan a worksite operation.",
    policy_annotations=(
        AnnotationText(code="no_worksite_raids", text="The department takes no part in raids."),
    ),
)
EXAMPLE = Path(__file__).resolve().parents[3] / "services" / "router" / "directory.example.yaml"


def render(
    status: str = "Actual", purpose: str = "alert", urgency: str = "high"
) -> tuple[str, str]:
    message = render_notification(
        alert_id=uuid.UUID(int=1),
        notice_id=uuid.UUID(int=2),
        notice_version=3,
        status=status,  # type: ignore[arg-type]
        urgency=urgency,
        content=CONTENT,
        purpose=purpose,
        position=EscalationPosition(0, 1),
        notice_url="http://intake.test/v1/notices/00000000-0000-0000-0000-000000000002",
        timezone="America/Chicago",
        horizon=timedelta(hours=2),
        cancel_reason="operation_postponed",
    )
    return message.headline, message.body


@pytest.mark.parametrize("status", ["Exercise", "Test"])
@pytest.mark.parametrize("purpose", ["alert", "escalation", "update", "cancel"])
def test_drills_start_with_drill_in_headline_and_body(status: str, purpose: str) -> None:
    headline, body = render(status=status, purpose=purpose)
    assert headline.startswith("DRILL ")
    assert body.startswith("DRILL")


def test_actual_notice_is_not_marked_drill_and_carries_releasable_fields() -> None:
    headline, body = render()
    assert "DRILL" not in headline + body
    assert headline.startswith("HIGH URGENCY - Advance notice")
    assert "District 4" in body
    assert "Federal agents plan a worksite operation." in body
    assert "The department takes no part in raids." in body
    # The window is shown in the department's zone (CST is UTC-6 in November).
    assert "Thu 26 Nov 2026 14:00 - 18:00 CST" in body
    assert "http://intake.test/v1/notices/" in body  # restricted detail is read there
    assert "token=" not in body  # the ack link is added at send time, never on the topic


def test_with_a_console_the_body_links_to_the_alert_page_instead_of_intake() -> None:
    message = render_notification(
        alert_id=uuid.UUID(int=1),
        notice_id=uuid.UUID(int=2),
        notice_version=1,
        status="Actual",
        urgency="normal",
        content=CONTENT,
        purpose="alert",
        position=EscalationPosition(0, 0),
        notice_url="http://intake.test/v1/notices/00000000-0000-0000-0000-000000000002",
        console_url="https://console.test/alerts/00000000-0000-0000-0000-000000000001",
        timezone="America/Chicago",
        horizon=timedelta(hours=2),
    )
    assert "https://console.test/alerts/00000000-0000-0000-0000-000000000001" in message.body
    assert "intake.test" not in message.body


def test_purposes_say_what_happened() -> None:
    assert "next contact in the escalation chain (step 2)" in render(purpose="escalation")[1]
    assert "updated this notice (version 3)" in render(purpose="update")[1]
    headline, body = render(purpose="cancel")
    assert headline.startswith("CANCELLED")
    assert "operation postponed" in body


def test_window_across_midnight_names_both_days() -> None:
    text = format_window(START, START + timedelta(hours=8), "UTC")
    assert text == "Thu 26 Nov 2026 20:00 - Fri 27 Nov 2026 04:00 UTC"


def test_pages_escape_what_they_show() -> None:
    hostile = CONTENT.model_copy(update={"summary": "<script>alert(1)</script>"})
    page = render_page(
        "ack_confirm.html.j2",
        drill=True,
        content=hostile,
        window="w",
        urgency="high",
        notice_version=1,
        notice_url="http://intake.test/x",
        already=False,
        action="/ack",
        token="abc",
    )
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;" in page
    assert "DRILL" in page


def test_example_directory_file_is_valid() -> None:
    document = read_directory_file(EXAMPLE)
    assert len(document.people) == 4
    assert document.spoc.delegations


def test_invalid_directory_lists_every_problem_with_its_path(tmp_path: Path) -> None:
    bad = tmp_path / "directory.yaml"
    bad.write_text(
        "people:\n"
        "  - id: 00000000-0000-0000-0000-000000000001\n"
        "    name: A\n"
        "    channels: {email: nope}\n"
        "spoc: {person_id: 00000000-0000-0000-0000-000000000009}\n"
        "policy: {steps: [{target: spoc, wait_s: 0}]}\n"
    )
    with pytest.raises(InvalidDirectory) as caught:
        read_directory_file(bad)
    paths = {e.path for e in caught.value.errors}
    assert paths == {"people[0].channels.email", "policy.steps[0].wait_s"}
    # Schema first; once the shape is right the rules run and name the unknown SPOC.
    with pytest.raises(InvalidDirectory) as caught:
        check_directory(
            {
                "people": [{"id": str(uuid.UUID(int=1)), "name": "A"}],
                "spoc": {"person_id": str(uuid.UUID(int=9))},
                "policy": {"steps": [{"target": "spoc", "wait_s": 5}]},
            }
        )
    assert [e.path for e in caught.value.errors] == ["spoc.person_id"]


def test_broken_yaml_is_reported_by_line(tmp_path: Path) -> None:
    bad = tmp_path / "directory.yaml"
    bad.write_text("people: [\n  - oops: : :\n")
    with pytest.raises(InvalidDirectory) as caught:
        read_directory_file(bad)
    assert caught.value.errors[0].path.startswith("line ")


def test_the_department_time_zone_is_one_setting_read_by_router_and_rumor_control(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from services.router.config import RouterSettings
    from services.rumor_control.config import RumorControlSettings
    from services.rumor_control.deps import department_of

    monkeypatch.delenv("AVISO_DEPARTMENT_TIMEZONE", raising=False)
    monkeypatch.delenv("AVISO_ROUTER_DISPLAY_TIMEZONE", raising=False)
    # The example department's default: local time in notifications, not UTC.
    assert RouterSettings().department_timezone == "America/Chicago"
    _headline, body = render()
    assert "Thu 26 Nov 2026 14:00 - 18:00 CST" in body  # 20:00 UTC is 14:00 in Chicago
    # The former router name is still read; rumor_control's texts follow the same setting.
    monkeypatch.setenv("AVISO_ROUTER_DISPLAY_TIMEZONE", "America/Denver")
    assert RouterSettings().department_timezone == "America/Denver"
    assert str(department_of(RumorControlSettings()).tz) == "America/Denver"
    monkeypatch.setenv("AVISO_DEPARTMENT_TIMEZONE", "Not/AZone")
    with pytest.raises(ValueError, match="Not/AZone"):
        RouterSettings()


def test_the_footer_carries_the_link_and_the_reference_in_the_departments_time() -> None:
    """The exact text the template rendered before the footer was formatted in code."""
    delivery = uuid.UUID("908378e0-6480-435a-9ed2-ebbbb9994513")
    at = datetime(2026, 11, 29, 7, 34, tzinfo=UTC)
    with_link = render_footer(
        ack_url="https://x.test/ack?t=abc",
        ack_expires_at=at,
        correlation_id="c-1",
        delivery_id=delivery,
        timezone="America/Chicago",
    )
    assert with_link == (
        "\nAcknowledge (one tap, valid until Sun 29 Nov 01:34 CST):\n"
        "https://x.test/ack?t=abc\n"
        f"\nReference: c-1 / delivery {delivery}\n"
    )
    without = render_footer(
        ack_url=None,
        ack_expires_at=None,
        correlation_id=None,
        delivery_id=delivery,
        timezone="America/Chicago",
    )
    assert without == f"\nReference: - / delivery {delivery}\n"
