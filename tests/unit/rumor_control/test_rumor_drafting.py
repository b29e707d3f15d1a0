"""Drafting from the pre-vetted templates: both languages, releasable variables only."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from jinja2 import UndefinedError

from services.rumor_control.config import PACKAGE_DIR
from services.rumor_control.department import load_department
from services.rumor_control.drafting import Drafter, clock, long_date

DEPARTMENT = load_department(PACKAGE_DIR / "department.yaml")
DRAFTER = Drafter(PACKAGE_DIR / "templates", DEPARTMENT)
AS_OF = datetime(2026, 3, 3, 21, 15, tzinfo=UTC)


def test_clock_and_date_in_each_language() -> None:
    local = AS_OF.astimezone(DEPARTMENT.tz)
    assert clock(local, "en") == "3:15 PM"
    assert clock(local, "es") == "las 3:15 p. m."
    assert clock(local.replace(hour=1), "es") == "la 1:15 a. m."
    assert long_date(local, "en") == "Tuesday, March 3, 2026"
    assert long_date(local, "es") == "martes 3 de marzo de 2026"


def test_standby_in_natural_spanish() -> None:
    spanish = DRAFTER.render(
        "standby",
        "es",
        {"drill": False, "area": "Distrito 4", "area_ref": "el Distrito 4", "as_of": AS_OF},
    )
    assert "vecinos del Distrito 4" in spanish.body, "de + el contracts to del"
    assert "p. m.." not in spanish.body, "no second period after p. m."
    assert spanish.body.endswith("a las 3:15 p. m.")
    assert "\n\n" in spanish.body
    assert "\n\n" not in spanish.sms


def test_templates_accept_only_the_variables_they_are_given() -> None:
    # StrictUndefined: a template asking for anything else (say, a notice's summary) fails.
    with pytest.raises(UndefinedError):
        DRAFTER.render("rumor_fact", "en", {"drill": False, "area": "Riverside"})


def test_confirmed_rumor_names_the_announced_window_in_both_languages() -> None:
    variables = {
        "drill": False,
        "area": "Riverside",
        "area_ref": "Riverside",
        "assessment": "Confirmed",
        "observed_at": AS_OF,
        "as_of": AS_OF,
        "expires_at": AS_OF + timedelta(hours=4),
        "window_start": AS_OF + timedelta(hours=1),
        "window_end": AS_OF + timedelta(hours=3),
        "updates": False,
        "notice_cancelled": False,
    }
    english = DRAFTER.render("rumor_fact", "en", variables)
    spanish = DRAFTER.render("rumor_fact", "es", variables)
    assert "from 4:15 PM until 6:15 PM" in english.body
    assert "desde las 4:15 p. m. hasta las 6:15 p. m." in spanish.body
    assert (
        "desde las cuatro y cuarto de la tarde hasta las seis y cuarto de la tarde" in spanish.radio
    )


def test_an_update_says_so_and_a_cancelled_operation_is_called_off() -> None:
    variables = {
        "drill": False,
        "area": "Riverside",
        "area_ref": "Riverside",
        "assessment": "Confirmed",
        "observed_at": None,
        "as_of": AS_OF,
        "expires_at": AS_OF + timedelta(hours=4),
        "window_start": None,
        "window_end": None,
        "updates": True,
        "notice_cancelled": True,
    }
    english = DRAFTER.render("rumor_fact", "en", variables)
    spanish = DRAFTER.render("rumor_fact", "es", variables)
    assert english.headline.startswith("Update: ")
    assert spanish.headline.startswith("Actualización: ")
    assert "replaces our earlier bulletin" in english.body
    assert "called off" in english.body
    assert "plan to be" not in english.body
    assert "se canceló" in spanish.body
    assert "This is an update" in english.radio
    assert english.sms.startswith("Update: Called off")
