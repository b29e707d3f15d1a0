"""Clustering reports into rumors and suggesting a status from notices (pure rules)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from services.rumor_control.config import PACKAGE_DIR
from services.rumor_control.domain import (
    NoticeFacts,
    ReportTime,
    RumorCandidate,
    RumorFacts,
    choose_rumor,
    suggest_assessment,
)
from services.rumor_control.gazetteer import load_gazetteer

T0 = datetime(2026, 3, 3, 15, 0, tzinfo=UTC)
WINDOW = timedelta(hours=3)
GAZETTEER = load_gazetteer(PACKAGE_DIR / "gazetteer.yaml")


def _candidate(start_h: float, end_h: float) -> RumorCandidate:
    return RumorCandidate(uuid.uuid4(), T0 + timedelta(hours=start_h), T0 + timedelta(hours=end_h))


def test_a_report_within_the_window_joins_the_rumor() -> None:
    rumor = _candidate(0, 1)
    assert choose_rumor([rumor], observed_at=T0 + timedelta(hours=3.5), window=WINDOW) == (
        rumor.rumor_id
    )
    assert choose_rumor([rumor], observed_at=T0 - timedelta(hours=2), window=WINDOW) == (
        rumor.rumor_id
    )


def test_a_report_outside_the_window_opens_a_new_rumor() -> None:
    rumor = _candidate(0, 1)
    assert choose_rumor([rumor], observed_at=T0 + timedelta(hours=4.5), window=WINDOW) is None
    assert choose_rumor([rumor], observed_at=T0 - timedelta(hours=3.5), window=WINDOW) is None
    assert choose_rumor([], observed_at=T0, window=WINDOW) is None


def test_the_nearest_rumor_wins() -> None:
    early, late = _candidate(0, 0.5), _candidate(4, 5)
    chosen = choose_rumor([early, late], observed_at=T0 + timedelta(hours=3), window=WINDOW)
    assert chosen == late.rumor_id
    inside = choose_rumor([early, late], observed_at=T0 + timedelta(hours=0.25), window=WINDOW)
    assert inside == early.rumor_id


def _rumor(area: str | None = "riverside", status: str = "Actual") -> RumorFacts:
    times = (ReportTime(T0, T0), ReportTime(T0 + timedelta(minutes=30), T0))
    return RumorFacts(status, area, times)  # type: ignore[arg-type]


def _notice(
    area: str, *, cancelled: bool = False, status: str = "Actual", shift_h: float = 0
) -> NoticeFacts:
    start = T0 + timedelta(hours=shift_h)
    return NoticeFacts(uuid.uuid4(), status, area, start, start + timedelta(hours=2), cancelled)  # type: ignore[arg-type]


def test_an_overlapping_notice_suggests_confirmed() -> None:
    notice = _notice("district-2")  # Riverside lies in District 2
    suggestion = suggest_assessment(
        _rumor(), [notice], gazetteer=GAZETTEER, slack=timedelta(hours=1)
    )
    assert suggestion.assessment == "Confirmed"
    assert suggestion.notice_ids == (notice.notice_id,)


def test_only_cancelled_notices_suggest_false() -> None:
    suggestion = suggest_assessment(
        _rumor(), [_notice("riverside", cancelled=True)], gazetteer=GAZETTEER, slack=timedelta(0)
    )
    assert suggestion.assessment == "False"
    assert suggestion.reason_code == "suggest.notice_cancelled"


def test_no_notice_for_the_place_or_time_suggests_not_confirmed() -> None:
    far = _notice("riverside", shift_h=10)
    elsewhere = _notice("lakeview")
    drill = _notice("riverside", status="Exercise")
    suggestion = suggest_assessment(
        _rumor(), [far, elsewhere, drill], gazetteer=GAZETTEER, slack=timedelta(hours=1)
    )
    assert suggestion.assessment == "Not confirmed"
    assert suggestion.notice_ids == ()


def test_an_unknown_place_cannot_be_verified() -> None:
    suggestion = suggest_assessment(_rumor(None), [], gazetteer=GAZETTEER, slack=timedelta(0))
    assert suggestion.assessment == "Unable to verify"


TOMORROW = T0 + timedelta(days=1)


def _heard_today(claimed_at: object = None) -> RumorFacts:
    return RumorFacts("Actual", "riverside", (ReportTime(claimed_at, T0),))  # type: ignore[arg-type]


def _tomorrow() -> NoticeFacts:
    return NoticeFacts(
        uuid.uuid4(), "Actual", "riverside", TOMORROW, TOMORROW + timedelta(hours=2), False
    )  # type: ignore[arg-type]


def test_a_claim_without_a_time_heard_today_anticipates_tomorrows_window() -> None:
    # "They say ICE will be in Riverside tomorrow": the report time lies ahead of the window.
    notice = _tomorrow()
    suggestion = suggest_assessment(
        _heard_today(), [notice], gazetteer=GAZETTEER, slack=timedelta(hours=2),
        anticipation=timedelta(hours=72),
    )  # fmt: skip
    assert suggestion.assessment == "Confirmed"
    assert suggestion.notice_ids == (notice.notice_id,)
    # Without anticipation the same report is "Not confirmed" (the fault of issue 13).
    plain = suggest_assessment(
        _heard_today(), [notice], gazetteer=GAZETTEER, slack=timedelta(hours=2)
    )
    assert plain.assessment == "Not confirmed"


def test_a_claim_naming_tomorrow_relates_by_its_own_time() -> None:
    notice = _tomorrow()
    about_tomorrow = _heard_today(claimed_at=TOMORROW + timedelta(hours=1))
    suggestion = suggest_assessment(
        about_tomorrow, [notice], gazetteer=GAZETTEER, slack=timedelta(hours=2)
    )
    assert suggestion.assessment == "Confirmed"


def test_a_claim_about_a_past_sighting_does_not_anticipate() -> None:
    # Its own time (seen this morning) is a day before the window: not the same activity.
    seen_this_morning = _heard_today(claimed_at=T0 - timedelta(hours=2))
    suggestion = suggest_assessment(
        seen_this_morning, [_tomorrow()], gazetteer=GAZETTEER, slack=timedelta(hours=2),
        anticipation=timedelta(hours=72),
    )  # fmt: skip
    assert suggestion.assessment == "Not confirmed"


def test_a_report_made_after_the_window_and_its_slack_is_not_related() -> None:
    late = RumorFacts("Actual", "riverside", (ReportTime(None, TOMORROW + timedelta(hours=5)),))
    suggestion = suggest_assessment(
        late, [_tomorrow()], gazetteer=GAZETTEER, slack=timedelta(hours=2),
        anticipation=timedelta(hours=72),
    )  # fmt: skip
    assert suggestion.assessment == "Not confirmed"
