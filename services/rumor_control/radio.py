"""The radio desk's read-aloud script: numbers, times, dates and phone numbers in words.

A presenter reading live should never have to decode "2:30 p. m." or "(505) 555-0142":
the script says "a las dos y media de la tarde" and "cinco cero cinco, cinco cinco cinco,
cero uno cuatro dos". Spanish comes first, as the station broadcasts in Spanish; the English
text follows for the newsroom. Everything here is pure and unit-tested.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime

from schemas.base import Language
from services.rumor_control.calendar_words import MONTHS, WEEKDAYS

__all__ = [
    "RadioScript",
    "build_script",
    "number_words",
    "read_seconds",
    "say_date",
    "say_numbers",
    "say_phone",
    "say_time",
    "word_count",
]

_EN_ONES = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
]
_EN_TENS = ["_", "_", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
_ES_ONES = [
    "cero",
    "uno",
    "dos",
    "tres",
    "cuatro",
    "cinco",
    "seis",
    "siete",
    "ocho",
    "nueve",
    "diez",
    "once",
    "doce",
    "trece",
    "catorce",
    "quince",
    "dieciséis",
    "diecisiete",
    "dieciocho",
    "diecinueve",
    "veinte",
    "veintiuno",
    "veintidós",
    "veintitrés",
    "veinticuatro",
    "veinticinco",
    "veintiséis",
    "veintisiete",
    "veintiocho",
    "veintinueve",
]
_ES_TENS = [
    "_",
    "_",
    "veinte",
    "treinta",
    "cuarenta",
    "cincuenta",
    "sesenta",
    "setenta",
    "ochenta",
    "noventa",
]
_EN_ORDINAL_SPECIAL = {
    "one": "first",
    "two": "second",
    "three": "third",
    "five": "fifth",
    "eight": "eighth",
    "nine": "ninth",
    "twelve": "twelfth",
}


def number_words(n: int, language: Language) -> str:
    """0 to 9999 in words: 45 -> "forty-five" / "cuarenta y cinco"; 2026 -> "two thousand
    twenty-six" / "dos mil veintiséis" (how presenters read years)."""
    if not 0 <= n <= 9999:
        raise ValueError(f"out of range: {n}")
    if language == "en":
        return _en_words(n)
    return _es_words(n)


def _en_words(n: int) -> str:
    if n < 20:
        return _EN_ONES[n]
    if n < 100:
        tens, ones = divmod(n, 10)
        return _EN_TENS[tens] + (f"-{_EN_ONES[ones]}" if ones else "")
    if n < 1000:
        hundreds, rest = divmod(n, 100)
        return f"{_EN_ONES[hundreds]} hundred" + (f" {_en_words(rest)}" if rest else "")
    thousands, rest = divmod(n, 1000)
    return f"{_en_words(thousands)} thousand" + (f" {_en_words(rest)}" if rest else "")


_ES_HUNDREDS = [
    "_",
    "ciento",
    "doscientos",
    "trescientos",
    "cuatrocientos",
    "quinientos",
    "seiscientos",
    "setecientos",
    "ochocientos",
    "novecientos",
]


def _es_words(n: int) -> str:
    if n < 30:
        return _ES_ONES[n]
    if n < 100:
        tens, ones = divmod(n, 10)
        return _ES_TENS[tens] + (f" y {_ES_ONES[ones]}" if ones else "")
    if n < 1000:
        if n == 100:
            return "cien"
        hundreds, rest = divmod(n, 100)
        return _ES_HUNDREDS[hundreds] + (f" {_es_words(rest)}" if rest else "")
    thousands, rest = divmod(n, 1000)
    head = "mil" if thousands == 1 else f"{_es_words(thousands)} mil"
    return head + (f" {_es_words(rest)}" if rest else "")


def _en_ordinal(n: int) -> str:
    words = _en_words(n)
    head, sep, last = words.rpartition("-")
    if last in _EN_ORDINAL_SPECIAL:
        last = _EN_ORDINAL_SPECIAL[last]
    elif last.endswith("y"):
        last = last[:-1] + "ieth"
    else:
        last += "th"
    return f"{head}{sep}{last}"


def say_time(moment: datetime, language: Language, *, preposition: bool = True) -> str:
    """A clock time as a presenter says it: "at two thirty in the afternoon",
    "a las dos y media de la tarde", "al mediodía", "a la una y cuarto de la madrugada"."""
    hour, minute = moment.hour, moment.minute
    if language == "en":
        return _say_time_en(hour, minute, preposition)
    return _say_time_es(hour, minute, preposition)


