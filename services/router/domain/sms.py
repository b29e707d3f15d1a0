"""Alerts by SMS: the short code an alert is named by, its text, and what a reply means.

A phone cannot follow a one-click link quickly at a weekend event, so the SPOC's SMS names
its alert by a short code ("Aviso A7K2: ... Reply 1 to acknowledge.") and a reply such as
`1`, `ACK`, `OK` or `SI` from that person's number acknowledges the latest open alert the
code names (or, without a code, the latest open alert that reached the number). The code
is derived from the alert id, so nothing new is stored; four characters of an alphabet
without look-alikes (no 0/O, 1/I/L) give about a million codes, and a clash between two
open alerts only makes "the latest" win, as for a reply without a code.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from dataclasses import dataclass

__all__ = ["CODE_LENGTH", "SmsReply", "parse_reply", "sms_code", "sms_text"]

CODE_LENGTH = 4
_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
# What a reply may say to acknowledge: a digit, an English or a Spanish yes.
_ACK_WORDS = frozenset({"1", "ACK", "OK", "SI", "SÍ"})
_WORD = re.compile(r"[0-9A-Za-zÁÉÍÓÚÜÑáéíóúüñ]+")
# Kept short: one GSM-7 segment for a usual headline, never more than three.
_HEADLINE_MAX = 110


def sms_code(alert_id: uuid.UUID) -> str:
    """The short code an alert's SMS carries (stable: derived from the alert id)."""
    digest = int.from_bytes(hashlib.sha256(b"aviso-sms-code\x00" + alert_id.bytes).digest()[:8])
    code = ""
    for _ in range(CODE_LENGTH):
        digest, index = divmod(digest, len(_ALPHABET))
        code += _ALPHABET[index]
    return code


def sms_text(*, code: str, headline: str, acknowledgeable: bool) -> str:
    """The whole SMS of one notification: releasable headline, code, how to acknowledge."""
    if len(headline) > _HEADLINE_MAX:
        headline = headline[: _HEADLINE_MAX - 3].rstrip() + "..."
    text = f"Aviso {code}: {headline}."
    if acknowledgeable:
        text += f" Reply 1 {code} to acknowledge."
    return text


@dataclass(frozen=True)
class SmsReply:
    """A reply that acknowledges; `code` is None when the reply named no alert."""

    code: str | None


def parse_reply(text: str) -> SmsReply | None:
    """What a reply asks for: an acknowledgement (with or without a code), or None.

    Accepted: an acknowledging word and at most one code, in either order, in any case,
    with punctuation around them ("1", "ok A7K2", "A7K2 sí", "Si.").
    """
    words = [word.upper() for word in _WORD.findall(text)]
    match words:
        case [word] if word in _ACK_WORDS:
            return SmsReply(code=None)
        case [word, code] if word in _ACK_WORDS and _is_code(code):
            return SmsReply(code=code)
        case [code, word] if word in _ACK_WORDS and _is_code(code):
            return SmsReply(code=code)
        case _:
            return None


def _is_code(word: str) -> bool:
    return len(word) == CODE_LENGTH and all(char in _ALPHABET for char in word)
