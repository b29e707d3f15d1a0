"""Guardrails that block a bulletin's approval: pure functions, each with its reason code.

Every check takes the draft's texts (and the facts it needs) and returns findings; a finding
is a reason code the vetter sees, the language and section it concerns, and a short detail.
Any finding blocks approval: a vetter fixes the text (which re-runs every check) or rejects.

| code | what blocks |
|---|---|
| leak.restricted_term | identifying words match a restricted-term fingerprint of a live notice |
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

from collections.abc import Collection, Iterable

from schemas.base import Status
from schemas.fingerprints import tokens
from services.rumor_control.guardrails.checks import (
    check_channels,
    check_drill,
    check_leaks,
    check_parity,
    check_pii,
    check_sections,
)
from services.rumor_control.guardrails.extraction import (
    extract_dates,
    extract_numbers,
    extract_phones,
    extract_times,
)
from services.rumor_control.guardrails.model import (
    LANGUAGES,
    REASON_CODES,
    SECTIONS,
    Finding,
    GuardrailContext,
    Sections,
    Texts,
)

__all__ = [
    "LANGUAGES",
    "REASON_CODES",
    "SECTIONS",
    "Finding",
    "GuardrailContext",
    "Sections",
    "Texts",
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
    "public_words",
    "run_all",
]


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
            public_words=public_words(context),
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


def public_words(context: GuardrailContext) -> frozenset[str]:
    """Words of the department's own public texts: policy, partners, area names.

    Every bulletin names them, so one of them alone never blocks, even when it also occurs
    in a restricted value ("1200 Riverton Avenue").
    """
    texts: list[str] = [context.phone_line]
    for language in LANGUAGES:
        texts.append(context.policy_statement[language])
        texts.extend(context.partner_names[language])
        texts.extend(area.name(language) for area in context.gazetteer.areas)
    return frozenset(word for text in texts for word in tokens(text))


def blocked_reasons(findings: Iterable[Finding]) -> tuple[str, ...]:
    """The distinct reason codes, sorted (as on bulletin.drafted)."""
    return tuple(sorted({finding.code for finding in findings}))
