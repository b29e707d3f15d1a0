"""What each recipient of a bulletin reads: liaisons the text and its SMS version, the radio
desk a read-aloud script (Spanish first). Pure functions, used when publishing decides the
delivery requests and when the radio desk asks for its script."""

from __future__ import annotations

from schemas.base import Language
from services.rumor_control.guardrails import Sections
from services.rumor_control.radio import build_script, read_seconds

__all__ = ["liaison_text", "radio_delivery_text", "script_minutes"]

_SMS_LABEL = {"en": "Text message version:", "es": "Versión para mensaje de texto:"}


def liaison_text(text: Sections, language: Language) -> str:
    """What a liaison reads: the bulletin, then the short version to forward by SMS."""
    return f"{text.body}\n\n{_SMS_LABEL[language]}\n{text.sms}"


def radio_delivery_text(
    *, spanish: Sections, english: Sections, drill: bool, words_per_minute: int, bulletin_ref: str
) -> tuple[str, str]:
    """Headline and body of the radio desk's delivery: the read-aloud script, Spanish first."""
    script = build_script(
        station_note=(
            f"Boletín {bulletin_ref}. Español: unos "
            f"{script_minutes(spanish.radio, words_per_minute)} de lectura. "
            "Lea el texto tal cual; no lea lo que está entre corchetes."
        ),
        spanish=spanish.radio,
        english=english.radio,
        drill=drill,
        words_per_minute=words_per_minute,
    )
    return f"Guion para radio / Radio script: {spanish.headline}", script.text


def script_minutes(text: str, words_per_minute: int) -> str:
    """ "45 segundos" / "2 minutos": the reading time, for the newsroom's rundown."""
    seconds = read_seconds(text, words_per_minute)
    if seconds < 90:
        return f"{seconds} segundos"
    return f"{round(seconds / 60)} minutos"
