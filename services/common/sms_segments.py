"""SMS segment counting: GSM-7 when every character fits, UCS-2 otherwise.

Shared by whoever writes SMS text (rumor_control's bulletin text) and the Kannel sender,
which picks the coding from it. Carriers bill and split by segment. GSM 03.38's
basic alphabet has é, ñ, ü, ¿ and ¡ but not á, í, ó or ú, so most Spanish texts are sent as
UCS-2 and get 70 characters per segment instead of 160; a multi-part message loses room to
its concatenation header (153 and 67). Characters of the extension table ({ } [ ] ~ \\ | ^ €)
take two GSM-7 septets. UCS-2 counts UTF-16 code units, so an emoji takes two.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = [
    "GSM7_BASIC",
    "GSM7_EXTENSION",
    "Encoding",
    "SmsCount",
    "count_segments",
    "encoding_of",
]

GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")

Encoding = Literal["GSM-7", "UCS-2"]


@dataclass(frozen=True)
class SmsCount:
    """How a text would be sent."""

    encoding: Encoding
    units: int  # septets (GSM-7) or UTF-16 code units (UCS-2)
    segments: int


def encoding_of(text: str) -> Encoding:
    """GSM-7 if every character is in the basic or extension table, else UCS-2."""
    if all(ch in GSM7_BASIC or ch in GSM7_EXTENSION for ch in text):
        return "GSM-7"
    return "UCS-2"


def count_segments(text: str) -> SmsCount:
    """The encoding, length in units and number of segments of `text`."""
    encoding = encoding_of(text)
    if encoding == "GSM-7":
        units = sum(2 if ch in GSM7_EXTENSION else 1 for ch in text)
        single, multi = 160, 153
    else:
        units = len(text.encode("utf-16-le")) // 2
        single, multi = 70, 67
    if units == 0:
        return SmsCount(encoding, 0, 0)
    segments = 1 if units <= single else -(-units // multi)
    return SmsCount(encoding, units, segments)
