"""The checks, each a pure function returning findings with their reason codes."""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass

from schemas.base import Language, Status, is_drill
from schemas.fingerprints import normalize
from services.rumor_control.gazetteer import Gazetteer
from services.rumor_control.guardrails.extraction import (
    EMAIL,
    STREET_EN,
    STREET_ES,
    digits,
    extract_dates,
    extract_numbers,
    extract_phones,
    extract_times,
    plates,
)
from services.rumor_control.guardrails.leaks import find_leak_spans
from services.rumor_control.guardrails.model import (
    LANGUAGES,
    PARITY_SECTIONS,
    SECTIONS,
    Finding,
    Texts,
    each_section,
)
from services.rumor_control.radio import read_seconds, say_phone
from services.rumor_control.sms import count_segments

__all__ = [
    "LEAK_DETAIL",
    "check_channels",
    "check_drill",
    "check_leaks",
    "check_parity",
    "check_pii",
    "check_sections",
]

# -- leak ---------------------------------------------------------------------------


LEAK_DETAIL = (
    "remove {quoted} (characters {start}-{end}): it matches restricted detail of a current "
    "notice (a name, address, vehicle or place that must not be published)"
)


def check_leaks(
    texts: Texts,
    *,
    key: bytes,
    fingerprints: Collection[str],
    foreign_key_ids: Collection[str] = (),
    public_words: Collection[str] = frozenset(),
) -> list[Finding]:
    """leak.restricted_term for every span of a section that matches a restricted-term
    fingerprint and reads as identifying (guardrails/leaks.py), and leak.unknown_key when
    some fingerprints were made with a key we do not hold (a rotated key): a check that
    cannot be made must block, not pass."""
    findings: list[Finding] = []
    if foreign_key_ids:
        detail = "fingerprints made with key " + ", ".join(sorted(foreign_key_ids))
        findings.append(Finding("leak.unknown_key", None, None, detail))
    for language, section, text in each_section(texts):
        spans = find_leak_spans(
            key, text, fingerprints, language=language, public_words=public_words
        )
        # The span is the vetter's own text; which notice, field or value it matched is
        # never said, so a block confirms no more than that something must go.
        findings.extend(
            Finding(
                "leak.restricted_term",
                language,
                section,
                LEAK_DETAIL.format(
                    quoted=repr(text[span.start : span.end]), start=span.start, end=span.end
                ),
            )
            for span in spans
        )
    return findings


# -- PII --------------------------------------------------------------------------------


def check_pii(texts: Texts, *, allowed_phones: Collection[str]) -> list[Finding]:
    """Phone numbers other than the public ones, e-mails, street addresses, plates."""
    allowed = {digits(number) for number in allowed_phones}
    allowed_short = {digits[-7:] for digits in allowed if len(digits) >= 7}
    findings: list[Finding] = []
    for language, section, text in each_section(texts):
        phones, _ = extract_phones(text)
        strangers = sorted(
            p for p in phones if p not in allowed and not (len(p) == 7 and p in allowed_short)
        )
        if strangers:
            detail = "not a public number: " + ", ".join(strangers)
            findings.append(Finding("pii.phone_number", language, section, detail))
        rules: tuple[tuple[str, Callable[[str], list[str]]], ...] = (
            ("pii.email", lambda t: EMAIL.findall(t)),
            ("pii.street_address", lambda t: [m.group(0) for m in STREET_EN.finditer(t)]
             + [m.group(0) for m in STREET_ES.finditer(t)]),
            ("pii.plate", plates),
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
    for section in PARITY_SECTIONS:
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
    line_digits = digits(phone_line)
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
    for language, section, text in each_section(texts, ("headline", "body", "sms")):
        opening = normalize(text).split()[:3]
        if not any(marker in opening for marker in markers[language]):
            detail = "start with DRILL" if language == "en" else "start with SIMULACRO (DRILL)"
            findings.append(Finding("drill.unmarked", language, section, detail))
    return findings
