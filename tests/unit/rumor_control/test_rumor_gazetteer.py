"""The gazetteer matcher: accent-, case- and punctuation-insensitive, English and Spanish."""

from __future__ import annotations

import pytest

from services.rumor_control.config import PACKAGE_DIR
from services.rumor_control.gazetteer import Area, Gazetteer, load_gazetteer

GAZETTEER = load_gazetteer(PACKAGE_DIR / "gazetteer.yaml")


@pytest.mark.parametrize(
    ("heard", "code"),
    [
        ("Riverside", "riverside"),
        ("RIVERSIDE", "riverside"),
        ("la ribera", "riverside"),
        ("cerca de La Ribera del Río, por el puente", "riverside"),
        ("ribera del rio", "riverside"),
        ("San José Heights", "san-jose-heights"),
        ("san jose heights", "san-jose-heights"),
        ("Lomas de San José", "san-jose-heights"),
        ("SAN-JOSÉ", "san-jose-heights"),
        ("los alamos", "los-alamos"),
        ("Los Álamos park", "los-alamos"),
        ("en el centro histórico", "old-town"),
        ("downtown by the bus station", "old-town"),
        ("Distrito 3", "district-3"),
        ("tercer distrito", "district-3"),
        ("district three", "district-3"),
        ("mercado del este", "east-market"),
    ],
)
def test_names_match_whatever_the_accents_case_or_language(heard: str, code: str) -> None:
    area = GAZETTEER.match(heard)
    assert area is not None
    assert area.code == code


@pytest.mark.parametrize("heard", ["", "the corner store", "Lakeviews", "Riversideville", "5th"])
def test_unknown_places_and_partial_words_do_not_match(heard: str) -> None:
    assert GAZETTEER.match(heard) is None


def test_the_longest_name_wins() -> None:
    # "San José" alone names the heights, but "San José Heights" is the longer match.
    matches = GAZETTEER.find_all("agents in San José Heights and Riverside")
    assert [m.area.code for m in matches] == ["san-jose-heights", "riverside"]


def test_a_neighbourhood_wins_a_tie_with_a_district() -> None:
    assert GAZETTEER.match("District 2 near Riverside").code == "district-2"  # type: ignore[union-attr]
    assert GAZETTEER.codes_in("District 2 near Riverside") == {"district-2", "riverside"}


def test_spanish_references_carry_their_article() -> None:
    assert GAZETTEER.get("district-4").reference("es") == "el Distrito 4"  # type: ignore[union-attr]
    assert GAZETTEER.get("riverside").reference("es") == "La Ribera"  # type: ignore[union-attr]
    assert GAZETTEER.get("riverside").reference("en") == "Riverside"  # type: ignore[union-attr]


def test_overlap_is_the_same_area_or_the_district_it_lies_in() -> None:
    assert GAZETTEER.overlaps("riverside", "riverside")
    assert GAZETTEER.overlaps("riverside", "district-2")
    assert GAZETTEER.overlaps("district-2", "las-palmas")
    assert not GAZETTEER.overlaps("riverside", "district-3")
    assert not GAZETTEER.overlaps("riverside", None)


def test_a_name_claimed_by_two_areas_is_refused() -> None:
    with pytest.raises(ValueError, match="names both"):
        Gazetteer(
            [
                Area("a", "neighbourhood", {"en": "Hill", "es": "Colina"}),
                Area("b", "neighbourhood", {"en": "Valley", "es": "Valle"}, aliases=("HILL",)),
            ]
        )