def _say_time_en(hour: int, minute: int, preposition: bool) -> str:
    at = "at " if preposition else ""
    if minute == 0 and hour == 12:
        return f"{at}noon"
    if minute == 0 and hour == 0:
        return f"{at}midnight"
    hour12 = hour % 12 or 12
    if minute == 0:
        clock = f"{_en_words(hour12)} o'clock"
    elif minute < 10:
        clock = f"{_en_words(hour12)} oh {_en_words(minute)}"
    else:
        clock = f"{_en_words(hour12)} {_en_words(minute)}"
    if hour == 0:
        period = "at night"
    elif hour < 12:
        period = "in the morning"
    elif hour < 18:
        period = "in the afternoon"
    else:
        period = "in the evening"
    return f"{at}{clock} {period}"


def _say_time_es(hour: int, minute: int, preposition: bool) -> str:
    if minute == 0 and hour == 12:
        return "al mediodía" if preposition else "el mediodía"
    if minute == 0 and hour == 0:
        return "a la medianoche" if preposition else "la medianoche"
    hour12 = hour % 12 or 12
    article = "la" if hour12 == 1 else "las"
    clock = f"{article} {'una' if hour12 == 1 else _es_words(hour12)}"
    if minute == 15:
        clock += " y cuarto"
    elif minute == 30:
        clock += " y media"
    elif minute:
        clock += f" y {_es_words(minute)}"
    if hour == 0 or hour >= 20:
        period = "de la noche"
    elif hour < 6:
        period = "de la madrugada"
    elif hour < 12:
        period = "de la mañana"
    elif hour == 12:
        period = "del mediodía"
    else:
        period = "de la tarde"
    return f"{'a ' if preposition else ''}{clock} {period}"


def say_date(
    moment: datetime, language: Language, *, year: bool = False, article: bool = True
) -> str:
    """A date in words: "Tuesday, March third" / "el martes tres de marzo" (without `article`:
    "martes tres de marzo", for "del martes ...")."""
    if language == "en":
        text = f"{WEEKDAYS['en'][moment.weekday()]}, {MONTHS['en'][moment.month - 1]} "
        text += _en_ordinal(moment.day)
        return text + (f", {_en_words(moment.year)}" if year else "")
    # Latin American usage reads the first of the month as "primero".
    day = "primero" if moment.day == 1 else _es_words(moment.day)
    text = f"{WEEKDAYS['es'][moment.weekday()]} {day} de {MONTHS['es'][moment.month - 1]}"
    if article:
        text = f"el {text}"
    return text + (f" de {_es_words(moment.year)}" if year else "")


_DIGIT_GROUPS = re.compile(r"\d+")


def say_phone(number: str, language: Language) -> str:
    """A phone number digit by digit, a pause (comma) between groups:
    "(505) 555-0142" -> "five zero five, five five five, zero one four two"."""
    words = _EN_ONES if language == "en" else _ES_ONES
    groups = _DIGIT_GROUPS.findall(number)
    return ", ".join(" ".join(words[int(d)] for d in group) for group in groups)


def say_numbers(text: str, language: Language) -> str:
    """Every number in `text` in words: "District 4" -> "District four"."""
    return _DIGIT_GROUPS.sub(lambda m: number_words(int(m.group(0)), language), text)


_WORD = re.compile(r"\w+(?:[-'\u2019]\w+)*")


def word_count(text: str) -> int:
    """Words a presenter reads ("forty-five" is one word)."""
    return len(_WORD.findall(text))


def read_seconds(text: str, words_per_minute: int) -> int:
    """How long reading `text` aloud takes at `words_per_minute`, rounded up."""
    return math.ceil(word_count(text) * 60 / words_per_minute)


@dataclass(frozen=True)
class RadioScript:
    """The script as sent to the radio desk."""

    text: str
    seconds_es: int
    seconds_en: int


def build_script(
    *,
    station_note: str,
    spanish: str,
    english: str,
    drill: bool,
    words_per_minute: int,
) -> RadioScript:
    """Spanish first, then English; stage directions in brackets are not read aloud."""
    lines: list[str] = []
    if drill:
        lines += ["[SIMULACRO / DRILL: esto es un ejercicio. This is an exercise.]", ""]
    lines += [f"[{station_note}]", "", "[ESPAÑOL: leer al aire]", spanish.strip(), ""]
    lines += ["[ENGLISH]", english.strip(), ""]
    return RadioScript(
        text="\n".join(lines),
        seconds_es=read_seconds(spanish, words_per_minute),
        seconds_en=read_seconds(english, words_per_minute),
    )
