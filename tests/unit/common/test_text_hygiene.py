"""The shared text-hygiene and time-bound rules (issue 12, items 6 and 7).

Walks the code point classes: every control, XML-invalid character, noncharacter and line
separator is refused in a single-line field; in a multi-line field only line breaks survive,
as LF. Whatever is accepted can be put in an XML document (feeds) and parsed back.
"""

from __future__ import annotations

import sys
import unicodedata
from datetime import UTC, datetime
from xml.etree import ElementTree

import pytest
from pydantic import BaseModel, ValidationError

from services.common.bounds import BoundedDatetime
from services.common.text import MultiLine, SingleLine, clean_line, clean_prose


def _xml_roundtrip(text: str) -> str:
    element = ElementTree.Element("summary")
    element.text = text
    parsed = ElementTree.fromstring(ElementTree.tostring(element, encoding="unicode"))
    return parsed.text or ""


def _refused(clean: object, text: str) -> bool:
    try:
        clean(text)  # type: ignore[operator]
    except ValueError:
        return True
    return False


def _code_points() -> list[int]:
    # The whole BMP (every control, separator and special lives there), and in the
    # supplementary planes each plane's noncharacters plus a stride through the rest.
    supplementary = range(0x10000, sys.maxunicode + 1, 61)
    ends = [plane * 0x10000 + tail for plane in range(1, 17) for tail in (0xFFFE, 0xFFFF)]
    return [*range(0x10000), *supplementary, *ends]


def test_every_code_point_class_is_refused_or_safe_in_xml_single_and_multi_line() -> None:
    breaks = {"\n", "\r", "\u2028", "\u2029"}
    accepted: list[str] = []
    for code in _code_points():
        char = chr(code)
        text = f"a{char}b"
        category = unicodedata.category(char)
        bad = category in ("Cc", "Cs") or 0xFDD0 <= code <= 0xFDEF or (code & 0xFFFE) == 0xFFFE
        if bad or char in breaks:
            assert _refused(clean_line, text), hex(code)
        if bad and char not in breaks | {"\t"}:
            assert _refused(clean_prose, text), hex(code)
        elif category != "Cs":
            accepted.append(clean_prose(text))
    # Everything accepted goes into one XML document and comes back unchanged.
    joined = "|".join(accepted)
    assert _xml_roundtrip(joined) == joined


def test_text_is_nfc_and_multi_line_breaks_become_lf() -> None:
    assert clean_line(" Jose\u0301 ") == "Jos\u00e9"
    assert clean_prose("one\r\ntwo\rthree\u2028four\u2029five") == "one\ntwo\nthree\nfour\nfive"
    assert clean_prose("tab\tkept") == "tab\tkept"


class _Model(BaseModel):
    line: SingleLine
    prose: MultiLine
    at: BoundedDatetime


@pytest.mark.parametrize(
    "at",
    [0, 1_700_000_000, True, "0001-01-01T00:30:00Z", "9999-12-31T23:59:59-14:00", "2026-01-01"],
)
def test_times_are_zoned_strings_within_bounds(at: object) -> None:
    with pytest.raises(ValidationError):
        _Model(line="x", prose="y", at=at)  # type: ignore[arg-type]


def test_a_zoned_time_in_bounds_is_utc() -> None:
    model = _Model(line="x", prose="y", at="2030-06-01T12:00:00-05:00")  # type: ignore[arg-type]
    assert model.at == datetime(2030, 6, 1, 17, tzinfo=UTC)


def test_the_one_search_refuses_exactly_what_the_character_rules_refuse() -> None:
    # Every code point, both kinds of field: the regex fast path and the per-character
    # rules (which name the reason) agree, so the fast path changes nothing accepted.
    from services.common import text

    for code in range(0x110000):
        char = chr(code)
        for multiline in (True, False):
            fast = text.refusal(char, multiline=multiline)
            assert (fast is None) == (text._reason(char, multiline=multiline) is None), hex(code)
