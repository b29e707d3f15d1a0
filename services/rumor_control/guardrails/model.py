"""What the guardrails read and return: a language version's sections, findings, context."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from schemas.base import Language
from services.rumor_control.gazetteer import Gazetteer

__all__ = [
    "LANGUAGES",
    "PARITY_SECTIONS",
    "REASON_CODES",
    "SECTIONS",
    "Finding",
    "GuardrailContext",
    "Sections",
    "Texts",
    "each_section",
]

LANGUAGES: tuple[Language, ...] = ("en", "es")
SECTIONS = ("headline", "body", "sms", "radio")
# Sections whose facts must agree word for word across languages; the radio script is
# spelled out in words and checked for being speakable instead.
PARITY_SECTIONS = ("headline", "body", "sms")

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


def each_section(
    texts: Texts, sections: Iterable[str] = SECTIONS
) -> Iterable[tuple[Language, str, str]]:
    """Every (language, section, text) of a draft, English first."""
    for language in LANGUAGES:
        version = texts.get(language)
        if version is None:
            continue
        for section in sections:
            yield language, section, version.get(section)
