"""SMS segment counting: GSM-7 versus UCS-2."""

from __future__ import annotations

from services.rumor_control.sms import count_segments, encoding_of


def test_plain_english_is_gsm7() -> None:
    assert encoding_of("Call (505) 555-0142 before you share it.") == "GSM-7"


def test_spanish_n_and_e_acute_fit_gsm7_but_a_i_o_u_acute_force_ucs2() -> None:
    assert encoding_of("año, él, ¿qué?, ¡sí!") == "UCS-2"  # í
    assert encoding_of("año, él, ¿qué? ¡Llame!") == "GSM-7"
    for letter in "áíóú":
        assert encoding_of(f"informaci{letter}n") == "UCS-2"


def test_gsm7_segment_boundaries() -> None:
    assert count_segments("a" * 160).segments == 1
    assert count_segments("a" * 161).segments == 2
    assert count_segments("a" * 306).segments == 2
    assert count_segments("a" * 307).segments == 3


def test_ucs2_segment_boundaries() -> None:
    assert count_segments("á" * 70).segments == 1
    assert count_segments("á" * 71).segments == 2
    assert count_segments("á" * 134).segments == 2
    assert count_segments("á" * 135).segments == 3


def test_extension_characters_take_two_septets() -> None:
    count = count_segments("€" * 80)
    assert count.encoding == "GSM-7"
    assert count.units == 160
    assert count.segments == 1
    assert count_segments("€" * 81).segments == 2


def test_an_emoji_takes_two_ucs2_units() -> None:
    count = count_segments("🙂")
    assert count.encoding == "UCS-2"
    assert count.units == 2


def test_empty_text_takes_no_segment() -> None:
    assert count_segments("").segments == 0
