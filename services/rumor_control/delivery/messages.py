"""What a liaison or the radio desk receives: the rendered bulletin, by webhook or e-mail.

Rendered when the delivery is sent, from the published version's stored texts (they never
change once published), so a delivery record holds ids only. Liaisons get the text in
their language with its SMS version; the radio desk a read-aloud script, Spanish first.
Every message carries a receipt link made for that recipient and version.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from schemas.base import Language, Status, is_drill
from schemas.deliveries import DeliveryPurpose
from services.rumor_control.domain import BulletinRow, VersionRow
from services.rumor_control.publishing.texts import liaison_text, radio_delivery_text
from services.rumor_control.vetting.common import sections_of

__all__ = ["BulletinMessage", "bulletin_message", "email_text", "webhook_payload"]

_RECEIPT_LINE = {
    "en": "Please confirm that you received this bulletin:",
    "es": "Por favor, confirme que recibió este boletín:",
}
_CONSOLE_LINE = {
    "en": "Read it in the Aviso console:",
    "es": "Léalo en la consola de Aviso:",
}
_DRILL_PREFIX = {"en": "DRILL — ", "es": "SIMULACRO (DRILL) — "}
_HEADLINE_MAX = 300


@dataclass(frozen=True)
class BulletinMessage:
    """One recipient's message (releasable text only; the address is added when sent)."""

    delivery_id: uuid.UUID
    bulletin_id: uuid.UUID
    version: int
    purpose: DeliveryPurpose
    status: Status
    language: Language
    headline: str
    body: str

    def marked(self, text: str) -> str:
        """Drills start every message with DRILL, whatever a vetter did to the text."""
        if not is_drill(self.status):
            return text
        opening = text.lstrip()[:40].upper()
        if "DRILL" in opening or "SIMULACRO" in opening:
            return text
        return _DRILL_PREFIX[self.language] + text


def bulletin_message(
    *,
    delivery_id: uuid.UUID,
    bulletin: BulletinRow,
    version: VersionRow,
    purpose: DeliveryPurpose,
    language: Language,
    radio_desk: bool,
    words_per_minute: int,
) -> BulletinMessage:
    """A liaison's text in `language`, or the radio desk's Spanish-first script."""
    texts = sections_of(version.texts)
    if radio_desk:
        headline, body = radio_delivery_text(
            spanish=texts["es"],
            english=texts["en"],
            drill=is_drill(bulletin.status),
            words_per_minute=words_per_minute,
            bulletin_ref=f"{bulletin.bulletin_id} v{version.version}",
        )
        language = "es"
    else:
        headline, body = texts[language].headline, liaison_text(texts[language], language)
    return BulletinMessage(
        delivery_id=delivery_id,
        bulletin_id=bulletin.bulletin_id,
        version=version.version,
        purpose=purpose,
        status=bulletin.status,
        language=language,
        headline=headline[:_HEADLINE_MAX],
        body=body,
    )


def webhook_payload(
    message: BulletinMessage, *, receipt_url: str, console_url: str | None = None
) -> dict[str, Any]:
    """The JSON a liaison's or the radio desk's webhook receives (`console_url`: the
    bulletin's console page, when a console is configured)."""
    return {
        "type": "aviso.bulletin",
        "delivery_id": str(message.delivery_id),
        "bulletin_id": str(message.bulletin_id),
        "version": message.version,
        "purpose": message.purpose,
        "status": message.status,
        "drill": is_drill(message.status),
        "language": message.language,
        "headline": message.marked(message.headline),
        "body": message.marked(message.body),
        "receipt_url": receipt_url,
        "console_url": console_url,
    }


def email_text(
    message: BulletinMessage, *, receipt_url: str, console_url: str | None = None
) -> str:
    """The plain-text e-mail: the message, the receipt link, and the console page if any."""
    line = _RECEIPT_LINE[message.language]
    text = f"{message.marked(message.body)}\n\n{line}\n{receipt_url}\n"
    if console_url:
        text += f"\n{_CONSOLE_LINE[message.language]}\n{console_url}\n"
    return text
