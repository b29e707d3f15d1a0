"""Pure rules of a notice: versions, lifecycle, idempotency, access, digests, fingerprints."""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas.fingerprints import find_leaks, fingerprint, tokens
from services.intake.domain import (
    IntakeConflict,
    RestrictedDetail,
    StoredIdempotencyKey,
    cancel_outcome,
    canonical_json,
    check_idempotency_key,
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
    rules,
    source_key,
)

KEY = b"unit-test-fingerprint-key-0123456789"
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def detail(**overrides: object) -> RestrictedDetail:
    values: dict[str, object] = {
        "field_office_id": "fo-sf",
        "field_office_name": "San Francisco ERO",
        "agent_name": "Dana Whitlock",
        "recorded_by": "Desk sergeant",
        "agent_phone": "+1 415 555 0199",
        "agent_email": "d.whitlock@ice.dhs.gov",
        "names": ("Esteban Quiroga",),
        "addresses": ("2231 Folsom St Apt 4",),
        "vehicles": ("Silver Tacoma 7XYZ123",),
        "exact_locations": ("Corner of 19th and Folsom",),
        "free_text": "Subject drives a red pickup and parks behind the church.",
    }
    values.update(overrides)
    return RestrictedDetail(**values)  # type: ignore[arg-type]


# --- versions ----------------------------------------------------------------------------


def test_cap_msg_types_and_references() -> None:
    notice_id = uuid.UUID("6f1c0a52-8a0e-4c37-9d0c-2f1e4c1b8a10")
    assert msg_type_for(1) == "Alert"
    assert msg_type_for(2) == "Update"
    assert msg_type_for(5, cancel=True) == "Cancel"
    assert references_for(notice_id, 1) == ()
    assert references_for(notice_id, 3) == (f"{notice_id}:1", f"{notice_id}:2")


# --- lifecycle ---------------------------------------------------------------------------


def test_revision_of_an_open_notice() -> None:
    assert (
        revision_outcome(
            "received", current_digest="a", digest="b", current_version=1, expected_version=None
        )
        == "revise"
    )
    assert (
        revision_outcome(
            "updated", current_digest="b", digest="b", current_version=2, expected_version=None
        )
        == "unchanged"
    )


def test_a_retried_update_is_recognised_before_the_version_check() -> None:
    # The retry expected version 1, but its own first attempt already made version 2.
    outcome = revision_outcome(
        "updated", current_digest="b", digest="b", current_version=2, expected_version=1
    )
    assert outcome == "unchanged"


def test_revision_with_a_stale_expected_version_conflicts() -> None:
    with pytest.raises(IntakeConflict) as error:
        revision_outcome(
            "updated", current_digest="a", digest="b", current_version=3, expected_version=2
        )
    assert error.value.code == "version-mismatch"
    assert error.value.extensions == {"current_version": 3}


@pytest.mark.parametrize("state", ["cancelled", "expired"])
def test_closed_notices_do_not_change(state: str) -> None:
    with pytest.raises(IntakeConflict) as error:
        revision_outcome(
            state, current_digest="b", digest="b", current_version=2, expected_version=None
        )
    assert error.value.code == f"notice-{state}"


def test_cancellation_outcomes() -> None:
    def outcome(state: str, current_reason: str | None, reason: str) -> str:
        return cancel_outcome(
            state,
            current_reason=current_reason,
            reason=reason,
            current_version=2,
            expected_version=None,
        )

    assert outcome("updated", None, "superseded") == "cancel"
    assert outcome("cancelled", "superseded", "superseded") == "already_cancelled"
    with pytest.raises(IntakeConflict, match="another reason"):
        outcome("cancelled", "superseded", "other")
    with pytest.raises(IntakeConflict) as error:
        outcome("expired", None, "other")
    assert error.value.code == "notice-expired"
    with pytest.raises(IntakeConflict):
        cancel_outcome(
            "received", current_reason=None, reason="other", current_version=1, expected_version=3
        )


