"""Vetting rules: author is not approver, each language signed off, no guardrail blocking."""

from __future__ import annotations

import uuid

import pytest

from services.rumor_control.domain import (
    VettingError,
    bulletin_status,
    channels_for,
    check_approval,
    check_editable,
    check_sign_off,
    delivery_id,
    missing_signoffs,
    person_id,
)

AUTHOR, OTHER = uuid.uuid4(), uuid.uuid4()


def _refused(**kwargs: object) -> VettingError:
    with pytest.raises(VettingError) as caught:
        check_approval(**kwargs)  # type: ignore[arg-type]
    return caught.value


def test_the_author_cannot_approve() -> None:
    error = _refused(
        state="drafted", author_id=AUTHOR, vetter_id=AUTHOR, blocked=(), signed=["en", "es"]
    )
    assert error.code == "vetting.author_cannot_approve"
    assert error.forbidden


def test_each_language_needs_a_signoff() -> None:
    error = _refused(state="drafted", author_id=AUTHOR, vetter_id=OTHER, blocked=(), signed=["en"])
    assert error.code == "vetting.signoff_missing"
    assert "es" in error.detail
    assert missing_signoffs([]) == ("en", "es")


def test_a_blocked_draft_cannot_be_approved_or_signed_off() -> None:
    error = _refused(
        state="drafted",
        author_id=None,
        vetter_id=OTHER,
        blocked=("pii.email",),
        signed=["en", "es"],
    )
    assert error.code == "vetting.blocked"
    with pytest.raises(VettingError, match=r"vetting\.blocked"):
        check_sign_off(state="drafted", author_id=None, vetter_id=OTHER, blocked=("pii.email",))


def test_only_drafts_are_approved() -> None:
    error = _refused(
        state="published", author_id=None, vetter_id=OTHER, blocked=(), signed=["en", "es"]
    )
    assert error.code == "vetting.not_a_draft"
    with pytest.raises(VettingError, match=r"vetting\.not_editable"):
        check_editable("retracted")


def test_another_vetter_with_both_signoffs_approves() -> None:
    check_approval(
        state="drafted", author_id=AUTHOR, vetter_id=OTHER, blocked=(), signed=["es", "en"]
    )
    check_approval(
        state="drafted", author_id=None, vetter_id=OTHER, blocked=(), signed=["es", "en"]
    )


def test_the_author_cannot_sign_off() -> None:
    with pytest.raises(VettingError) as caught:
        check_sign_off(state="drafted", author_id=AUTHOR, vetter_id=AUTHOR, blocked=())
    assert caught.value.code == "vetting.author_cannot_sign_off"


def test_drills_never_go_to_the_public_feed() -> None:
    assert channels_for("Actual") == ("liaison", "public_feed", "radio")
    assert "public_feed" not in channels_for("Exercise")
    assert bulletin_status(["Actual", "Test"]) == "Test"
    assert bulletin_status(["Actual"]) == "Actual"


def test_ids_are_stable() -> None:
    assert person_id("vetter-ana") == person_id("vetter-ana") != person_id("vetter-beto")
    known = uuid.uuid4()
    assert person_id(str(known)) == known
    bulletin, recipient = uuid.uuid4(), uuid.uuid4()
    assert delivery_id(bulletin, 1, recipient, "email") == delivery_id(
        bulletin, 1, recipient, "email"
    )
    assert delivery_id(bulletin, 1, recipient, "email") != delivery_id(
        bulletin, 2, recipient, "email"
    )
