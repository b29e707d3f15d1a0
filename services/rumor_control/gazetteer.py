"""The city's districts and neighbourhoods, and matching place names heard in reports.

Matching folds accents, case and punctuation with the same `normalize` the leak check uses,
so "San José", "SAN JOSE" and "san-josé" are one name, and it only matches whole words:
"Riverside" is found in "near riverside park" but "Lakeview" is not found in "lakeviews".
When several names match, the longest wins ("San José Heights" over "San José"), so the most
specific place is the one a report is filed under.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml  # type: ignore[import-untyped, unused-ignore]

from schemas.base import Language
from schemas.fingerprints import normalize

__all__ = ["Area", "AreaKind", "Gazetteer", "Match", "load_gazetteer"]

AreaKind = Literal["district", "neighbourhood"]


@dataclass(frozen=True)
class Area:
    """One district or neighbourhood."""

    code: str
    kind: AreaKind
    names: Mapping[Language, str]
    aliases: tuple[str, ...] = ()
    district: str | None = None
    es_article: str | None = None

    def name(self, language: Language) -> str:
        """The official name in `language`."""
        return self.names[language]

    def reference(self, language: Language) -> str:
        """The name as running text uses it: "el Distrito 4" in Spanish, "District 4"."""
        name = self.names[language]
        if language == "es" and self.es_article:
            return f"{self.es_article} {name}"
        return name


@dataclass(frozen=True)
class Match:
    """Where a name of `area` was found in a normalised text (word offsets)."""

    area: Area
    start: int
    end: int


class Gazetteer:
    """Areas by code, with an index of every normalised name and alias."""

    def __init__(self, areas: Iterable[Area]) -> None:
        self._areas: dict[str, Area] = {}
        # name (normalised, as a word tuple) -> area code
        self._names: dict[tuple[str, ...], str] = {}
        for area in areas:
            if area.code in self._areas:
                raise ValueError(f"duplicate gazetteer id {area.code!r}")
            self._areas[area.code] = area
            for spelled in (*area.names.values(), *area.aliases):
                words = tuple(normalize(spelled).split())
                if not words:
                    continue
                owner = self._names.setdefault(words, area.code)
                if owner != area.code:
                    raise ValueError(f"{spelled!r} names both {owner} and {area.code}")
        for area in self._areas.values():
            if area.district is not None and area.district not in self._areas:
                raise ValueError(f"{area.code} lies in unknown district {area.district!r}")
        self._longest = max((len(words) for words in self._names), default=0)

    @property
    def areas(self) -> tuple[Area, ...]:
        """Every area, in file order."""
        return tuple(self._areas.values())

    def get(self, code: str | None) -> Area | None:
        """The area with this code, if any."""
        return None if code is None else self._areas.get(code)

    def find_all(self, text: str) -> list[Match]:
        """Every non-overlapping area name in `text`, longest match first at each position."""
        words = normalize(text).split()
        found: list[Match] = []
        position = 0
        while position < len(words):
            for size in range(min(self._longest, len(words) - position), 0, -1):
                code = self._names.get(tuple(words[position : position + size]))
                if code is not None:
                    found.append(Match(self._areas[code], position, position + size))
                    position += size
                    break
            else:
                position += 1
        return found

    def match(self, text: str) -> Area | None:
        """The most specific area named in `text` (longest name; a neighbourhood on a tie)."""
        matches = self.find_all(text)
        if not matches:
            return None
        best = max(
            matches,
            key=lambda m: (m.end - m.start, m.area.kind == "neighbourhood", -m.start),
        )
        return best.area

    def codes_in(self, text: str) -> set[str]:
        """The codes of every area named in `text` (for the parity guardrail)."""
        return {match.area.code for match in self.find_all(text)}

    def overlaps(self, first: str | None, second: str | None) -> bool:
        """Whether two areas are the same or one is the district the other lies in."""
        if first is None or second is None:
            return False
        if first == second:
            return True
        a, b = self._areas.get(first), self._areas.get(second)
        if a is None or b is None:
            return False
        return a.district == second or b.district == first


def _area(entry: Mapping[str, Any]) -> Area:
    names = entry["name"]
    return Area(
        code=str(entry["id"]),
        kind=entry.get("kind", "neighbourhood"),
        names={"en": str(names["en"]), "es": str(names["es"])},
        aliases=tuple(str(alias) for alias in entry.get("aliases", ())),
        district=entry.get("district"),
        es_article=entry.get("es_article"),
    )


def load_gazetteer(path: Path) -> Gazetteer:
    """Read a gazetteer YAML file (see gazetteer.yaml for the shape)."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    return Gazetteer(_area(entry) for entry in data["areas"])
