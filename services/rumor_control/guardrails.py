"""Guardrails that block a bulletin's approval: pure functions, each with its reason code.

Every check takes the draft's texts (and the facts it needs) and returns findings; a finding
is a reason code the vetter sees, the language and section it concerns, and a short detail.
Any finding blocks approval: a vetter fixes the text (which re-runs every check) or rejects.

| code | what blocks |
|---|---|
| leak.restricted_term | a run of words matches a restricted-term fingerprint of a linked notice |
| leak.unknown_key | a linked notice was fingerprinted with a key this service does not hold |
| pii.phone_number | a phone number that is not one of the department's public numbers |
| pii.email | an e-mail address |
| pii.street_address | something that reads as a street address |
| pii.plate | something that reads as a licence plate |
| parity.missing_language | English or Spanish is missing |
| parity.time / .date / .phone / .number / .place | the two languages disagree on these |
| channel.sms_segments | the SMS text takes more segments than configured |
| channel.radio_duration | the radio script runs longer than configured at the configured WPM |
| channel.radio_unspoken | the radio script holds digits or abbreviations a presenter must decode |
| sections.empty | a section (headline, body, SMS, radio) is empty |
| sections.policy_statement | the body lacks the department's policy statement |
| sections.phone_line | the Spanish-language phone line is missing (body, SMS or radio) |
| sections.partners | the body does not name every partner organisation |
| drill.public_channel | a drill would go to the public feed |
| drill.unmarked | a drill's headline, body or SMS does not start with the DRILL marker |
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field

from schemas.base import Language, Status, is_drill
from schemas.fingerprints import find_leaks, normalize
from services.rumor_control.gazetteer import Gazetteer
from services.rumor_control.radio import read_seconds, say_phone
from services.rumor_control.sms import count_segments

__all__ = [
    "LANGUAGES",
    "REASON_CODES",
    "SECTIONS",
    "Finding",
    "GuardrailContext",
    "Sections",
    "blocked_reasons",
    "check_channels",
    "check_drill",
    "check_leaks",
    "check_parity",
    "check_pii",
    "check_sections",
    "extract_dates",
    "extract_numbers",
    "extract_phones",
    "extract_times",
    "run_all",
]

LANGUAGES: tuple[Language, ...] = ("en", "es")
SECTIONS = ("headline", "body", "sms", "radio")
# Sections whose facts must agree word for word across languages; the radio script is
# spelled out in words and checked for being speakable instead.
_PARITY_SECTIONS = ("headline", "body", "sms")

REASON_CODES: tuple[str, ...] = (
    "leak.restricted_term",
    "leak.unknown_key",
    "pii.phone_number",
    "pii.email",
    "pii.street_address",
    "pii.plate",
    "parity.missing_language",
    "parity.time",
    "parity.date",
    "parity.phone",
    "parity.number",
    "parity.place",
    "channel.sms_segments",
    "channel.radio_duration",
    "channel.radio_unspoken",
    "sections.empty",
    "sections.policy_statement",
    "sections.phone_line",
    "sections.partners",
    "drill.public_channel",
    "drill.unmarked",
)


@dataclass(frozen=True)
class Sections:
    """One language version of a bulletin."""

    headline: str
    body: str
    sms: str
    radio: str

    def get(self, section: str) -> str:
        """The text of one section by name."""
        value: str = getattr(self, section)
        return value


@dataclass(frozen=True)
class Finding:
    """One reason a draft cannot be approved."""

    code: str
    language: Language | None = None
    section: str | None = None
    detail: str = ""

    def as_dict(self) -> dict[str, str | None]:
        """JSON form, as stored and shown to the vetter."""
        return {
            "code": self.code,
            "language": self.language,
            "section": self.section,
            "detail": self.detail,
        }


@dataclass(frozen=True)
class GuardrailContext:
    """What the checks need besides the text; built from configuration and notices."""

    fingerprint_key: bytes
    policy_statement: Mapping[Language, str]
    phone_line: str
    partner_names: Mapping[Language, tuple[str, ...]]
    gazetteer: Gazetteer
    fingerprints: frozenset[str] = frozenset()
    # Key ids of linked notices' fingerprints made with another key: nothing can be checked.
    foreign_key_ids: frozenset[str] = frozenset()
    allowed_phones: tuple[str, ...] = ()
    sms_max_segments: int = 4
    radio_words_per_minute: int = 150
    radio_max_seconds: int = 120
    drill_markers: Mapping[Language, tuple[str, ...]] = field(
        default_factory=lambda: {"en": ("drill",), "es": ("simulacro", "drill")}
    )


Texts = Mapping[Language, Sections]


def _each(texts: Texts, sections: Iterable[str] = SECTIONS) -> Iterable[tuple[Language, str, str]]:
    for language in LANGUAGES:
        version = texts.get(language)
        if version is None:
            continue
        for section in sections:
            yield language, section, version.get(section)


# -- leak ---------------------------------------------------------------------------


def check_leaks(
    texts: Texts,
    *,
    key: bytes,
    fingerprints: Collection[str],
    foreign_key_ids: Collection[str] = (),
) -> list[Finding]:
    """leak.restricted_term for every section holding a gram of a restricted term, and
    leak.unknown_key when some fingerprints were made with a key we do not hold (a rotated
    key): a check that cannot be made must block, not pass."""
    findings: list[Finding] = []
    if foreign_key_ids:
        detail = "fingerprints made with key " + ", ".join(sorted(foreign_key_ids))
        findings.append(Finding("leak.unknown_key", None, None, detail))
    for language, section, text in _each(texts):
        grams = find_leaks(key, text, fingerprints)
        if grams:
            # The grams are the draft's own words, shown so the vetter can find them; the
            # restricted term itself is never known here.
            detail = "remove: " + ", ".join(repr(gram) for gram in grams)
            findings.append(Finding("leak.restricted_term", language, section, detail))
    return findings


# -- extraction shared by PII and parity -----------------------------------------------

_PHONE = re.compile(
    r"(?<![\w])(?:\+?1[\s.-]?)?(?:\(\d{3}\)\s?|\d{3}[\s.-])\d{3}[\s.-]\d{4}(?!\d)"
    r"|(?<![\w(.-])\d{3}[-.]\d{4}(?!\d)"
)
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_STREET_SUFFIX = (
    r"(?:Street|St|Avenue|Ave|Boulevard|Blvd|Road|Rd|Drive|Dr|Lane|Ln|Way|Court|Ct|Place|Pl"
    r"|Terrace|Ter|Highway|Hwy|Parkway|Pkwy|Circle|Cir)"
)
_STREET_EN = re.compile(
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
_STREET_ES = re.compile(
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


def _digits(text: str) -> str:
    digits = re.sub(r"\D", "", text)
    # A leading country code 1 does not make a different number.
    return digits[1:] if len(digits) == 11 and digits.startswith("1") else digits


def extract_phones(text: str) -> tuple[set[str], str]:
    """Phone numbers as digit strings, and the text with them blanked out."""
    matches = list(_PHONE.finditer(text))
    return {_digits(m.group(0)) for m in matches}, _blank(text, (m.span() for m in matches))


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


def _plates(text: str) -> list[str]:
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


# -- PII --------------------------------------------------------------------------------


def check_pii(texts: Texts, *, allowed_phones: Collection[str]) -> list[Finding]:
    """Phone numbers other than the public ones, e-mails, street addresses, plates."""
    allowed = {_digits(number) for number in allowed_phones}
    allowed_short = {digits[-7:] for digits in allowed if len(digits) >= 7}
    findings: list[Finding] = []
    for language, section, text in _each(texts):
        phones, _ = extract_phones(text)
        strangers = sorted(
            p for p in phones if p not in allowed and not (len(p) == 7 and p in allowed_short)
        )
        if strangers:
            detail = "not a public number: " + ", ".join(strangers)
            findings.append(Finding("pii.phone_number", language, section, detail))
        rules: tuple[tuple[str, Callable[[str], list[str]]], ...] = (
            ("pii.email", lambda t: _EMAIL.findall(t)),
            ("pii.street_address", lambda t: [m.group(0) for m in _STREET_EN.finditer(t)]
             + [m.group(0) for m in _STREET_ES.finditer(t)]),
            ("pii.plate", _plates),
        )  # fmt: skip
        for code, find in rules:
            hits = find(text)
            if hits:
                detail = "remove: " + ", ".join(repr(hit) for hit in hits)
                findings.append(Finding(code, language, section, detail))
    return findings


# -- parity -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Facts:
    times: set[int]
    dates: set[tuple[int, int]]
    phones: set[str]
    numbers: set[str]
    places: set[str]


def _facts(text: str, language: Language, gazetteer: Gazetteer) -> _Facts:
    phones, rest = extract_phones(text)
    times, rest = extract_times(rest)
    dates, years, rest = extract_dates(rest, language)
    numbers = extract_numbers(rest) | {str(year) for year in years}
    return _Facts(times, dates, phones, numbers, gazetteer.codes_in(text))


def _show_time(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def check_parity(texts: Texts, *, gazetteer: Gazetteer) -> list[Finding]:
    """The English and Spanish versions agree on times, dates, phones, numbers and places."""
    missing = [language for language in LANGUAGES if language not in texts]
    if missing:
        return [Finding("parity.missing_language", lang, None, "no text") for lang in missing]
    findings: list[Finding] = []
    for section in _PARITY_SECTIONS:
        en = _facts(texts["en"].get(section), "en", gazetteer)
        es = _facts(texts["es"].get(section), "es", gazetteer)
        comparisons: tuple[tuple[str, set[str], set[str]], ...] = (
            ("parity.time", {_show_time(t) for t in en.times}, {_show_time(t) for t in es.times}),
            (
                "parity.date",
                {f"{m:02d}-{d:02d}" for m, d in en.dates},
                {f"{m:02d}-{d:02d}" for m, d in es.dates},
            ),
            ("parity.phone", en.phones, es.phones),
            ("parity.number", en.numbers, es.numbers),
            ("parity.place", en.places, es.places),
        )
        for code, english, spanish in comparisons:
            if english != spanish:
                detail = f"en: {', '.join(sorted(english)) or '-'}; "
                detail += f"es: {', '.join(sorted(spanish)) or '-'}"
                findings.append(Finding(code, None, section, detail))
    return findings


# -- channels ---------------------------------------------------------------------------

_RADIO_UNSPOKEN = re.compile(
    r"\d|\b(?:[ap]\.\s?m\.|a\.m|p\.m|Sr\.|Sra\.|Dr\.|Dra\.|St\.|Ave\.|Av\.|No\.|Núm\.|etc\.|"
    r"EE\.\s?UU\.|tel\.|Tel\.)",
)


def check_channels(
    texts: Texts, *, sms_max_segments: int, words_per_minute: int, radio_max_seconds: int
) -> list[Finding]:
    """SMS within its segments; radio script short enough and fully speakable."""
    findings: list[Finding] = []
    for language in LANGUAGES:
        version = texts.get(language)
        if version is None:
            continue
        sms = count_segments(version.sms)
        if sms.segments > sms_max_segments:
            detail = f"{sms.segments} {sms.encoding} segments ({sms.units} units); "
            detail += f"at most {sms_max_segments}"
            findings.append(Finding("channel.sms_segments", language, "sms", detail))
        seconds = read_seconds(version.radio, words_per_minute)
        if seconds > radio_max_seconds:
            detail = f"about {seconds} s at {words_per_minute} words per minute; "
            detail += f"at most {radio_max_seconds} s"
            findings.append(Finding("channel.radio_duration", language, "radio", detail))
        unspoken = sorted({m.group(0) for m in _RADIO_UNSPOKEN.finditer(version.radio)})
        if unspoken:
            detail = "spell out: " + ", ".join(repr(u) for u in unspoken)
            findings.append(Finding("channel.radio_unspoken", language, "radio", detail))
    return findings


# -- required sections ----------------------------------------------------------------


def _contains(haystack: str, needle: str) -> bool:
    needle_words = normalize(needle)
    return bool(needle_words) and f" {needle_words} " in f" {normalize(haystack)} "


def check_sections(
    texts: Texts,
    *,
    policy_statement: Mapping[Language, str],
    phone_line: str,
    partner_names: Mapping[Language, tuple[str, ...]],
) -> list[Finding]:
    """Every section present; the policy, the phone line and every partner in the body."""
    findings: list[Finding] = []
    line_digits = _digits(phone_line)
    for language in LANGUAGES:
        version = texts.get(language)
        if version is None:
            continue
        for section in SECTIONS:
            if not version.get(section).strip():
                findings.append(Finding("sections.empty", language, section, "empty"))
        if not _contains(version.body, policy_statement[language]):
            detail = "the policy statement must appear word for word"
            findings.append(Finding("sections.policy_statement", language, "body", detail))
        for section in ("body", "sms"):
            phones, _ = extract_phones(version.get(section))
            if line_digits not in phones:
                detail = f"name the phone line {phone_line}"
                findings.append(Finding("sections.phone_line", language, section, detail))
        if not _contains(version.radio, say_phone(phone_line, language)):
            detail = "read the phone line out digit by digit"
            findings.append(Finding("sections.phone_line", language, "radio", detail))
        absent = [name for name in partner_names[language] if not _contains(version.body, name)]
        if absent:
            detail = "name: " + ", ".join(absent)
            findings.append(Finding("sections.partners", language, "body", detail))
    return findings


# -- drills -----------------------------------------------------------------------------


def check_drill(
    texts: Texts,
    *,
    status: Status,
    channels: Collection[str],
    markers: Mapping[Language, tuple[str, ...]],
) -> list[Finding]:
    """A drill never reaches the public feed and says so at the top of every text."""
    if not is_drill(status):
        return []
    findings: list[Finding] = []
    if "public_feed" in channels:
        findings.append(Finding("drill.public_channel", None, None, "drills are never public"))
    for language, section, text in _each(texts, ("headline", "body", "sms")):
        opening = normalize(text).split()[:3]
        if not any(marker in opening for marker in markers[language]):
            detail = "start with DRILL" if language == "en" else "start with SIMULACRO (DRILL)"
            findings.append(Finding("drill.unmarked", language, section, detail))
    return findings


# -- all --------------------------------------------------------------------------------


def run_all(
    texts: Texts, *, status: Status, channels: Collection[str], context: GuardrailContext
) -> list[Finding]:
    """Every guardrail, in a stable order."""
    return [
        *check_leaks(
            texts,
            key=context.fingerprint_key,
            fingerprints=context.fingerprints,
            foreign_key_ids=context.foreign_key_ids,
        ),
        *check_pii(texts, allowed_phones=context.allowed_phones),
        *check_parity(texts, gazetteer=context.gazetteer),
        *check_channels(
            texts,
            sms_max_segments=context.sms_max_segments,
            words_per_minute=context.radio_words_per_minute,
            radio_max_seconds=context.radio_max_seconds,
        ),
        *check_sections(
            texts,
            policy_statement=context.policy_statement,
            phone_line=context.phone_line,
            partner_names=context.partner_names,
        ),
        *check_drill(texts, status=status, channels=channels, markers=context.drill_markers),
    ]


def blocked_reasons(findings: Iterable[Finding]) -> tuple[str, ...]:
    """The distinct reason codes, sorted (as on bulletin.drafted)."""
    return tuple(sorted({finding.code for finding in findings}))
