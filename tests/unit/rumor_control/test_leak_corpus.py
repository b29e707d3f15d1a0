"""The leak check on a corpus (issue 12, item 2): zero false blocks, every planted value blocked.

The corpus: every bundled template rendered for every area, assessment and drill flag (what
the demo drafts), and ordinary English and Spanish sentences (corpus/ordinary_sentences.txt),
some of which share words with the restricted values ("back gate", "name", "plate"). The
restricted values are fingerprinted exactly as intake does it; the planted ones must block in
any case or accent spelling, and the finding must say what span to remove, never which value.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from itertools import product
from pathlib import Path

import pytest

from services.intake.domain.rules import RestrictedDetail, restricted_fingerprints
from services.rumor_control.guardrails import Sections, check_leaks, public_words
from tests.unit.rumor_control.test_rumor_guardrails import (
    AS_OF,
    DRAFTER,
    GAZETTEER,
    KEY,
    _context,
)

DETAIL = RestrictedDetail(
    field_office_id="fo-1",
    field_office_name="Riverton ERO",
    agent_name="Dana Whitlock",
    recorded_by="intake clerk",
    agent_phone="+1 415 555 0199",
    agent_email="d.whitlock@ice.dhs.gov",
    names=("Esteban Quiroga", "María Guadalupe Rosales"),
    addresses=("2231 Folsom St Apt 4", "back gate of the school"),
    vehicles=("silver Tacoma 7XYZ123", "red pickup with a name plate"),
    exact_locations=("Quintero Bakery loading dock", "corner of 19th and Folsom"),
    free_text="Subject usually leaves for work around six from the Quintero warehouse.",
)
PRINTS = frozenset(restricted_fingerprints(KEY, DETAIL))

# How a vetter might leak each identifying value, in English and Spanish.
PLANTED = [
    ("en", "Agents are looking for Esteban Quiroga."),
    ("en", "Agents are looking for ESTEBAN QUIROGA."),
    ("es", "Buscan a esteban quiroga."),
    ("es", "Buscan a Maria Guadalupe Rosales en su casa."),
    ("en", "Rosales was seen leaving."),
    ("en", "They went to 2231 Folsom St."),
    ("es", "Fueron a Folsom St, apartamento 4."),
    ("en", "A truck with plate 7XYZ123 was parked outside."),
    ("en", "A truck with plate 7xyz 123 was parked outside."),
    ("es", "Una Tacoma plateada estaba afuera."),
    ("en", "Avoid the Quintero Bakery today."),
    ("es", "Eviten la panadería Quintero hoy."),
    ("en", "The agent, Dana Whitlock, called."),
    ("en", "Call 415-555-0199 for details."),
    ("es", "Llame al 555 0199."),
    ("en", "Write to d.whitlock for details."),
]


def _sentences() -> list[tuple[str, str]]:
    path = Path(__file__).parent / "corpus" / "ordinary_sentences.txt"
    rows = [line.split("|", 1) for line in path.read_text("utf-8").splitlines()]
    return [(lang, text) for lang, text in (row for row in rows if len(row) == 2)]


def _templates() -> list[dict[str, Sections]]:
    rendered: list[dict[str, Sections]] = []
    for area, drill in product(GAZETTEER.areas, [False, True]):
        places = {
            lang: {"area": area.name(lang), "area_ref": area.reference(lang), "drill": drill}
            for lang in ("en", "es")
        }
        rendered.append(
            DRAFTER.render_all(
                "standby", {lang: {**v, "as_of": AS_OF} for lang, v in places.items()}
            )
        )
        for assessment, updates in product(
            ("Confirmed", "Not confirmed", "False", "Unable to verify"), (False, True)
        ):
            variables = {
                lang: {
                    **v,
                    "assessment": assessment,
                    "observed_at": AS_OF - timedelta(hours=1),
                    "as_of": AS_OF,
                    "expires_at": AS_OF + timedelta(hours=4),
                    "window_start": AS_OF + timedelta(hours=1),
                    "window_end": AS_OF + timedelta(hours=3),
                    "updates": updates,
                    "notice_cancelled": updates,
                }
                for lang, v in places.items()
            }
            rendered.append(DRAFTER.render_all("rumor_fact", variables))
    return rendered


def _single(language: str, text: str) -> dict[str, Sections]:
    blank = Sections(headline="", body="", sms="", radio="")
    return {language: replace(blank, body=text)}  # type: ignore[dict-item]


def _leaks(texts: dict[str, Sections]) -> list[str]:
    findings = check_leaks(
        texts, key=KEY, fingerprints=PRINTS, public_words=public_words(_context())
    )
    return [f.detail for f in findings]


def test_no_template_rendering_is_blocked() -> None:
    renderings = _templates()
    assert len(renderings) >= 10
    for texts in renderings:
        assert _leaks(texts) == [], texts


def test_no_ordinary_sentence_is_blocked() -> None:
    sentences = _sentences()
    assert len(sentences) >= 40
    blocked = [text for lang, text in sentences if _leaks(_single(lang, text))]
    assert blocked == []


@pytest.mark.parametrize(("language", "text"), PLANTED)
def test_every_planted_restricted_value_is_blocked(language: str, text: str) -> None:
    details = _leaks(_single(language, text))
    assert details, text
    for detail in details:
        # Where and why in general terms; never which notice, field or value.
        assert detail.startswith("remove ")
        assert "restricted detail of a current notice" in detail
        for word in ("names", "addresses", "vehicles", "exact_locations", "agent"):
            assert word not in detail


def test_the_span_to_remove_is_the_vetters_own_text() -> None:
    text = "Agents are looking for ESTEBAN QUIROGA near the school."
    [detail] = _leaks(_single("en", text))
    start = text.index("ESTEBAN")
    assert f"'ESTEBAN QUIROGA' (characters {start}-{start + 15})" in detail