def test_expiry_and_purge_are_due_only_after_their_periods() -> None:
    grace, retention = timedelta(hours=2), timedelta(days=30)
    end = NOW - grace
    assert expiry_due(state="received", window_end=end, now=NOW, grace=grace)
    assert not expiry_due(
        state="received", window_end=end + timedelta(seconds=1), now=NOW, grace=grace
    )
    assert not expiry_due(state="cancelled", window_end=end, now=NOW, grace=grace)

    closed = NOW - retention
    assert purge_due(
        state="expired", closed_at=closed, purged_at=None, now=NOW, retention=retention
    )
    assert not purge_due(
        state="expired", closed_at=closed, purged_at=NOW, now=NOW, retention=retention
    )
    assert not purge_due(
        state="cancelled",
        closed_at=closed + timedelta(seconds=1),
        purged_at=None,
        now=NOW,
        retention=retention,
    )
    assert not purge_due(
        state="updated", closed_at=None, purged_at=None, now=NOW, retention=retention
    )


# --- idempotency --------------------------------------------------------------------------


def test_idempotency_keys() -> None:
    stored = StoredIdempotencyKey("update", "n-1", "digest-1")
    assert not check_idempotency_key(None, operation="update", notice_id="n-1", digest="digest-1")
    assert check_idempotency_key(stored, operation="update", notice_id="n-1", digest="digest-1")
    for operation, notice_id, digest in (
        ("update", "n-1", "digest-2"),
        ("cancel", "n-1", "digest-1"),
        ("update", "n-2", "digest-1"),
    ):
        with pytest.raises(IntakeConflict) as error:
            check_idempotency_key(stored, operation=operation, notice_id=notice_id, digest=digest)  # type: ignore[arg-type]
        assert error.value.code == "idempotency-key-reused"


def test_content_digest_ignores_key_order_and_is_keyed() -> None:
    a = {"summary": "x", "window": {"start": "s", "end": "e"}}
    b = {"window": {"end": "e", "start": "s"}, "summary": "x"}
    assert content_digest(KEY, a) == content_digest(KEY, b)
    assert content_digest(KEY, a) != content_digest(KEY, {**a, "summary": "y"})
    assert content_digest(KEY, a) != content_digest(b"another-key-of-enough-length", a)
    # Purposes never collide: a source key is not the digest of the same text.
    assert source_key(KEY, "fo-sf") != content_digest(KEY, "fo-sf")  # type: ignore[arg-type]


# --- access -------------------------------------------------------------------------------


# --- restricted detail and fingerprints ------------------------------------------------------


def test_restricted_detail_round_trips_and_lists_every_value() -> None:
    original = detail()
    assert RestrictedDetail.from_json(original.to_json()) == original
    values = original.values()
    for value in (
        "fo-sf",
        "Dana Whitlock",
        "Esteban Quiroga",
        "Silver Tacoma 7XYZ123",
        "Desk sergeant",
    ):
        assert value in values
    # Who recorded it is not part of what the field office said.
    assert detail(recorded_by="Someone else").matter() == original.matter()


def test_fingerprints_let_rumor_control_find_leaks_of_every_term() -> None:
    prints = restricted_fingerprints(KEY, detail())
    assert list(prints) == sorted(set(prints))
    assert all(len(p) == 32 for p in prints)
    draft = (
        "Community members reported Esteban Quiroga near 2231 Folsom and a tacoma 7xyz123; "
        "agent Whitlock called from 415 555 0199."
    )
    leaks = set(find_leaks(KEY, draft, prints))
    # The phone is caught whole (its digits), not by its area code and exchange.
    assert {"esteban quiroga", "2231 folsom", "7xyz123", "whitlock", "4155550199"} <= leaks
    assert "415 555" not in leaks


def test_fingerprints_skip_the_email_domain_and_the_field_office() -> None:
    prints = restricted_fingerprints(KEY, detail())
    harmless = "ICE and DHS at dhs.gov; the San Francisco field office said nothing."
    assert find_leaks(KEY, harmless, prints) == []


