"""Drafting bulletins from the pre-vetted Jinja2 templates in templates/.

A template is one file per kind and language (`standby.es.j2`) with four blocks - headline,
body, sms and radio - written by a fluent speaker and reviewed like code. Only the
variables built here reach a template, and they come from releasable fields (gazetteer
names, announced windows, assessment times) and the department's configuration; the
restricted detail of a notice is never known to rumor_control, so it cannot be rendered.
Undefined variables fail loudly (StrictUndefined) rather than printing an empty string.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from schemas.base import Language
from services.rumor_control.calendar_words import MONTHS, WEEKDAYS
from services.rumor_control.department import DepartmentConfig
from services.rumor_control.guardrails import SECTIONS, Sections
from services.rumor_control.radio import say_date, say_numbers, say_phone, say_time

__all__ = ["TEMPLATE_IDS", "Drafter", "TemplateId", "clock", "long_date"]

TemplateId = Literal["standby", "rumor_fact", "correction"]
TEMPLATE_IDS: tuple[TemplateId, ...] = ("standby", "rumor_fact", "correction")


def clock(moment: datetime, language: Language) -> str:
    """A clock time as printed: "3:15 PM" / "las 3:15 p. m." (Spanish carries its article,
    "la 1:05 p. m.", so templates can write "a {{ t|clock }}")."""
    hour12 = moment.hour % 12 or 12
    if language == "en":
        return f"{hour12}:{moment.minute:02d} {'AM' if moment.hour < 12 else 'PM'}"
    # US Spanish style guides write "a. m." and "p. m." with a space.
    suffix = "a. m." if moment.hour < 12 else "p. m."
    article = "la" if hour12 == 1 else "las"
    return f"{article} {hour12}:{moment.minute:02d} {suffix}"


def long_date(moment: datetime, language: Language) -> str:
    """ "Tuesday, March 3, 2026" / "martes 3 de marzo de 2026"."""
    if language == "en":
        month = MONTHS["en"][moment.month - 1]
        return f"{WEEKDAYS['en'][moment.weekday()]}, {month} {moment.day}, {moment.year}"
    month = MONTHS["es"][moment.month - 1]
    return f"{WEEKDAYS['es'][moment.weekday()]} {moment.day} de {month} de {moment.year}"


def _join_names(names: Sequence[str], language: Language) -> str:
    conjunction = " and " if language == "en" else " y "
    if len(names) <= 1:
        return "".join(names)
    return ", ".join(names[:-1]) + conjunction + names[-1]


_SPACES = re.compile(r"[ \t\r\f\v]+")
# "a. m." and "p. m." end with their own period; a sentence ending on one takes no second.
_DOUBLE_PERIOD = re.compile(r"(\b[ap]\. m\.)\.")
# Spanish contracts "de el" and "a el" when an area's article meets a preposition.
_CONTRACTIONS = ((re.compile(r"\bde el\b"), "del"), (re.compile(r"\ba el\b"), "al"))
_BLANK_LINES = re.compile(r"\n\s*\n")


def _tidy(text: str, *, paragraphs: bool) -> str:
    """Template whitespace out: one line, or paragraphs separated by one blank line."""
    text = _DOUBLE_PERIOD.sub(r"\1", text)
    for pattern, contracted in _CONTRACTIONS:
        text = pattern.sub(contracted, text)
    if not paragraphs:
        return _SPACES.sub(" ", text.replace("\n", " ")).strip()
    parts = [_SPACES.sub(" ", part.replace("\n", " ")).strip() for part in _BLANK_LINES.split(text)]
    return "\n\n".join(part for part in parts if part)


class Drafter:
    """Renders a template in one language into the four sections of a bulletin."""

    def __init__(self, templates_dir: Path, department: DepartmentConfig) -> None:
        self._department = department
        self._environments = {
            language: self._environment(templates_dir, language) for language in ("en", "es")
        }

    @staticmethod
    def _environment(templates_dir: Path, language: Language) -> Environment:
        # Plain text for SMS, radio and e-mail, never HTML: escaping would corrupt it.
        env = Environment(
            loader=FileSystemLoader(templates_dir),
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=False,
            autoescape=False,  # noqa: S701
        )
        env.filters.update(
            clock=lambda moment: clock(moment, language),
            date=lambda moment: long_date(moment, language),
            join_names=lambda names: _join_names(names, language),
            say_time=lambda moment, preposition=True: say_time(
                moment, language, preposition=preposition
            ),
            say_date=lambda moment, article=True: say_date(moment, language, article=article),
            say_phone=lambda number: say_phone(number, language),
            say_numbers=lambda text: say_numbers(text, language),
        )
        return env

    def _common(self, language: Language) -> dict[str, Any]:
        config = self._department
        return {
            "department": config.department.name(language),
            "short_name": config.department.short_name(language),
            "policy": " ".join(config.policy_statement(language).split()),
            "phone_line": config.phone_line,
            "partners": [partner.name(language) for partner in config.partners],
        }

    def _local(self, value: Any) -> Any:
        # Bulletins speak the city's local time; events carry UTC.
        if isinstance(value, datetime):
            return value.astimezone(self._department.tz)
        return value

    def render(
        self, template_id: TemplateId, language: Language, variables: Mapping[str, Any]
    ) -> Sections:
        """The four sections of `template_id` in `language` with `variables`."""
        template = self._environments[language].get_template(f"{template_id}.{language}.j2")
        context_vars = {**self._common(language)}
        context_vars.update({key: self._local(value) for key, value in variables.items()})
        context = template.new_context(context_vars)
        rendered = {
            section: _tidy(
                "".join(template.blocks[section](context)),
                paragraphs=section in ("body", "radio"),
            )
            for section in SECTIONS
        }
        return Sections(**rendered)

    def render_all(
        self, template_id: TemplateId, variables: Mapping[Language, Mapping[str, Any]]
    ) -> dict[Language, Sections]:
        """Both languages; `variables` per language (area names differ by language)."""
        return {
            language: self.render(template_id, language, variables[language])
            for language in ("en", "es")
        }
