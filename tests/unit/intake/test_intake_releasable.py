"""A releasable field never repeats a restricted term of the same notice (issue 12, item 1)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.intake.domain import RestrictedTermInReleasable, check_releasable, rules

TERMS = ["José María García", "2231 Folsom St Apt 4", "7XYZ 123", "+1 415 555 0199", "de la"]


@pytest.mark.parametrize(
    "summary",
    [
        "Agents will arrest José María García at home.",
        "agents will arrest JOSE MARIA GARCIA",
        "Agents will arrest jose-maria  garcia.",
        "Target: Jose. Maria. Garcia!",
        "A house at 2231 folsom st, apt. 4.",
        "The truck 7xyz123 is parked.",
        "The truck 7-XYZ-123 is parked.",
        "Call (415) 555-0199 for details.",
    ],
)
def test_a_restricted_term_in_a_releasable_field_is_refused_whatever_its_spelling(
    summary: str,
) -> None:
    with pytest.raises(RestrictedTermInReleasable) as caught:
        check_releasable({"area": "Mission District", "summary": summary}, TERMS)
    assert caught.value.fields == ("summary",)
    # The exception names the field only: nothing of the term.
    assert "garc" not in str(caught.value).lower()
    assert "folsom" not in str(caught.value).lower()


@pytest.mark.parametrize(
    "summary",
    [
        "Federal agents plan a targeted operation in the district.",
        "García is a common surname; no one is named here.",  # a part of a name is not the name
        "Operation near Folsom Street, de la Mission.",  # weak-only term "de la" never matches
        "Agents at 2231 Mission St.",
    ],
)
def test_ordinary_releasable_text_passes(summary: str) -> None:
    check_releasable({"area": "Mission District", "summary": summary}, TERMS)


def test_every_offending_field_is_named() -> None:
    with pytest.raises(RestrictedTermInReleasable) as caught:
        check_releasable({"area": "2231 Folsom St Apt 4", "summary": "jose maria garcia"}, TERMS)
    assert caught.value.fields == ("area", "summary")


_WORDS = st.lists(st.sampled_from(["a", "ab", "b", "ba", "abc", "c", "12", "3"]), max_size=8)


@given(text=_WORDS, wanted=st.lists(_WORDS.filter(bool), min_size=1, max_size=4))
def test_the_substring_search_before_the_scan_changes_no_answer(
    text: list[str], wanted: list[list[str]]
) -> None:
    # The run-together search only skips terms the word-by-word scan would not match.
    expected = any(rules._contains_term(text, words) for words in wanted)
    assert rules._contains_any(text, wanted) is expected