def test_free_text_is_fingerprinted_by_phrases_not_common_words() -> None:
    prints = free_text_fingerprints(KEY, "Subject drives a red pickup and parks behind the church.")
    assert "red pickup" in find_leaks(KEY, "a red pickup was seen", prints)
    # Single words of the prose do not block an ordinary bulletin.
    assert find_leaks(KEY, "The church held a forum; a subject of concern.", prints) == []


def _free_text_fingerprints_phrase_by_phrase(key: bytes, text: str) -> set[str]:
    """The rule as first written: every 2-3 word run judged word by word."""
    words = tokens(text)
    grams: set[str] = set()
    for start in range(len(words)):
        for size in (2, 3):
            run = words[start : start + size]
            if len(run) == size and sum(not rules._is_weak(word) for word in run) >= 2:
                grams.add(" ".join(run))
                grams.add("".join(run))
    return {fingerprint(key, gram) for gram in grams}


_PROSE_WORDS = st.sampled_from(
    ["de", "la", "red", "pickup", "12", "2231", "st", "behind", "the", "church", "ab", "x", "José"]
)


@given(st.lists(_PROSE_WORDS, max_size=14))
def test_free_text_fingerprints_judge_each_word_once_with_the_same_result(
    words: list[str],
) -> None:
    text = " ".join(words)
    assert free_text_fingerprints(KEY, text) == _free_text_fingerprints_phrase_by_phrase(KEY, text)


def test_fingerprint_key_id_is_derived_from_the_key() -> None:
    assert fingerprint_key_id(KEY) == fingerprint_key_id(KEY)
    assert fingerprint_key_id(KEY) != fingerprint_key_id(b"another-key-of-enough-length")
    assert fingerprint_key_id(KEY).startswith("fp-")
    assert KEY.hex() not in fingerprint_key_id(KEY)


# Details of every shape the gram choice has a branch for (accents, stopwords, numbers, a
# phone, an e-mail's local part, free text, nothing identifying). The digest is that of
# their fingerprints as computed before the fourteenth round (7c0c513), where each term was
# normalised once for the releasable check and again for the fingerprints, and each run of
# words sliced and joined anew: the terms' words are now shared and the runs grown, and
# the fingerprints must not change, or rumor_control's leak check would miss a term.
FINGERPRINT_CASES: list[dict[str, object]] = [
    {},
    {"agent_phone": None, "agent_email": None, "free_text": None},
    {
        "names": ("José-María GARCÍA de la Cruz", "Ana"),
        "addresses": ("12 de la Calle Mayor", "Apt 4B, 19th St"),
    },
    {"vehicles": ("ab 12 cd 34", "7XYZ123"), "exact_locations": ("de la", "10 30", "505 555")},
    {"agent_phone": "0044 20 7946 0958", "agent_email": "JUAN.PEREZ+ops@example.gov"},
    {
        "names": (),
        "addresses": (),
        "vehicles": (),
        "exact_locations": (),
        "free_text": "el coche rojo detrás de la iglesia, 6 am",
    },
]
FINGERPRINTS_BEFORE = "4080a40617a7b272d6e5c0077bed27bf68ce27aef79caa141e479b6308cf2e94"


def test_fingerprints_are_those_computed_before_the_words_were_shared() -> None:
    digest = hashlib.sha256()
    for case in FINGERPRINT_CASES:
        for print_ in restricted_fingerprints(KEY, detail(**case)):
            digest.update(print_.encode())
        digest.update(b"|")
    assert digest.hexdigest() == FINGERPRINTS_BEFORE


def test_a_details_words_are_its_identifying_terms_tokens() -> None:
    original = detail()
    assert original.identifying_words == tuple(tokens(t) for t in identifying_terms(original))
    # Worked out once, and not a field: equality and the sealed form are unchanged.
    assert original.identifying_words is original.identifying_words
    assert original == detail()
    assert RestrictedDetail.from_json(original.to_json()) == original


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner),
    max_leaves=12,
)


@given(value=json_values)
def test_the_canonical_form_is_json_dumps_sorted_and_compact(value: object) -> None:
    # Digests stored with earlier notices were made from `json.dumps`'s bytes: a retry
    # compares its digest with them, so the shared encoder must give the very same bytes.
    expected = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert canonical_json(value) == expected.encode()
