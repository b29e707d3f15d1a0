"""Every guardrail, as a pure function, with its reason code."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from itertools import product

import pytest

from schemas.fingerprints import fingerprint_term
from services.rumor_control.config import PACKAGE_DIR
from services.rumor_control.department import load_department
from services.rumor_control.drafting import Drafter
from services.rumor_control.gazetteer import load_gazetteer
from services.rumor_control.guardrails import (
    GuardrailContext,
    Sections,
    blocked_reasons,
    check_channels,
    check_drill,
    check_leaks,
    check_parity,
    check_pii,
    check_sections,
    extract_dates,
    extract_phones,
    extract_times,
    run_all,
)

KEY = b"unit-test-fingerprint-key-0123456789"
DEPARTMENT = load_department(PACKAGE_DIR / "department.yaml")
GAZETTEER = load_gazetteer(PACKAGE_DIR / "gazetteer.yaml")
DRAFTER = Drafter(PACKAGE_DIR / "templates", DEPARTMENT)
AS_OF = datetime(2026, 3, 3, 21, 15, tzinfo=UTC)  # 3:15 PM in Riverton


def _context(fingerprints: frozenset[str] = frozenset()) -> GuardrailContext:
    return GuardrailContext(
        fingerprint_key=KEY,
        fingerprints=fingerprints,
        policy_statement={lang: DEPARTMENT.policy_statement(lang) for lang in ("en", "es")},
        phone_line=DEPARTMENT.phone_line,
        partner_names={
            lang: tuple(p.name(lang) for p in DEPARTMENT.partners) for lang in ("en", "es")
        },
        gazetteer=GAZETTEER,
        allowed_phones=DEPARTMENT.allowed_phones(),
    )


def _standby(drill: bool = False) -> dict[str, Sections]:
    area = GAZETTEER.get("district-4")
    assert area is not None
    return DRAFTER.render_all(
        "standby",
        {
            lang: {
                "drill": drill,
                "area": area.name(lang),
                "area_ref": area.reference(lang),
                "as_of": AS_OF,
            }
            for lang in ("en", "es")
        },
    )


def _codes(findings: list) -> set[str]:  # type: ignore[type-arg]
    return {f.code for f in findings}


def _with(texts: dict[str, Sections], language: str, **sections: str) -> dict[str, Sections]:
    changed = dict(texts)
    changed[language] = replace(texts[language], **sections)
    return changed  # type: ignore[return-value]


# -- every template passes every guardrail -----------------------------------------------------


@pytest.mark.parametrize(
    ("assessment", "drill", "updates", "notice_cancelled"),
    list(
        product(
            ["Confirmed", "Not confirmed", "False", "Unable to verify"],
            [False, True],
            [False, True],
            [False, True],
        )
    ),
)
def test_every_rumor_fact_variant_passes_every_guardrail(
    assessment: str, drill: bool, updates: bool, notice_cancelled: bool
) -> None:
    area = GAZETTEER.get("san-jose-heights")
    assert area is not None
    texts = DRAFTER.render_all(
        "rumor_fact",
        {
            lang: {
                "drill": drill,
                "area": area.name(lang),
                "area_ref": area.reference(lang),
                "assessment": assessment,
                "observed_at": AS_OF - timedelta(hours=1),
                "as_of": AS_OF,
                "expires_at": AS_OF + timedelta(hours=4),
                "window_start": AS_OF + timedelta(hours=1),
                "window_end": AS_OF + timedelta(days=1, hours=3),
                "updates": updates,
                "notice_cancelled": notice_cancelled,
            }
            for lang in ("en", "es")
        },
    )
    status = "Exercise" if drill else "Actual"
    channels = ("drill_audience",) if drill else ("liaison", "public_feed", "radio")
    assert run_all(texts, status=status, channels=channels, context=_context()) == []


@pytest.mark.parametrize("drill", [False, True])
def test_standby_and_correction_pass_every_guardrail(drill: bool) -> None:
    status = "Exercise" if drill else "Actual"
    channels = ("liaison", "radio") if drill else ("liaison", "public_feed", "radio")
    assert run_all(_standby(drill), status=status, channels=channels, context=_context()) == []
    correction = DRAFTER.render_all(
        "correction",
        {
            lang: {
                "drill": drill,
                "area": None,
                "area_ref": None,
                "withdrawn_headline": "Rumor vs. fact",
                "published_at": AS_OF,
            }
            for lang in ("en", "es")
        },
    )
    assert run_all(correction, status=status, channels=channels, context=_context()) == []


# -- leak --------------------------------------------------------------------------------------


def test_a_restricted_term_is_found_by_its_fingerprint_in_any_case_or_spelling() -> None:
    prints = frozenset(
        fingerprint_term(KEY, "José María Castañeda") | fingerprint_term(KEY, "7XYZ123")
    )
    texts = _with(_standby(), "es", body=_standby()["es"].body + " Buscan a JOSE MARIA castaneda.")
    texts = _with(texts, "en", sms="Plate 7xyz 123 seen.")
    findings = check_leaks(texts, key=KEY, fingerprints=prints)
    assert [(f.code, f.language, f.section) for f in findings] == [
        ("leak.restricted_term", "en", "sms"),
        ("leak.restricted_term", "es", "body"),
    ]
    assert "castaneda" in findings[1].detail


def test_fingerprints_made_with_another_key_block_rather_than_pass() -> None:
    findings = check_leaks(
        _standby(), key=KEY, fingerprints=frozenset(), foreign_key_ids=frozenset({"fp-old"})
    )
    assert [(f.code, f.detail) for f in findings] == [
        ("leak.unknown_key", "fingerprints made with key fp-old")
    ]


def test_no_fingerprints_no_leak() -> None:
    assert check_leaks(_standby(), key=KEY, fingerprints=frozenset()) == []
    prints = frozenset(fingerprint_term(KEY, "Zorvath"))
    assert check_leaks(_standby(), key=KEY, fingerprints=prints) == []


# -- PII ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("Call him at (505) 555-0199 tonight.", "pii.phone_number"),
        ("Llame al 505.555.0199", "pii.phone_number"),
        ("or 555-0199", "pii.phone_number"),
        ("Write to maria.lopez@example.com", "pii.email"),
        ("They were at 1450 West Elm Street yesterday.", "pii.street_address"),
        ("near 22 Oak Ave", "pii.street_address"),
        ("en la Calle Ocho número 215", "pii.street_address"),
        ("en Avenida de los Pinos 48", "pii.street_address"),
        ("at 1200 Calle Real", "pii.street_address"),
        ("a white van, plate ABC-1234", "pii.plate"),
        ("placas 7XYZ123", "pii.plate"),
    ],
)
def test_pii_patterns_are_blocked(text: str, code: str) -> None:
    texts = {"en": Sections("h", text, "s", "r"), "es": Sections("h", "b", "s", "r")}
    assert code in _codes(check_pii(texts, allowed_phones=DEPARTMENT.allowed_phones()))


@pytest.mark.parametrize(
    "text",
    [
        "Call our line at (505) 555-0142 or 911.",
        "Llame al (505) 555-0100.",
        "Updated Tuesday, March 3, 2026, at 3:15 PM.",
        "Información actualizada el martes 3 de marzo de 2026, a las 3:15 p. m.",
        "La Movida 1490 AM and District 4",
        "We have 2 new court dates.",
        "No salga a la calle hasta las 5 de la tarde.",
    ],
)
def test_public_numbers_times_and_ordinary_text_pass(text: str) -> None:
    texts = {"en": Sections("h", text, "s", "r"), "es": Sections("h", "b", "s", "r")}
    assert check_pii(texts, allowed_phones=DEPARTMENT.allowed_phones()) == []


# -- parity ------------------------------------------------------------------------------------


def test_extractors_read_both_languages_alike() -> None:
    assert extract_times("at 3:15 PM")[0] == extract_times("a las 3:15 p. m.")[0] == {915}
    assert extract_times("15:15 h")[0] == {915}
    assert extract_times("a las 3 de la tarde")[0] == {900}
    assert extract_times("12:30 a. m.")[0] == {30}
    assert extract_dates("Tuesday, March 3, 2026", "en")[:2] == ({(3, 3)}, {2026})
    assert extract_dates("martes 3 de marzo de 2026", "es")[:2] == ({(3, 3)}, {2026})
    assert extract_dates("3/4", "en")[0] == {(3, 4)}
    assert extract_dates("3/4", "es")[0] == {(4, 3)}
    assert extract_phones("(505) 555-0142 or +1 505-555-0142")[0] == {"5055550142"}


def test_the_drafted_versions_agree() -> None:
    assert check_parity(_standby(), gazetteer=GAZETTEER) == []


@pytest.mark.parametrize(
    ("spanish_body_change", "code"),
    [
        (("3:15 p. m.", "4:15 p. m."), "parity.time"),
        (("3 de marzo", "4 de marzo"), "parity.date"),
        (("(505) 555-0142", "(505) 555-0143"), "parity.phone"),
        (("Distrito 4", "Distrito 5"), "parity.place"),
        (("2026", "2025"), "parity.number"),
    ],
)
def test_a_spanish_version_that_disagrees_is_blocked(
    spanish_body_change: tuple[str, str], code: str
) -> None:
    texts = _standby()
    old, new = spanish_body_change
    assert old in texts["es"].body
    changed = _with(texts, "es", body=texts["es"].body.replace(old, new, 1))
    findings = check_parity(changed, gazetteer=GAZETTEER)
    assert code in _codes(findings)
    assert {f.section for f in findings} == {"body"}


def test_a_missing_language_is_blocked() -> None:
    findings = check_parity({"en": _standby()["en"]}, gazetteer=GAZETTEER)
    assert [(f.code, f.language) for f in findings] == [("parity.missing_language", "es")]


# -- channels ----------------------------------------------------------------------------------


def test_sms_over_the_segment_limit_is_blocked() -> None:
    long_spanish = "Información " * 30  # ó forces UCS-2: 67 characters a segment
    texts = _with(_standby(), "es", sms=long_spanish)
    findings = check_channels(
        texts, sms_max_segments=4, words_per_minute=150, radio_max_seconds=120
    )
    assert [(f.code, f.language) for f in findings] == [("channel.sms_segments", "es")]
    assert "UCS-2" in findings[0].detail


def test_a_radio_script_longer_than_allowed_is_blocked() -> None:
    texts = _with(_standby(), "en", radio=" ".join(["word"] * 301))
    findings = check_channels(
        texts, sms_max_segments=4, words_per_minute=150, radio_max_seconds=120
    )
    assert [(f.code, f.language) for f in findings] == [("channel.radio_duration", "en")]
    fast = check_channels(texts, sms_max_segments=4, words_per_minute=160, radio_max_seconds=120)
    assert fast == []


def test_a_radio_script_with_digits_or_abbreviations_is_blocked() -> None:
    texts = _with(_standby(), "es", radio="Llame al 505 antes de las 3 p. m.")
    findings = check_channels(
        texts, sms_max_segments=4, words_per_minute=150, radio_max_seconds=120
    )
    assert "channel.radio_unspoken" in _codes(findings)


# -- required sections -------------------------------------------------------------------------


def _sections(texts: dict[str, Sections]) -> set[tuple[str, str | None, str | None]]:
    findings = check_sections(
        texts,
        policy_statement=_context().policy_statement,
        phone_line=DEPARTMENT.phone_line,
        partner_names=_context().partner_names,
    )
    return {(f.code, f.language, f.section) for f in findings}


def test_required_sections_present_in_drafts() -> None:
    assert _sections(_standby()) == set()


def test_missing_policy_phone_partners_or_empty_sections_are_blocked() -> None:
    texts = _standby()
    body = texts["en"].body
    no_policy = body.replace(DEPARTMENT.policy_statement.en.split(".")[0], "We care")
    assert ("sections.policy_statement", "en", "body") in _sections(
        _with(texts, "en", body=no_policy)
    )
    no_phone = _with(texts, "es", sms="Llame a la policía.")
    assert ("sections.phone_line", "es", "sms") in _sections(no_phone)
    no_partner = body.replace("Casa Hispana Community Center", "our friends")
    assert ("sections.partners", "en", "body") in _sections(_with(texts, "en", body=no_partner))
    assert ("sections.empty", "es", "headline") in _sections(_with(texts, "es", headline="  "))
    spoken = _with(texts, "es", radio="Llame a nuestra línea.")
    assert ("sections.phone_line", "es", "radio") in _sections(spoken)


# -- drills ------------------------------------------------------------------------------------


def test_a_drill_is_never_public_and_always_marked() -> None:
    markers = _context().drill_markers
    public = check_drill(
        _standby(drill=True), status="Exercise", channels=("public_feed",), markers=markers
    )
    assert _codes(public) == {"drill.public_channel"}
    unmarked = check_drill(_standby(drill=False), status="Test", channels=(), markers=markers)
    assert _codes(unmarked) == {"drill.unmarked"}
    assert len(unmarked) == 6  # headline, body and SMS in both languages
    real = check_drill(_standby(), status="Actual", channels=("public_feed",), markers=markers)
    assert real == []


def test_blocked_reasons_are_sorted_and_unique() -> None:
    texts = _with(_standby(), "es", body="", sms="x" * 10)
    reasons = blocked_reasons(run_all(texts, status="Actual", channels=(), context=_context()))
    assert list(reasons) == sorted(set(reasons))
    assert "sections.policy_statement" in reasons
