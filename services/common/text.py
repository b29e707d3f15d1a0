"""Text hygiene for every free-text field a service accepts (one rule set for all).

What comes in is normalised to NFC (so equal text is equal bytes: digests, fingerprints and
comparisons agree), and refused when it holds what no reader should get:

- control characters (C0 and C1), except tab and line breaks in multi-line text: PostgreSQL
  cannot store NUL, and ESC or a form feed in a bulletin is never meant;
- characters XML 1.0 cannot carry (surrogates, U+FFFE, U+FFFF) and the other Unicode
  noncharacters: feeds (Atom, CAP) built from the text must stay well-formed;
- in a single-line field, any line or paragraph break, including U+2028 and U+2029, which
  many viewers render as a new line and JavaScript treats as one.

In a multi-line field, CR LF, CR, U+2028 and U+2029 become LF instead of being refused: a
pasted paragraph is meant as text. Use the pydantic types `SingleLine` and `MultiLine`
(with a length bound) or the functions directly.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Annotated

from pydantic import AfterValidator

__all__ = ["MultiLine", "SingleLine", "clean_line", "clean_prose", "refusal"]

_LINE_BREAKS = str.maketrans({"\u2028": "\n", "\u2029": "\n"})


def _is_noncharacter(code: int) -> bool:
    return 0xFDD0 <= code <= 0xFDEF or (code & 0xFFFE) == 0xFFFE


# Every character `_reason` refuses, as one character class: most text holds none, and
# one search in C spares it the loop in Python (the loop names the reason when one does).
_REFUSED_ALWAYS = (
    "\x00-\x08\x0b-\x1f\x7f-\x9f"  # Cc but tab and LF
    "\ud800-\udfff"  # Cs
    "\ufdd0-\ufdef"
    + "".join(f"{chr(plane << 16 | 0xFFFE)}{chr(plane << 16 | 0xFFFF)}" for plane in range(17))
    + "\u2028\u2029"  # Zl, Zp
)
_SUSPECT_LINE = re.compile(f"[\t\n{_REFUSED_ALWAYS}]")
_SUSPECT_PROSE = re.compile(f"[{_REFUSED_ALWAYS}]")


def refusal(value: str, *, multiline: bool) -> str | None:
    """Why `value` cannot be accepted (a short phrase, never the character), or None."""
    if (_SUSPECT_PROSE if multiline else _SUSPECT_LINE).search(value) is None:
        return None
    return _reason(value, multiline=multiline)


def _reason(value: str, *, multiline: bool) -> str | None:
    allowed = {"\t", "\n"} if multiline else set()
    for char in value:
        code = ord(char)
        category = unicodedata.category(char)
        if category == "Cc" and char not in allowed:
            return "a control character"
        if category == "Cs" or _is_noncharacter(code):
            return "a character XML cannot carry"
        if category in ("Zl", "Zp"):
            return "a line or paragraph separator"
    return None


def _clean(value: str, *, multiline: bool) -> str:
    value = unicodedata.normalize("NFC", value)
    if multiline:
        value = value.replace("\r\n", "\n").replace("\r", "\n").translate(_LINE_BREAKS)
    reason = refusal(value, multiline=multiline)
    if reason is not None:
        kind = "text" if multiline else "a single-line field"
        raise ValueError(f"{kind} must not contain {reason}")
    value = value.strip()
    if not value:
        raise ValueError("text is blank")
    return value


def clean_line(value: str) -> str:
    """NFC, stripped; refuses control characters, XML-invalid characters and line breaks."""
    return _clean(value, multiline=False)


def clean_prose(value: str) -> str:
    """NFC, stripped, line breaks made LF; refuses other controls and XML-invalid characters."""
    return _clean(value, multiline=True)


SingleLine = Annotated[str, AfterValidator(clean_line)]
"""A single-line text field; bound its length where it is used:
`Annotated[SingleLine, StringConstraints(max_length=200)]`."""

MultiLine = Annotated[str, AfterValidator(clean_prose)]
"""A multi-line text field; bound its length where it is used."""
