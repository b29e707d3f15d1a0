"""Facts read out of a text for the PII and parity checks: phones, times, dates, numbers, plates."""

from __future__ import annotations

import re
from collections.abc import Iterable

from schemas.base import Language

__all__ = [
    "EMAIL",
    "STREET_EN",
    "STREET_ES",
    "digits",
    "extract_dates",
    "extract_numbers",
    "extract_phones",
    "extract_times",
    "plates",
]


_PHONE = re.compile(
    r"(?<![\w])(?:\+?1[\s.-]?)?(?:\(\d{3}\)\s?|\d{3}[\s.-])\d{3}[\s.-]\d{4}(?!\d)"
    r"|(?<![\w(.-])\d{3}[-.]\d{4}(?!\d)"
)
EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_STREET_SUFFIX = (
    r"(?:Street|St|Avenue|Ave|Boulevard|Blvd|Road|Rd|Drive|Dr|Lane|Ln|Way|Court|Ct|Place|Pl"
    r"|Terrace|Ter|Highway|Hwy|Parkway|Pkwy|Circle|Cir)"
)
STREET_EN = re.compile(
    r"\b\d{1,6}\s+(?:(?:[NSEW]\.?|North|South|East|West)\s+)?"
    r"(?:(?:[A-Z][\w'\u2019.-]*|\d+(?:st|nd|rd|th))\s+){1,3}" + _STREET_SUFFIX + r"\b"
)
_STREET_ES_WORD = (
    r"(?:[Cc]alle|[Aa]venida|[Aa]vda?\.|[Cc]amino|[Cc]arretera|[Cc]allej[oó]n|[Bb]ulevar"
    r"|[Pp]rivada|[Cc]errada)"
)
# A street name is capitalised, with lowercase particles only ("Avenida de los Pinos 48"),
# so "no salga a la calle hasta las 5" is not an address.
_STREET_ES_NAME = r"(?:(?:[A-ZÁÉÍÓÚÑ0-9][\w'\u2019.-]*|de|del|la|las|los|el)\s+){1,5}?"
STREET_ES = re.compile(
    r"\b"
    + _STREET_ES_WORD
    + r"\s+"
    + _STREET_ES_NAME
    + r"(?:#\s?|[Nn][úu]m(?:ero|\.)?\s?|[Nn]o\.\s?)?\d{1,5}\b"
    r"|\b\d{1,6}\s+" + _STREET_ES_WORD + r"\s+[A-ZÁÉÍÓÚÑ]\w+"
)
_TOKEN = re.compile(r"[A-Za-z0-9]+")
_PLATE_NOT_LETTERS = frozenset({"AM", "PM", "FM", "AM/FM"})

_TIME_12 = re.compile(r"(?<![\d:])(\d{1,2})(?::([0-5]\d))?\s*([ap])\.?\s?m\b\.?", re.IGNORECASE)
_TIME_ES = re.compile(
    r"(?<![\d:])(\d{1,2})(?::([0-5]\d))?\s*(?:h\s*|horas\s*)?"
    r"(?:de la (mañana|manana|tarde|noche|madrugada)|del (mediod[ií]a))",
    re.IGNORECASE,
)
_TIME_24 = re.compile(r"(?<![\d:])([01]?\d|2[0-3]):([0-5]\d)(?![\d:])")

_EN_MONTHS = {
    "jan": 1, "feb": 2, "mar": 3, "apr": 4, "may": 5, "jun": 6,
    "jul": 7, "aug": 8, "sep": 9, "oct": 10, "nov": 11, "dec": 12,
}  # fmt: skip
_ES_MONTHS = {
    "enero": 1, "febrero": 2, "marzo": 3, "abril": 4, "mayo": 5, "junio": 6, "julio": 7,
    "agosto": 8, "septiembre": 9, "setiembre": 9, "octubre": 10, "noviembre": 11,
    "diciembre": 12,
}  # fmt: skip
_DATE_EN = re.compile(
    r"\b(Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?"
    r"|Sep(?:t(?:ember)?)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)\.?\s+(\d{1,2})"
    r"(?:st|nd|rd|th)?\b(?:,?\s+(\d{4})\b)?"
)
_DATE_ES = re.compile(
    r"\b(\d{1,2})(?:\.?º|°)?\s+de\s+(enero|febrero|marzo|abril|mayo|junio|julio|agosto"
    r"|septiembre|setiembre|octubre|noviembre|diciembre)\b(?:\s+del?\s+(\d{4})\b)?",
    re.IGNORECASE,
)
_DATE_NUMERIC = re.compile(r"(?<![\d/])(\d{1,2})/(\d{1,2})(?:/(\d{2}|\d{4}))?(?![\d/])")
_NUMBER = re.compile(r"(?<![\w.,])(\d+(?:[.,]\d+)*)(?:st|nd|rd|th|º|ª|er|ro|do|ra)?(?!\w)")


