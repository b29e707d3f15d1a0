"""English and Spanish: one small message catalog per language (locales/<lang>.yaml)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import cache
from pathlib import Path
from typing import Any

import yaml

__all__ = ["DEFAULT_LANGUAGE", "LANGUAGES", "Translate", "catalog", "pick_language", "translator"]

LANGUAGES: tuple[str, ...] = ("en", "es")
DEFAULT_LANGUAGE = "en"
_LOCALES = Path(__file__).parent / "locales"

Translate = Callable[..., str]


@cache
def catalog(language: str) -> Mapping[str, str]:
    """The messages of `language`, read once."""
    data: dict[str, Any] = yaml.safe_load((_LOCALES / f"{language}.yaml").read_text("utf-8"))
    return {str(key): str(value) for key, value in data.items()}


def translator(language: str) -> Translate:
    """`t(key, **values)` in `language`; an unknown key shows itself (a test forbids that)."""
    messages = catalog(language if language in LANGUAGES else DEFAULT_LANGUAGE)

    def t(key: str, **values: object) -> str:
        text = messages.get(key, key)
        return text.format(**values) if values else text

    return t


def pick_language(chosen: str | None, accept_language: str | None) -> str:
    """The user's choice when made, else the browser's first language we speak."""
    if chosen in LANGUAGES:
        return str(chosen)
    for part in (accept_language or "").split(","):
        tag = part.split(";")[0].strip().lower()[:2]
        if tag in LANGUAGES:
            return tag
    return DEFAULT_LANGUAGE
