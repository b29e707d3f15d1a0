"""The read-aloud script: times, dates, phone numbers and numbers as a presenter says them."""

from __future__ import annotations

from datetime import datetime

import pytest

from services.rumor_control.radio import (
    build_script,
    number_words,
    read_seconds,
    say_date,
    say_numbers,
    say_phone,
    say_time,
    word_count,
)


def _at(hour: int, minute: int) -> datetime:
    return datetime(2026, 3, 3, hour, minute)


@pytest.mark.parametrize(
    ("hour", "minute", "spanish"),
    [
        (14, 30, "a las dos y media de la tarde"),
        (14, 15, "a las dos y cuarto de la tarde"),
        (14, 45, "a las dos y cuarenta y cinco de la tarde"),
        (13, 0, "a la una de la tarde"),
        (1, 5, "a la una y cinco de la madrugada"),
        (9, 0, "a las nueve de la mañana"),
        (12, 0, "al mediodía"),
        (12, 20, "a las doce y veinte del mediodía"),
        (0, 0, "a la medianoche"),
        (21, 10, "a las nueve y diez de la noche"),
        (23, 59, "a las once y cincuenta y nueve de la noche"),
    ],
)
def test_spanish_times_read_as_a_presenter_says_them(hour: int, minute: int, spanish: str) -> None:
    assert say_time(_at(hour, minute), "es") == spanish


@pytest.mark.parametrize(
    ("hour", "minute", "english"),
    [
        (14, 30, "at two thirty in the afternoon"),
        (14, 5, "at two oh five in the afternoon"),
        (9, 0, "at nine o'clock in the morning"),
        (12, 0, "at noon"),
        (0, 0, "at midnight"),
        (0, 30, "at twelve thirty at night"),
        (19, 45, "at seven forty-five in the evening"),
    ],
)
def test_english_times_read_without_abbreviations(hour: int, minute: int, english: str) -> None:
    assert say_time(_at(hour, minute), "en") == english


def test_without_preposition() -> None:
    assert say_time(_at(12, 0), "es", preposition=False) == "el mediodía"
    assert say_time(_at(18, 0), "en", preposition=False) == "six o'clock in the evening"


def test_dates_in_words() -> None:
    assert say_date(datetime(2026, 3, 3), "en") == "Tuesday, March third"
    assert say_date(datetime(2026, 3, 1), "es") == "el domingo primero de marzo"
    assert say_date(datetime(2026, 3, 21), "es", article=False) == "sábado veintiuno de marzo"
    assert say_date(datetime(2026, 3, 22), "en", year=True) == (
        "Sunday, March twenty-second, two thousand twenty-six"
    )


def test_phone_numbers_digit_by_digit_with_pauses() -> None:
    assert (
        say_phone("(505) 555-0142", "es")
        == "cinco cero cinco, cinco cinco cinco, cero uno cuatro dos"
    )
    assert say_phone("(505) 555-0142", "en") == "five zero five, five five five, zero one four two"


@pytest.mark.parametrize(
    ("n", "en", "es"),
    [
        (0, "zero", "cero"),
        (16, "sixteen", "dieciséis"),
        (21, "twenty-one", "veintiuno"),
        (45, "forty-five", "cuarenta y cinco"),
        (100, "one hundred", "cien"),
        (115, "one hundred fifteen", "ciento quince"),
        (2026, "two thousand twenty-six", "dos mil veintiséis"),
    ],
)
def test_numbers_in_words(n: int, en: str, es: str) -> None:
    assert number_words(n, "en") == en
    assert number_words(n, "es") == es


def test_numbers_inside_names_are_spelled() -> None:
    assert say_numbers("el Distrito 4", "es") == "el Distrito cuatro"


def test_reading_time_at_words_per_minute() -> None:
    text = " ".join(["palabra"] * 150)
    assert word_count("forty-five people can't wait") == 4
    assert read_seconds(text, 150) == 60
    assert read_seconds(text, 100) == 90


def test_the_script_puts_spanish_first_and_marks_drills() -> None:
    script = build_script(
        station_note="nota", spanish="Hola.", english="Hello.", drill=True, words_per_minute=150
    )
    assert script.text.index("Hola.") < script.text.index("Hello.")
    assert script.text.startswith("[SIMULACRO / DRILL")
