"""Clustering reports into rumors and suggesting a status from notices (pure rules)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from services.rumor_control.config import PACKAGE_DIR
from services.rumor_control.domain import (
    NoticeFacts,
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
    return RumorFacts(status, area, T0, T0 + timedelta(minutes=30))  # type: ignore[arg-type]


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