def _blank(text: str, spans: Iterable[tuple[int, int]]) -> str:
    """Replace spans with spaces, so a later pattern cannot match inside them."""
    chars = list(text)
    for start, end in spans:
        chars[start:end] = " " * (end - start)
    return "".join(chars)


def digits(text: str) -> str:
    """A phone number's digits, without a leading country code 1."""
    only = re.sub(r"\D", "", text)
    # A leading country code 1 does not make a different number.
    return only[1:] if len(only) == 11 and only.startswith("1") else only


def extract_phones(text: str) -> tuple[set[str], str]:
    """Phone numbers as digit strings, and the text with them blanked out."""
    matches = list(_PHONE.finditer(text))
    return {digits(m.group(0)) for m in matches}, _blank(text, (m.span() for m in matches))


def _hour24(hour: int, minute: int, period: str) -> int | None:
    if hour > 23:
        return None
    if period in ("p", "tarde", "noche") and hour < 12:
        hour += 12
    elif (period in ("a", "mañana", "manana", "madrugada") and hour == 12) or (
        period == "noche" and hour == 12
    ):
        hour = 0
    return hour * 60 + minute


def extract_times(text: str) -> tuple[set[int], str]:
    """Clock times as minutes after midnight ("2:30 PM", "14:30", "2:30 p. m.", "2 de la
    tarde" are all 870), and the text with them blanked out."""
    found: set[int] = set()
    spans: list[tuple[int, int]] = []
    for pattern in (_TIME_12, _TIME_ES):
        for m in pattern.finditer(_blank(text, spans)):
            hour, minute = int(m.group(1)), int(m.group(2) or 0)
            raw_period = m.group(3) or (m.group(4) if m.lastindex and m.lastindex >= 4 else "")
            period = (raw_period or "").lower()
            if period.startswith("mediod"):
                period = "p" if hour < 12 else ""
            value = _hour24(hour, minute, period)
            if value is not None:
                found.add(value)
                spans.append(m.span())
    for m in _TIME_24.finditer(_blank(text, spans)):
        found.add(int(m.group(1)) * 60 + int(m.group(2)))
        spans.append(m.span())
    return found, _blank(text, spans)


def extract_dates(text: str, language: Language) -> tuple[set[tuple[int, int]], set[int], str]:
    """Dates as (month, day), the years they name, and the text with them blanked out."""
    dates: set[tuple[int, int]] = set()
    years: set[int] = set()
    spans: list[tuple[int, int]] = []
    for m in _DATE_EN.finditer(text):
        dates.add((_EN_MONTHS[m.group(1)[:3].lower()], int(m.group(2))))
        if m.group(3):
            years.add(int(m.group(3)))
        spans.append(m.span())
    blanked = _blank(text, spans)
    for m in _DATE_ES.finditer(blanked):
        dates.add((_ES_MONTHS[m.group(2).lower()], int(m.group(1))))
        if m.group(3):
            years.add(int(m.group(3)))
        spans.append(m.span())
    blanked = _blank(text, spans)
    for m in _DATE_NUMERIC.finditer(blanked):
        first, second = int(m.group(1)), int(m.group(2))
        # Month first in US English, day first in Spanish.
        month, day = (first, second) if language == "en" else (second, first)
        if 1 <= month <= 12 and 1 <= day <= 31:
            dates.add((month, day))
            if m.group(3):
                year = int(m.group(3))
                years.add(year + 2000 if year < 100 else year)
            spans.append(m.span())
    return dates, years, _blank(text, spans)


def extract_numbers(text: str) -> set[str]:
    """Standalone numbers ("3", "1,500", "2nd" -> "2"), separators dropped."""
    return {re.sub(r"[.,]", "", m.group(1)) for m in _NUMBER.finditer(text)}


def plates(text: str) -> list[str]:
    """Tokens that read as licence plates."""
    tokens = list(_TOKEN.finditer(text))
    found: list[str] = []
    for index, token in enumerate(tokens):
        candidates = [token.group(0)]
        if index + 1 < len(tokens):
            following = tokens[index + 1]
            between = text[token.end() : following.start()]
            if between in (" ", "-"):
                candidates.append(token.group(0) + between + following.group(0))
        for candidate in candidates:
            parts = re.split(r"[ -]", candidate)
            joined = "".join(parts)
            if not joined.isupper() and not joined.isdigit():
                continue
            if not 5 <= len(joined) <= 8:
                continue
            letters = sum(ch.isalpha() for ch in joined)
            digits = sum(ch.isdigit() for ch in joined)
            if letters < 2 or digits < 2:
                continue
            if any(part in _PLATE_NOT_LETTERS for part in parts):
                continue
            found.append(candidate)
    return found
